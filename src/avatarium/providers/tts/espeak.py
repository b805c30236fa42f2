"""``espeak``: the embedded speech engine (eSpeak NG + LAME), no account needed."""

from __future__ import annotations

import asyncio

from avatarium.core.settings import Settings
from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.registry import ProviderSpec
from avatarium.providers.tts.base import Speech, Voice
from avatarium.speech.espeak_engine import shared_engine
from avatarium.speech.mp3 import encode_mp3
from avatarium.speech.visemes import visemes_from, words_from

# Public voice id -> (eSpeak voice name, display name, language, gender)
ESPEAK_VOICES: dict[str, tuple[str, str, str, str]] = {
    "en-us": ("en-us", "American English (male)", "en-US", "male"),
    "en-us+f3": ("en-us+f3", "American English (female)", "en-US", "female"),
    "en-us+m3": ("en-us+m3", "American English (deep male)", "en-US", "male"),
    "en-us+f4": ("en-us+f4", "American English (bright female)", "en-US", "female"),
    "en-gb": ("en", "British English (male)", "en-GB", "male"),
    "en-gb+f2": ("en+f2", "British English (female)", "en-GB", "female"),
    "de+f2": ("de+f2", "German (female)", "de-DE", "female"),
    "fr+m3": ("fr+m3", "French (male)", "fr-FR", "male"),
    "es+f3": ("es+f3", "Spanish (female)", "es-ES", "female"),
}


class EspeakProvider:
    """Speech from eSpeak NG; visemes and word timings come from the engine's own events."""

    name = "espeak"
    produces_audio = True
    default_voice = "en-us+f3"

    async def synthesize(self, text: str, voice_id: str) -> Speech:
        entry = ESPEAK_VOICES.get(voice_id)
        if entry is None:
            raise ProviderError(
                FailureCategory.BAD_RESPONSE, self.name, f"unknown voice {voice_id}"
            )
        return await asyncio.to_thread(self._synthesize, text, entry[0])

    @staticmethod
    def _synthesize(text: str, espeak_voice: str) -> Speech:
        rendering = shared_engine().render(text, espeak_voice)
        mp3 = encode_mp3(rendering.pcm, rendering.sample_rate)
        total = rendering.duration_ms
        return Speech(
            mp3=mp3,
            duration_ms=total,
            visemes=visemes_from(rendering.phonemes, total),
            words=words_from(text, rendering.words),
            characters=len(text),
        )

    async def voices(self) -> list[Voice]:
        return [
            Voice(id=key, name=name, language=lang, gender=gender, provider=self.name)
            for key, (_espeak, name, lang, gender) in ESPEAK_VOICES.items()
        ]

    async def has_voice(self, voice_id: str) -> bool:
        return voice_id in ESPEAK_VOICES


def _build(_settings: Settings) -> EspeakProvider:
    return EspeakProvider()


SPEC = ProviderSpec(name="espeak", kind="tts", build=_build)
