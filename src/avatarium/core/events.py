"""The one internal event stream of a reply. Every transport is an encoder over it.

REST collects it; SSE and the WebSocket encode each event as it comes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from avatarium.core.errors import AvatariumError


@dataclass(frozen=True, slots=True)
class TextDelta:
    """The next piece of reply text."""

    text: str


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Speech for a piece of the reply: MP3 bytes plus timings relative to the chunk start."""

    index: int
    text: str
    mp3: bytes
    duration_ms: int
    visemes: list[dict[str, Any]] | None
    words: list[dict[str, Any]] | None
    url: str | None = None  # a signed link to this chunk's MP3


@dataclass(frozen=True, slots=True)
class Usage:
    """Provider usage spent so far on this reply."""

    ai_tokens: int = 0
    tts_characters: int = 0


@dataclass(frozen=True, slots=True)
class Done:
    """The stored reply: the serialized message as the API returns it."""

    message: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The user spoke over the reply: it stopped, and what had been spoken was stored (the
    serialized message, marked ``interrupted``)."""

    message: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """The reply failed; nothing was stored."""

    error: AvatariumError


ReplyEvent = TextDelta | AudioChunk | Usage | Done | Interrupted | ErrorEvent
