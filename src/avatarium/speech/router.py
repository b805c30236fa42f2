"""HTTP routes for speech: text to speech, voices, previews, and signed audio downloads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from avatarium.api.endpoint import Call, endpoint
from avatarium.api.operation import BINARY, Doc
from avatarium.api.validation import Field, Query, validate
from avatarium.api.wire_schemas import list_of, ref
from avatarium.core.errors import InvalidParameterError, NotFoundError, TTSProviderError
from avatarium.core.wire import WireJSONResponse as JSONResponse
from avatarium.providers.errors import ProviderError, as_api_error
from avatarium.providers.selection import select_tts
from avatarium.speech.models import AudioClip
from avatarium.speech.service import clip_key, voice_or_default

TTS_FIELDS = [
    Field("text", str, required=True, not_blank=True, max_length=5_000),
    Field("provider", str, not_blank=True, max_length=40),
    Field("voice", str, not_blank=True, max_length=200),
]
PREVIEW_FIELDS = [
    Field("voice", str, required=True, not_blank=True, max_length=200),
    Field("provider", str, not_blank=True, max_length=40),
]
VOICE_PROVIDER = Query("provider", description="Only this provider's voices.")
PREVIEW_TEXT = "Hello! This is how I sound. Nice to meet you."


async def _speak(call: Call, text: str, provider_name: str | None, voice: str | None) -> Response:
    state = call.state
    name = provider_name or state.settings.default_tts_provider
    selected = select_tts(state.providers, name, call.caller.mode, "provider")
    if not selected.provider.produces_audio:
        raise InvalidParameterError(
            "provider",
            "not_allowed",
            f"{name} speech is made by the client, not the server.",
        )
    voice_id = voice_or_default(selected.provider, voice)
    if selected.name == name:
        await state.speech.require_voice(selected.provider, name, voice_id, "voice")
    if selected.name != name:
        voice_id = selected.provider.default_voice
    try:
        speech = await state.speech.synthesize(selected.provider, text, voice_id)
    except ProviderError as error:
        raise as_api_error(error, TTSProviderError) from error
    return Response(
        speech.mp3,
        media_type="audio/mpeg",
        headers={
            "X-TTS-Characters": str(speech.characters),
            "X-Audio-Duration-Ms": str(speech.duration_ms),
        },
    )


@endpoint(
    Doc(
        "Speak a text: the MP3",
        body=TTS_FIELDS,
        alternatives={"audio/mpeg": BINARY},
        errors=[TTSProviderError],
    ),
    write=True,
)
async def text_to_speech(call: Call) -> Response:
    fields = validate(call.json_object(), TTS_FIELDS)
    return await _speak(call, fields["text"], fields.get("provider"), fields.get("voice"))


@endpoint(
    Doc(
        "Hear a voice: a short sample as MP3",
        body=PREVIEW_FIELDS,
        alternatives={"audio/mpeg": BINARY},
        errors=[TTSProviderError],
    ),
    write=True,
)
async def preview(call: Call) -> Response:
    fields = validate(call.json_object(), PREVIEW_FIELDS)
    return await _speak(call, PREVIEW_TEXT, fields.get("provider"), fields["voice"])


@endpoint(
    Doc(
        "The voices of the speech providers",
        query=[VOICE_PROVIDER],
        response=list_of(ref("Voice")),
        errors=[InvalidParameterError, TTSProviderError],
    ),
    auth="optional",
)
async def list_voices(call: Call) -> Response:
    state = call.state
    wanted = VOICE_PROVIDER.read(call.request.query_params)
    names = state.providers.names("tts")
    if wanted is not None and wanted not in names:
        raise InvalidParameterError(
            "provider",
            "not_allowed",
            f"provider must be one of: {', '.join(names)}.",
            allowed=names,
        )
    voices: list[dict[str, Any]] = []
    for name in [wanted] if wanted else names:
        provider = state.providers.tts(name)
        if provider is not None:
            voices.extend(v.as_json() for v in await state.speech.voices(provider))
    return JSONResponse({"object": "list", "data": voices, "has_more": False, "next_cursor": None})


@endpoint(
    Doc(
        "A reply's MP3, by the signed URL a message carries (no key needed)",
        description="Takes `Range: bytes=first-last` (or `first-`, or `-count`): 206 with that "
        "part, as media players ask; any other range gets the whole clip.",
        responses={
            "206": {
                "description": "The part of the clip the Range header asked for",
                "content": {"audio/mpeg": {"schema": BINARY}},
            }
        },
        query=[
            Query("expires", description="From the signed URL."),
            Query("sig", description="From the signed URL."),
        ],
        alternatives={"audio/mpeg": BINARY},
        errors=[NotFoundError],
    ),
    auth="optional",
)
async def download_audio(call: Call) -> Response:
    state = call.state
    name = call.request.path_params["name"]
    clip_id = name.removesuffix(".mp3")
    params = call.request.query_params
    missing = NotFoundError("No such audio, or the link has expired.")
    if not name.endswith(".mp3") or not state.speech.verify(
        clip_id, params.get("expires"), params.get("sig")
    ):
        raise missing
    query = select(AudioClip).where(AudioClip.id == clip_id)
    clip = await state.db.read(lambda session: session.execute(query).scalar_one_or_none())
    if clip is None:
        # A chunk of a reply still being streamed: its row comes with the stored reply, but
        # its URL went out already. The signature vouches for it; a failed reply deleted it.
        storage_key = clip_key(clip_id)
    else:
        caller = call.principal
        if caller is not None and (caller.account_id, caller.mode) != (clip.account_id, clip.mode):
            raise missing  # a key from elsewhere must not learn that the clip exists
        storage_key = clip.storage_key
    store = state.speech.store
    headers = {"Cache-Control": "private, max-age=3600", "Accept-Ranges": "bytes"}
    wanted = call.request.headers.get("range")
    if wanted is not None:
        # Media elements (Safari's above all) ask for parts of a clip: answer 206 with that
        # part. A range we cannot serve is ignored: the whole clip, as HTTP allows.
        # The clip's row knows its size; a chunk still streaming has no row yet: ask.
        size = clip.byte_size if clip is not None else await store.size(storage_key)
        if size is None:
            raise missing
        part = byte_range(wanted, size)
        if part is not None:
            first, last = part
            blob = await store.open(storage_key, first, last)
            if blob is None:
                raise missing
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
            headers["Content-Length"] = str(last - first + 1)
            return StreamingResponse(
                blob.chunks, status_code=206, media_type="audio/mpeg", headers=headers
            )
    blob = await store.open(storage_key)
    if blob is None:
        raise missing
    # Streamed: a clip in an object store is passed on as it arrives, never held whole.
    headers["Content-Length"] = str(blob.size)
    return StreamingResponse(blob.chunks, media_type="audio/mpeg", headers=headers)


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range ``Range: bytes=...`` asks for (first and last, inclusive), or
    ``None`` for anything else: several ranges, another unit, a malformed or unsatisfiable
    one."""
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    start, dash, end = spec.strip().partition("-")
    if not dash or not (start + end).isascii() or len(start) > 18 or len(end) > 18:
        return None
    if not start:  # the last N bytes
        if not end.isdigit() or int(end) == 0 or size == 0:
            return None
        return max(0, size - int(end)), size - 1
    if not start.isdigit() or (end and not end.isdigit()):
        return None
    first = int(start)
    last = min(int(end), size - 1) if end else size - 1
    if first >= size or last < first:
        return None
    return first, last


routes = [
    Route("/v1/tts", text_to_speech, methods=["POST"]),
    Route("/v1/tts/preview", preview, methods=["POST"]),
    Route("/v1/tts/voices", list_voices, methods=["GET"]),
    Route("/v1/audio/{name}", download_audio, methods=["GET"]),
]
