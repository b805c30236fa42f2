"""Speech for the API: provider choice, stored clips and signed audio URLs."""

from __future__ import annotations

from typing import Any

from avatarium.core.clock import Clock
from avatarium.core.errors import InvalidParameterError, TTSProviderError
from avatarium.core.ids import new_id
from avatarium.core.secrets import Signer
from avatarium.core.timing import timed
from avatarium.providers.errors import ProviderError, as_api_error
from avatarium.providers.tts.base import Speech, TTSProvider, Voice
from avatarium.speech.models import AudioClip
from avatarium.storage.audio import AudioStore


class SpeechService:
    """Synthesizes, stores and signs speech."""

    def __init__(self, store: AudioStore, signer: Signer, clock: Clock, url_ttl_s: int) -> None:
        self.store = store
        self._signer = signer
        self._clock = clock
        self._ttl = url_ttl_s

    async def synthesize(self, provider: TTSProvider, text: str, voice_id: str) -> Speech:
        """Speak ``text``, timed as ``tts``; failures stay ``ProviderError`` for fallback."""
        with timed("tts"):
            return await provider.synthesize(text, voice_id)

    async def voices(self, provider: TTSProvider) -> list[Voice]:
        """A provider's voices; a vendor failure is the documented ``tts_provider_error``."""
        try:
            return await provider.voices()
        except ProviderError as error:
            raise as_api_error(error, TTSProviderError) from error

    async def require_voice(
        self, provider: TTSProvider, name: str, voice_id: str, field: str
    ) -> None:
        """400 ``not_allowed`` (listing the voices) unless ``provider`` has ``voice_id``."""
        try:
            if await provider.has_voice(voice_id):
                return
        except ProviderError as error:
            raise as_api_error(error, TTSProviderError) from error
        allowed = [v.id for v in await self.voices(provider)]
        raise InvalidParameterError(
            field, "not_allowed", f"{name} has no voice {voice_id!r}.", allowed=allowed
        )

    async def save(
        self, speech: Speech, *, account_id: str, mode: str, conversation_id: str | None
    ) -> AudioClip:
        """Write the MP3 and return its (not yet committed) database row."""
        clip_id = new_id("aud")
        key = clip_key(clip_id)
        await self.store.put(key, speech.mp3)
        return AudioClip(
            id=clip_id,
            account_id=account_id,
            mode=mode,
            conversation_id=conversation_id,
            storage_key=key,
            byte_size=len(speech.mp3),
            duration_ms=speech.duration_ms,
            visemes=speech.visemes,
            words=speech.words,
            created_at=self._clock.now(),
        )

    def url(self, base_url: str, clip_id: str) -> str:
        """A fresh signed URL for a clip, valid for the configured time."""
        expires = int(self._clock.now().timestamp()) + self._ttl
        signature = self._signer.sign_url(clip_id, expires)
        return f"{base_url}/v1/audio/{clip_id}.mp3?expires={expires}&sig={signature}"

    def verify(self, clip_id: str, expires: str | None, signature: str | None) -> bool:
        """Whether a URL's signature is genuine and unexpired."""
        # ASCII digits only, and no more than a Unix time needs: ``isdigit`` alone admits "²",
        # and int() refuses strings past 4,300 digits.
        if not expires or not signature or len(expires) > 12:
            return False
        if not (expires.isascii() and expires.isdigit()):
            return False
        if int(expires) < int(self._clock.now().timestamp()):
            return False
        return self._signer.verify_url(clip_id, int(expires), signature)

    def audio_json(self, base_url: str, clip: AudioClip) -> dict[str, Any]:
        """The ``audio`` object of a message."""
        return {
            "url": self.url(base_url, clip.id),
            "format": "mp3",
            "duration_ms": clip.duration_ms,
            "visemes": clip.visemes,
            "words": clip.words,
        }


def clip_key(clip_id: str) -> str:
    """Where a clip's MP3 is stored (also found by this name before its row exists)."""
    return f"{clip_id}.mp3"


def voice_or_default(provider: TTSProvider, voice_id: str | None, field: str = "voice") -> str:
    """``voice_id`` or the provider's default, refusing blank names."""
    if voice_id is None:
        return provider.default_voice
    if not voice_id.strip():
        raise InvalidParameterError(field, "empty", f"{field} must not be empty.")
    return voice_id
