"""The contract every speech provider fulfils."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Voice:
    """A voice as ``/v1/tts/voices`` lists it."""

    id: str
    name: str
    language: str
    gender: str
    provider: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "voice",
            "name": self.name,
            "language": self.language,
            "gender": self.gender,
            "provider": self.provider,
        }


@dataclass(frozen=True, slots=True)
class Speech:
    """Synthesized speech: MP3 bytes, duration, and timings when the engine has them."""

    mp3: bytes
    duration_ms: int
    visemes: list[dict[str, Any]] | None
    words: list[dict[str, Any]] | None
    characters: int


@runtime_checkable
class TTSProvider(Protocol):
    """Turns text into speech. ``produces_audio`` is False for client-side speech."""

    name: str
    produces_audio: bool
    default_voice: str

    async def synthesize(self, text: str, voice_id: str) -> Speech:
        """Speak ``text``; raises ProviderError on failure."""
        ...

    async def voices(self) -> list[Voice]:
        """The voices this provider offers."""
        ...

    async def has_voice(self, voice_id: str) -> bool:
        """Whether ``voice_id`` is one of this provider's voices."""
        ...
