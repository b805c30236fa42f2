"""Typed views of the API's objects. Each keeps the whole JSON object in ``raw``, so fields
added by newer servers are never lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Avatar:
    id: str
    name: str
    description: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Avatar:
        return cls(data["id"], data.get("name", data["id"]), data.get("description"), data)


@dataclass(frozen=True)
class Conversation:
    id: str
    avatar_id: str
    status: str
    message_count: int
    metadata: dict[str, Any]
    created_at: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Conversation:
        return cls(
            data["id"],
            data["avatar_id"],
            data["status"],
            data.get("message_count", 0),
            dict(data.get("metadata") or {}),
            data["created_at"],
            data,
        )


@dataclass(frozen=True)
class Audio:
    url: str
    duration_ms: int
    visemes: list[dict[str, Any]] | None
    words: list[dict[str, Any]] | None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Audio | None:
        if not data:
            return None
        return cls(data["url"], data["duration_ms"], data.get("visemes"), data.get("words"))


@dataclass(frozen=True)
class Message:
    id: str
    conversation_id: str
    role: str
    content: str
    audio_url: str | None
    audio: Audio | None
    reply_to: str | None
    created_at: str
    ai_tokens: int
    tts_characters: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        usage = data.get("usage") or {}
        return cls(
            data["id"],
            data["conversation_id"],
            data["role"],
            data["content"],
            data.get("audio_url"),
            Audio.from_json(data.get("audio")),
            data.get("reply_to"),
            data["created_at"],
            usage.get("ai_tokens", 0),
            usage.get("tts_characters", 0),
            data,
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``starting_after`` for the next."""

    data: list[T]
    has_more: bool
    next_cursor: str | None


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    language: str
    gender: str
    provider: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Voice:
        return cls(data["id"], data["name"], data["language"], data["gender"], data["provider"])


@dataclass(frozen=True)
class Speech:
    """MP3 bytes from ``/v1/tts``."""

    audio: bytes
    characters: int
    duration_ms: int


@dataclass(frozen=True)
class Usage:
    period_start: str
    period_end: str
    tier: str
    messages_used: int
    messages_limit: int | None
    ai_tokens: int
    tts_characters: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Usage:
        messages = data["messages"]
        return cls(
            data["period"]["start"],
            data["period"]["end"],
            data["tier"],
            messages["used"],
            messages.get("limit"),
            data["ai_tokens"],
            data["tts_characters"],
            data,
        )


@dataclass(frozen=True)
class ClientToken:
    token: str
    conversation_id: str
    expires_at: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClientToken:
        return cls(data["token"], data["conversation_id"], data["expires_at"])


# Streamed events (SSE and WebSocket alike).


@dataclass(frozen=True)
class TextDelta:
    """The next piece of the reply's text."""

    delta: str


@dataclass(frozen=True)
class AudioChunk:
    """Speech for the next sentence-sized chunk: play chunks in ``index`` order."""

    url: str
    index: int
    text: str
    duration_ms: int
    visemes: list[dict[str, Any]] | None
    words: list[dict[str, Any]] | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AudioChunk:
        return cls(
            data["url"],
            data["index"],
            data["text"],
            data["duration_ms"],
            data.get("visemes"),
            data.get("words"),
        )


@dataclass(frozen=True)
class Done:
    """The stored reply; always the last event of a good stream."""

    message: Message


@dataclass(frozen=True)
class Cancelled:
    """The turn was cancelled (WebSocket only); nothing was stored."""


StreamEvent = TextDelta | AudioChunk | Done
