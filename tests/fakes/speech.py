"""ElevenLabs and Google Cloud Text-to-Speech.

ElevenLabs: ``POST /v1/text-to-speech/{voice_id}/with-timestamps`` with ``xi-api-key``
returns ``{"audio_base64", "alignment": {"characters", "character_start_times_seconds",
"character_end_times_seconds"}, "normalized_alignment"}``; ``GET /v1/voices`` returns
``{"voices": [{"voice_id", "name", "labels": {...}}]}``; errors are
``{"detail": {"status", "message"}}``.

Google: ``POST /v1/text:synthesize`` with ``{"input": {"text"}, "voice": {"languageCode",
"name"}, "audioConfig": {"audioEncoding": "MP3"}}`` returns ``{"audioContent": base64}``;
``GET /v1/voices`` returns ``{"voices": [{"languageCodes", "name", "ssmlGender",
"naturalSampleRateHertz"}]}``; errors are ``{"error": {"code", "message", "status"}}``.

Both answer with real MP3 audio (rendered by eSpeak and LAME) so that durations are real.
"""

from __future__ import annotations

import base64

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from avatarium.speech.espeak_engine import shared_engine
from avatarium.speech.mp3 import encode_mp3
from tests.fakes.server import FakeState, google_error, json_error, malformed, record

ELEVENLABS_KEY = "xi-test-key"
GOOGLE_KEY = "AIza-test-tts"
ELEVEN_VOICES = [
    {
        "voice_id": "21m00Tcm4TlvDq8ikWAM",
        "name": "Rachel",
        "labels": {"gender": "female", "accent": "american"},
    },
    {
        "voice_id": "ErXwobaYiN019PkySvjV",
        "name": "Antoni",
        "labels": {"gender": "male", "accent": "american"},
    },
]
GOOGLE_VOICES = [
    {
        "languageCodes": ["en-US"],
        "name": "en-US-Neural2-F",
        "ssmlGender": "FEMALE",
        "naturalSampleRateHertz": 24000,
    },
    {
        "languageCodes": ["en-US"],
        "name": "en-US-Neural2-D",
        "ssmlGender": "MALE",
        "naturalSampleRateHertz": 24000,
    },
]


def speak(text: str) -> tuple[bytes, float]:
    rendering = shared_engine().render(text, "en-us")
    return encode_mp3(rendering.pcm, rendering.sample_rate), rendering.duration_ms / 1000


def build_elevenlabs(state: FakeState) -> Starlette:
    def refuse(fault: str | None, key: str | None) -> Response | None:
        if key != ELEVENLABS_KEY or fault == "401":
            return json_error(
                401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}
            )
        if fault == "429":
            return json_error(
                429,
                {
                    "detail": {
                        "status": "too_many_concurrent_requests",
                        "message": "Too many requests",
                    }
                },
                {"retry-after": "1"},
            )
        if fault in ("500", "503"):
            return json_error(
                int(fault), {"detail": {"status": "server_error", "message": "Try again"}}
            )
        if fault == "malformed":
            return malformed()
        return None

    async def tts(request: Request) -> Response:
        entry, fault = await record(state, request)
        refused = refuse(fault, entry.headers.get("xi-api-key"))
        if refused is not None:
            return refused
        voice = request.path_params["voice_id"]
        if voice not in {v["voice_id"] for v in ELEVEN_VOICES}:
            return json_error(
                404,
                {
                    "detail": {
                        "status": "voice_not_found",
                        "message": "A voice with that id was not found",
                    }
                },
            )
        text = entry.body["text"]  # type: ignore[index]
        mp3, seconds = speak(text)
        step = seconds / max(1, len(text))
        alignment = {
            "characters": list(text),
            "character_start_times_seconds": [round(i * step, 3) for i in range(len(text))],
            "character_end_times_seconds": [round((i + 1) * step, 3) for i in range(len(text))],
        }
        return JSONResponse(
            {
                "audio_base64": base64.b64encode(mp3).decode(),
                "alignment": alignment,
                "normalized_alignment": alignment,
            }
        )

    async def voices(request: Request) -> Response:
        entry, fault = await record(state, request)
        refused = refuse(fault, entry.headers.get("xi-api-key"))
        return refused or JSONResponse({"voices": ELEVEN_VOICES})

    return Starlette(
        routes=[
            Route("/v1/text-to-speech/{voice_id}/with-timestamps", tts, methods=["POST"]),
            Route("/v1/voices", voices, methods=["GET"]),
        ]
    )


def build_google(state: FakeState) -> Starlette:
    def refuse(fault: str | None, key: str | None) -> Response | None:
        if key != GOOGLE_KEY or fault == "401":
            return google_error(400, "INVALID_ARGUMENT", "API key not valid.", "API_KEY_INVALID")
        if fault == "429":
            return google_error(
                429, "RESOURCE_EXHAUSTED", "Quota exceeded", headers={"retry-after": "1"}
            )
        if fault in ("500", "503"):
            return google_error(int(fault), "UNAVAILABLE", "The service is unavailable.")
        if fault == "malformed":
            return malformed()
        return None

    async def synthesize(request: Request) -> Response:
        entry, fault = await record(state, request)
        refused = refuse(fault, entry.headers.get("x-goog-api-key") or entry.query.get("key"))
        if refused is not None:
            return refused
        body = entry.body
        assert isinstance(body, dict)
        assert body["audioConfig"]["audioEncoding"] == "MP3"
        if body["voice"]["name"] not in {v["name"] for v in GOOGLE_VOICES}:
            return google_error(400, "INVALID_ARGUMENT", "Voice does not exist.")
        mp3, _ = speak(body["input"]["text"])
        return JSONResponse({"audioContent": base64.b64encode(mp3).decode()})

    async def voices(request: Request) -> Response:
        entry, fault = await record(state, request)
        refused = refuse(fault, entry.headers.get("x-goog-api-key") or entry.query.get("key"))
        return refused or JSONResponse({"voices": GOOGLE_VOICES})

    return Starlette(
        routes=[
            Route("/v1/text:synthesize", synthesize, methods=["POST"]),
            Route("/v1/voices", voices, methods=["GET"]),
        ]
    )
