"""``POST /v1/transcriptions``: speech to text on its own (multipart ``file``, optional
``language`` and ``provider``)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from avatarium.api.endpoint import Call, endpoint
from avatarium.api.multipart import check_form
from avatarium.api.operation import BINARY, Doc
from avatarium.api.validation import check_language
from avatarium.core.errors import InvalidRequestError, MissingParameterError, STTProviderError
from avatarium.core.wire import WireJSONResponse as JSONResponse
from avatarium.listening.decode import MAX_AUDIO_BYTES
from avatarium.providers.stt.base import Utterance


def require_form(call_is_multipart: bool, part: str) -> None:
    if not call_is_multipart:
        raise InvalidRequestError(
            f"Send multipart/form-data with the audio in a '{part}' file part.",
            details={"reason": "unsupported_content_type"},
        )


@endpoint(
    Doc(
        "Transcribe speech: an audio file to text with word timings",
        form={
            "file": BINARY,
            "language": {"type": "string", "maxLength": 35},
            "provider": {"type": "string", "maxLength": 40},
        },
        form_required=["file"],
        response="Transcription",
        errors=[STTProviderError],
    ),
    write=True,
    upload_limit=MAX_AUDIO_BYTES,
)
async def create_transcription(call: Call) -> Response:
    require_form(call.is_multipart, "file")
    form = await call.form(MAX_AUDIO_BYTES)
    check_form(form, {"language", "provider"}, {"file"})
    upload = form.files.get("file")
    if upload is None:
        raise MissingParameterError("file")
    language = form.fields.get("language") or None
    if language is not None:
        check_language(language)
    listening = call.state.listening
    chain = listening.chain(call.caller, form.fields.get("provider") or None, field="provider")
    listening.check_language(chain, language)
    decoded = await listening.decode(upload.data, "file")
    heard = await listening.transcribe(
        call.caller,
        chain,
        Utterance(decoded.pcm, language, upload.data, upload.filename, upload.content_type),
        field="file",
        words=True,
    )
    return JSONResponse(heard.as_json())


routes = [Route("/v1/transcriptions", create_transcription, methods=["POST"])]
