"""``google``: Cloud Text-to-Speech ``text:synthesize`` (MP3).

``AVATARIUM_GOOGLE_TTS_BASE_URL`` is ``https://texttospeech.googleapis.com``; the API key
travels in the ``x-goog-api-key`` header. Google does not time words without SSML marks, so
``words`` and ``visemes`` are ``null`` for this provider.
"""

from __future__ import annotations

import base64
import binascii

from avatarium.core.settings import Settings
from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.http import open_response, read_json
from avatarium.providers.registry import ProviderSpec, cloud_config
from avatarium.providers.transport import OutboundRequest
from avatarium.providers.tts.base import Speech, Voice
from avatarium.providers.tts.cloud import CloudSpeech
from avatarium.speech.mp3 import mp3_duration_ms

DEFAULT_VOICE = "en-US-Neural2-F"


def classify(status: int, body: bytes) -> FailureCategory | None:
    """Google answers a bad API key with 400 and reason API_KEY_INVALID."""
    if status == 400 and b"API_KEY_INVALID" in body:
        return FailureCategory.AUTH_FAILED
    return None


def language_of(voice_id: str) -> str:
    """``en-US-Neural2-F`` -> ``en-US`` (Google's voice names start with the language)."""
    parts = voice_id.split("-")
    return "-".join(parts[:2]) if len(parts) >= 2 else "en-US"


class GoogleSpeechProvider(CloudSpeech):
    """Google Cloud Text-to-Speech."""

    name = "google"
    default_voice = DEFAULT_VOICE

    def _get(self, path: str, body: object | None = None) -> OutboundRequest:
        return self._client.build_request(
            "POST" if body is not None else "GET",
            f"{self.config.base_url.rstrip('/')}{path}",
            json=body,
            headers={"x-goog-api-key": self.config.api_key},
        )

    async def synthesize(self, text: str, voice_id: str) -> Speech:
        body = {
            "input": {"text": text},
            "voice": {"languageCode": language_of(voice_id), "name": voice_id},
            "audioConfig": {"audioEncoding": "MP3"},
        }
        async with open_response(
            self._client,
            self.name,
            self.config.policy,
            lambda: self._get("/v1/text:synthesize", body),
            classify,
        ) as response:
            payload = await read_json(response, self.name)
        try:
            mp3 = base64.b64decode(payload["audioContent"], validate=True)
            duration = round(mp3_duration_ms(mp3))
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ProviderError(
                FailureCategory.BAD_RESPONSE, self.name, f"unexpected response: {exc!r}"
            ) from exc
        return Speech(mp3, duration, None, None, len(text))

    async def _fetch_voices(self) -> list[Voice]:
        async with open_response(
            self._client, self.name, self.config.policy, lambda: self._get("/v1/voices"), classify
        ) as response:
            payload = await read_json(response, self.name)
        return [
            Voice(
                id=str(item["name"]),
                name=str(item["name"]),
                language=str((item.get("languageCodes") or ["und"])[0]),
                gender=str(item.get("ssmlGender", "SSML_VOICE_GENDER_UNSPECIFIED")).lower(),
                provider=self.name,
            )
            for item in payload.get("voices") or []
        ]


def _build(settings: Settings) -> GoogleSpeechProvider | None:
    config = cloud_config(settings, "google", setting_prefix="google_tts")
    return GoogleSpeechProvider(config) if config else None


SPEC = ProviderSpec(name="google", kind="tts", build=_build)
