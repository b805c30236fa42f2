"""Hearing the user: uploads decoded, speech checked for, the provider chosen, the audio
transcribed and counted.

Checks run before any provider is paid: an upload that cannot be decoded, is empty or too
long is a 400 naming its part; audio in which voice-activity detection finds no speech is
``no_speech`` without a provider call. A provider that fails (after its own retries) hands
over to the next of ``AVATARIUM_STT_FALLBACK`` in live mode, as AI and speech providers do;
the last failure is 503 ``stt_provider_error``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from avatarium.core.errors import InvalidParameterError, STTProviderError
from avatarium.core.settings import Settings
from avatarium.keys.service import Principal
from avatarium.listening.decode import AudioInputError, DecodedAudio, decode_audio
from avatarium.listening.vad import FRAME_MS, shared_model, speech_ms
from avatarium.providers.errors import ProviderError, as_api_error
from avatarium.providers.fallback import ProviderHealth, parse_chain
from avatarium.providers.registry import ProviderRegistry
from avatarium.providers.selection import Selected, select_stt
from avatarium.providers.stt.base import STTProvider, TimedWord, Utterance
from avatarium.usage.ledger import UsageLedger

log = logging.getLogger(__name__)

# Less speech than this (three 32 ms frames) is a click or a breath, not words.
MIN_SPEECH_MS = 3 * FRAME_MS


@dataclass(frozen=True, slots=True)
class Heard:
    """A finished transcription."""

    text: str
    language: str
    duration_ms: int
    words: list[TimedWord] | None
    stt_provider: str

    def input_json(self) -> dict[str, Any]:
        """The ``input`` object of the user message it becomes."""
        return {
            "type": "audio",
            "duration_ms": self.duration_ms,
            "stt_provider": self.stt_provider,
            "language": self.language,
        }

    def as_json(self) -> dict[str, Any]:
        """The body of ``POST /v1/transcriptions``."""
        return {
            "object": "transcription",
            "text": self.text,
            "language": self.language,
            "duration_ms": self.duration_ms,
            "words": [w.as_json() for w in self.words] if self.words is not None else None,
            "stt_provider": self.stt_provider,
        }


def no_speech(field: str) -> InvalidParameterError:
    return InvalidParameterError(field, "no_speech", f"No speech was found in {field}.")


class ListeningService:
    """Speech to text for sends, the transcription endpoint and the WebSocket."""

    def __init__(
        self,
        providers: ProviderRegistry,
        settings: Settings,
        usage: UsageLedger,
        health: ProviderHealth,
    ) -> None:
        self.providers = providers
        self.settings = settings
        self.usage = usage
        self.health = health

    async def decode(self, data: bytes, field: str) -> DecodedAudio:
        """An upload as 16 kHz mono PCM, or the documented 400 naming ``field``."""
        try:
            return await asyncio.to_thread(decode_audio, data)
        except AudioInputError as problem:
            raise InvalidParameterError(field, problem.reason, problem.message) from None

    def chain(
        self, principal: Principal, name: str | None, field: str = "stt_provider"
    ) -> list[Selected[STTProvider]]:
        """The provider serving ``name`` (or the default), then its live-mode fallbacks."""
        primary = select_stt(
            self.providers, name or self.settings.default_stt_provider, principal.mode, field
        )
        candidates = {primary.name: primary}
        if principal.mode == "live":
            for each in parse_chain(self.settings.stt_fallback):
                provider = self.providers.stt(each)
                if provider is not None and each not in candidates:
                    candidates[each] = Selected(each, provider, sandbox=False)
        return [candidates[n] for n in self.health.order("stt", list(candidates))]

    @staticmethod
    def check_language(chain: list[Selected[STTProvider]], language: str | None) -> None:
        """400 when the serving provider cannot hear ``language``."""
        understood = chain[0].provider.languages
        if language and understood is not None:
            primary = language.split("-")[0].lower()
            if primary not in understood:
                raise InvalidParameterError(
                    "language",
                    "not_allowed",
                    f"The {chain[0].name} recogniser understands only: {', '.join(understood)}.",
                    allowed=list(understood),
                )

    def has_speech(self, pcm: bytes) -> bool:
        model = shared_model()
        return speech_ms(pcm, model, self.settings.vad_threshold) >= MIN_SPEECH_MS

    async def transcribe(
        self,
        principal: Principal,
        chain: list[Selected[STTProvider]],
        utterance: Utterance,
        *,
        field: str,
        words: bool = False,
        checked_speech: bool = False,
    ) -> Heard:
        """What was said, counted in ``stt_seconds``; ``no_speech`` when nothing was."""
        if not checked_speech and not await asyncio.to_thread(self.has_speech, utterance.pcm):
            raise no_speech(field)
        heard = await self.recognise(chain, utterance, words=words)
        await self.count(principal, heard)
        if not heard.text:
            raise no_speech(field)
        return heard

    async def recognise(
        self, chain: list[Selected[STTProvider]], utterance: Utterance, *, words: bool = False
    ) -> Heard:
        """The first answer of the chain, not yet counted (a WebSocket decodes ahead of the
        end of a turn, and counts only the decode it keeps)."""
        last_error: ProviderError | None = None
        for candidate in chain:
            try:
                transcript = await candidate.provider.transcribe(utterance, words=words)
            except ProviderError as error:
                self.health.failed("stt", candidate.name, error)
                last_error = error
                continue
            self.health.succeeded("stt", candidate.name)
            return Heard(
                transcript.text.strip(),
                transcript.language,
                utterance.duration_ms,
                transcript.words,
                candidate.name,
            )
        assert last_error is not None
        raise as_api_error(last_error, STTProviderError) from last_error

    async def count(self, principal: Principal, heard: Heard) -> None:
        """Count what a provider transcribed (it did the work, whatever happens next)."""
        await self.usage.add_transcribed(principal, heard.duration_ms)

    async def partial(self, chain: list[Selected[STTProvider]], pcm: bytes) -> str | None:
        """A provisional transcript of speech still going on (the embedded recogniser
        only: partials are re-decoded every few hundred milliseconds, which a metered
        vendor would bill each time); ``None`` when there is none to give."""
        provider = chain[0].provider
        if chain[0].name != "whisper":
            return None
        try:
            transcript = await provider.transcribe(Utterance(pcm), partial=True)
        except ProviderError:
            return None
        return transcript.text.strip() or None
