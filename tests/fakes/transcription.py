"""OpenAI's (and Groq's) ``POST {base}/audio/transcriptions``, as documented.

The request is ``multipart/form-data``: ``file`` (the audio), ``model``, and optionally
``language`` (ISO 639-1), ``response_format`` (``json`` by default, or ``verbose_json``,
``text``...) and ``timestamp_granularities[]`` (``word`` and/or ``segment``; word timings
need ``verbose_json``, else the API answers 400). ``verbose_json`` answers
``{task, language, duration, text, words?, segments?}`` with ``language`` as an English
name ("english"). Errors are ``{"error": {message, type, param, code}}``.

A fake cannot hear: it checks that the file really is audio (RIFF/WAVE, FLAC, Ogg,
WebM/Matroska or MP3 by their magic bytes), reads a WAV's true duration, and answers with
the text a test queued in ``HEARD`` (or a fixed sentence), its words spread evenly over
the audio.
"""

from __future__ import annotations

import io
import wave
from collections import deque

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from tests.fakes.server import FakeState, json_error, malformed, record

DEFAULT_TEXT = "Hello from the fake transcription service."
HEARD: deque[str] = deque()  # the next transcripts to answer with
MAGIC = (b"RIFF", b"fLaC", b"OggS", b"\x1a\x45\xdf\xa3", b"ID3", b"\xff\xfb", b"\xff\xf3")
LANGUAGE_NAMES = {"en": "english", "de": "german", "fr": "french", "es": "spanish"}


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    return json_error(
        status, {"error": {"message": message, "type": kind, "param": None, "code": code}}
    )


def _duration_s(data: bytes) -> float:
    if data.startswith(b"RIFF"):
        with wave.open(io.BytesIO(data)) as wav:
            return wav.getnframes() / wav.getframerate()
    return round(len(data) / 4000, 2)  # compressed: a rough figure, as good as any


def handler(state: FakeState, api_key: str):  # type: ignore[no-untyped-def]
    async def transcriptions(request: Request) -> Response:
        entry, fault = await record(state, request)
        if entry.headers.get("authorization") != f"Bearer {api_key}" or fault == "401":
            return _error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        if fault == "429":
            return json_error(
                429,
                {"error": {"message": "Rate limit reached.", "type": "requests",
                           "param": None, "code": "rate_limit_exceeded"}},
                {"retry-after": "1"},
            )  # fmt: skip
        if fault in ("500", "503"):
            return _error(int(fault), "The server had an error.", "server_error")
        if fault == "malformed":
            return malformed()
        if not entry.headers.get("content-type", "").startswith("multipart/form-data"):
            return _error(400, "Expected multipart/form-data.", "invalid_request_error")
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _error(400, "'file' is a required property", "invalid_request_error")
        data = await upload.read()
        if not data.startswith(MAGIC):
            return _error(400, "Invalid file format.", "invalid_request_error")
        if not form.get("model"):
            return _error(400, "you must provide a model parameter", "invalid_request_error")
        fields = {k: v for k, v in form.multi_items() if not isinstance(v, UploadFile)}
        entry.body = {**fields, "file": {"filename": upload.filename, "bytes": len(data)}}
        granularities = form.getlist("timestamp_granularities[]")
        response_format = form.get("response_format") or "json"
        if "word" in granularities and response_format != "verbose_json":
            return _error(
                400,
                "timestamp_granularities requires response_format=verbose_json",
                "invalid_request_error",
            )
        text = HEARD.popleft() if HEARD else DEFAULT_TEXT
        if response_format == "text":
            return PlainTextResponse(text + "\n")
        if response_format != "verbose_json":
            return JSONResponse({"text": text})
        duration = _duration_s(data)
        words = text.split()
        step = duration / max(1, len(words))
        language = str(form.get("language") or "en")
        body: dict[str, object] = {
            "task": "transcribe",
            "language": LANGUAGE_NAMES.get(language, language),
            "duration": duration,
            "text": text,
            "segments": [{"id": 0, "start": 0.0, "end": duration, "text": " " + text}],
        }
        if "word" in granularities:
            body["words"] = [
                {"word": w, "start": round(i * step, 2), "end": round((i + 1) * step, 2)}
                for i, w in enumerate(words)
            ]
        return JSONResponse(body)

    return transcriptions
