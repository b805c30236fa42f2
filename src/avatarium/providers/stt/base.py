"""The contract every speech-to-text provider fulfils."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

SAMPLE_RATE = 16_000  # what every provider is given: 16 kHz mono 16-bit PCM


@dataclass(frozen=True, slots=True)
class Utterance:
    """Audio to transcribe: 16 kHz mono signed 16-bit little-endian PCM, plus the upload's
    original bytes when there was one (cloud vendors take the file as it came)."""

    pcm: bytes
    language: str | None = None
    original: bytes | None = None
    filename: str = "audio.wav"
    content_type: str = "audio/wav"

    @property
    def duration_ms(self) -> int:
        return len(self.pcm) * 1000 // (2 * SAMPLE_RATE)

    def as_file(self) -> tuple[bytes, str, str]:
        """(bytes, filename, content type) to upload: the original, or the PCM as WAV."""
        if self.original is not None:
            return self.original, self.filename, self.content_type
        return wav_bytes(self.pcm), "audio.wav", "audio/wav"


def wav_bytes(pcm: bytes) -> bytes:
    """16 kHz mono 16-bit PCM in a WAV container."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class TimedWord:
    """One recognised word and where it lies in the audio."""

    text: str
    start_ms: int
    end_ms: int

    def as_json(self) -> dict[str, Any]:
        return {"text": self.text, "start_ms": self.start_ms, "end_ms": self.end_ms}


@dataclass(frozen=True, slots=True)
class Transcript:
    """What a provider heard; ``language`` is the one it decoded in (BCP 47)."""

    text: str
    language: str
    words: list[TimedWord] | None = None


@runtime_checkable
class STTProvider(Protocol):
    """Turns speech into text."""

    name: str
    # BCP 47 primary languages it understands (``None``: any).
    languages: tuple[str, ...] | None

    async def transcribe(
        self, utterance: Utterance, *, partial: bool = False, words: bool = False
    ) -> Transcript:
        """Transcribe ``utterance``; raises ProviderError on failure. ``partial`` marks a
        provisional decode of speech still going on (a provider may trade accuracy for
        speed there); ``words`` asks for word timings where the provider has them."""
        ...
