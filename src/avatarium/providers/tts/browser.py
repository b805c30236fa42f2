"""``browser``: no server audio; the reply tells the client what to speak itself."""

from __future__ import annotations

from avatarium.core.settings import Settings
from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.registry import ProviderSpec
from avatarium.providers.tts.base import Speech, Voice

BROWSER_VOICES = [
    Voice(
        id="default",
        name="The browser's default voice",
        language="und",
        gender="neutral",
        provider="browser",
    ),
]


class BrowserSpeechProvider:
    """Speech synthesized by the client (Web Speech API); any voice name the browser knows."""

    name = "browser"
    produces_audio = False
    default_voice = "default"

    async def synthesize(self, text: str, voice_id: str) -> Speech:
        raise ProviderError(
            FailureCategory.BAD_RESPONSE, self.name, "browser speech is made by the client"
        )

    async def voices(self) -> list[Voice]:
        return list(BROWSER_VOICES)

    async def has_voice(self, voice_id: str) -> bool:
        # Browsers name their voices freely; whatever the client asks for is passed through.
        return bool(voice_id.strip())


def _build(_settings: Settings) -> BrowserSpeechProvider:
    return BrowserSpeechProvider()


SPEC = ProviderSpec(name="browser", kind="tts", build=_build)
