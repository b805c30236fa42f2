"""``elevenlabs``: text to speech with character timestamps (MP3).

``POST {base}/v1/text-to-speech/{voice_id}/with-timestamps`` returns the audio as base64 and
an ``alignment`` of characters with start and end times, from which ``words`` and
``visemes`` are filled. ``AVATARIUM_ELEVENLABS_BASE_URL`` is ``https://api.elevenlabs.io``.
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
from avatarium.providers.tts.cloud import CloudSpeech, timings_from_characters
from avatarium.speech.mp3 import mp3_duration_ms

OUTPUT_FORMAT = "mp3_44100_128"
DEFAULT_VOICE = "21m00Tcm4TlvDq8ikWAM"  # "Rachel", a premade voice


class ElevenLabsProvider(CloudSpeech):
    """ElevenLabs speech; voices come from ``GET /v1/voices`` (cached)."""

    name = "elevenlabs"
    default_voice = DEFAULT_VOICE

    def _url(self, path: str) -> str:
        return f"{self.config.base_url.rstrip('/')}{path}"

    def _headers(self) -> dict[str, str]:
        return {"xi-api-key": self.config.api_key}

    async def synthesize(self, text: str, voice_id: str) -> Speech:
        def request() -> OutboundRequest:
            return self._client.build_request(
                "POST",
                self._url(f"/v1/text-to-speech/{voice_id}/with-timestamps"),
                params={"output_format": OUTPUT_FORMAT},
                json={"text": text, "model_id": self.config.model},
                headers=self._headers(),
            )

        async with open_response(self._client, self.name, self.config.policy, request) as response:
            payload = await read_json(response, self.name)
        try:
            mp3 = base64.b64decode(payload["audio_base64"], validate=True)
            alignment = payload.get("alignment") or {}
            visemes, words = timings_from_characters(
                list(alignment.get("characters") or []),
                [float(t) for t in alignment.get("character_start_times_seconds") or []],
                [float(t) for t in alignment.get("character_end_times_seconds") or []],
            )
            duration = round(mp3_duration_ms(mp3))
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ProviderError(
                FailureCategory.BAD_RESPONSE, self.name, f"unexpected response: {exc!r}"
            ) from exc
        return Speech(mp3, duration, visemes or None, words or None, len(text))

    async def _fetch_voices(self) -> list[Voice]:
        def request() -> OutboundRequest:
            return self._client.build_request(
                "GET", self._url("/v1/voices"), headers=self._headers()
            )

        async with open_response(self._client, self.name, self.config.policy, request) as response:
            payload = await read_json(response, self.name)
        voices = []
        for item in payload.get("voices") or []:
            labels = item.get("labels") or {}
            voices.append(
                Voice(
                    id=str(item["voice_id"]),
                    name=str(item.get("name", item["voice_id"])),
                    language=str(labels.get("language") or labels.get("accent") or "en"),
                    gender=str(labels.get("gender") or "unknown"),
                    provider=self.name,
                )
            )
        return voices


def _build(settings: Settings) -> ElevenLabsProvider | None:
    config = cloud_config(settings, "elevenlabs")
    return ElevenLabsProvider(config) if config else None


SPEC = ProviderSpec(name="elevenlabs", kind="tts", build=_build)
