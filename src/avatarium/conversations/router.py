"""HTTP routes for conversations and messages (thin: parse, call the service, encode)."""

from __future__ import annotations

import asyncio
import hashlib
from contextlib import aclosing
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from avatarium.analytics.router import EXPORT_QUERY, export_response
from avatarium.api.endpoint import Call, endpoint
from avatarium.api.errors import error_response
from avatarium.api.frames import reply_frames
from avatarium.api.multipart import check_form, form_bool
from avatarium.api.operation import BINARY, Doc
from avatarium.api.request_context import current_request_id
from avatarium.api.sse import EventStreamResponse
from avatarium.api.urls import base_url
from avatarium.api.validation import LIMIT, STARTING_AFTER, validate
from avatarium.api.wire_schemas import deleted, list_of, ref
from avatarium.conversations.idempotency import Attempt, Replay, body_fingerprint, key_from
from avatarium.conversations.models import Conversation
from avatarium.conversations.replies import Hearing, ReplyService
from avatarium.conversations.schemas import (
    AVATAR_ID,
    CLIENT_TOKEN_FIELDS,
    CREATE_FIELDS,
    ORDER,
    SEND_FIELDS,
    STATUS,
    parse_new_conversation,
)
from avatarium.core.clock import rfc3339
from avatarium.core.errors import (
    AIProviderError,
    AvatarNotFoundError,
    ConversationNotFoundError,
    MessageNotFoundError,
    MissingParameterError,
    QuotaExceededError,
    STTProviderError,
    TTSProviderError,
)
from avatarium.core.events import Done, ErrorEvent
from avatarium.core.wire import WireJSONResponse as JSONResponse
from avatarium.listening.decode import MAX_AUDIO_BYTES, DecodedAudio
from avatarium.listening.service import Heard, no_speech
from avatarium.providers.stt.base import Utterance


def _replay(replay: Replay) -> Response:
    return Response(
        replay.body,
        status_code=replay.status_code,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


async def _claim(call: Call, body: dict[str, Any]) -> Attempt | Replay | None:
    key = key_from(call.request.headers)
    if key is None:
        return None
    endpoint_name = f"{call.request.method} {call.request.url.path}"
    return await call.state.conversations.idempotency.claim(
        call.caller, key, endpoint_name, body_fingerprint(body)
    )


@endpoint(
    Doc(
        "Start a conversation with an avatar",
        body=CREATE_FIELDS,
        response="Conversation",
        idempotent=True,
        errors=[AvatarNotFoundError, QuotaExceededError, TTSProviderError],
    ),
    write=True,
)
async def create_conversation(call: Call) -> Response:
    body = call.json_object()
    claimed = await _claim(call, body)
    if isinstance(claimed, Replay):
        return _replay(claimed)
    try:
        new = parse_new_conversation(body, call.state.providers)
        result = await call.state.conversations.create(
            call.caller, new, claimed, base_url(call.request)
        )
    except BaseException:
        if claimed is not None:
            await call.state.conversations.idempotency.abandon(claimed)
        raise
    finally:
        if claimed is not None:
            claimed.stop_renewing()
    return JSONResponse(result)


@endpoint(
    Doc(
        "List conversations, newest first (or, with format, export their transcripts)",
        description="With `format=csv|jsonl` the answer is a streamed transcript export, one "
        "row or line per message (`start`, `end` and `avatar_id` narrow it).",
        query=[LIMIT, STARTING_AFTER, STATUS, AVATAR_ID, *EXPORT_QUERY],
        response=list_of(ref("Conversation")),
        alternatives={"text/csv": {"type": "string"}, "application/x-ndjson": {"type": "string"}},
    )
)
async def list_conversations(call: Call) -> Response:
    params = call.request.query_params
    if "format" in params:  # Avatarium's export form (SPEC section 11)
        return await export_response(call)
    return JSONResponse(
        await call.state.conversations.list_conversations(
            call.caller,
            limit=LIMIT.read(params),
            status=STATUS.read(params),
            avatar_id=AVATAR_ID.read(params),
            cursor=STARTING_AFTER.read(params),
        )
    )


@endpoint(
    Doc(
        "A conversation with its messages",
        response="Conversation",
        errors=[ConversationNotFoundError],
    ),
    client_token=True,
)
async def get_conversation(call: Call) -> Response:
    conversation_id = call.request.path_params["conversation_id"]
    return JSONResponse(
        await call.state.conversations.get(call.caller, conversation_id, base_url(call.request))
    )


@endpoint(
    Doc(
        "Delete a conversation with its messages and audio",
        response=deleted("conversation"),
        errors=[ConversationNotFoundError],
    ),
    write=True,
)
async def delete_conversation(call: Call) -> Response:
    conversation_id = call.request.path_params["conversation_id"]
    return JSONResponse(await call.state.conversations.delete(call.caller, conversation_id))


@endpoint(
    Doc(
        "End a conversation (it stays readable; sends are refused)",
        body=[],
        body_required=False,
        response="Conversation",
        errors=[ConversationNotFoundError],
    ),
    write=True,
)
async def end_conversation(call: Call) -> Response:
    call.json_object(optional=True)
    conversation_id = call.request.path_params["conversation_id"]
    return JSONResponse(await call.state.conversations.end(call.caller, conversation_id))


async def _spoken_send(call: Call) -> tuple[dict[str, Any], dict[str, Any], DecodedAudio]:
    """A multipart send: its fields, the fingerprint its Idempotency-Key is bound to, and
    its audio decoded (every 400 of the upload comes before any lookup)."""
    form = await call.form(MAX_AUDIO_BYTES)
    check_form(form, {"stream", "tts"}, {"audio"})
    upload = form.files.get("audio")
    if upload is None:
        raise MissingParameterError("audio")
    fields = {
        name: value for name in ("stream", "tts") if (value := form_bool(form, name)) is not None
    }
    decoded = await call.state.listening.decode(upload.data, "audio")
    if not await asyncio.to_thread(call.state.listening.has_speech, decoded.pcm):
        raise no_speech("audio")
    fingerprint = {**fields, "audio_sha256": hashlib.sha256(upload.data).hexdigest()}
    return fields, fingerprint, decoded


def _hearing(call: Call, conversation: Conversation, decoded: DecodedAudio) -> Hearing:
    """Transcribes the upload once the send has passed its checks."""
    listening = call.state.listening

    async def hear() -> Heard:
        chain = listening.chain(call.caller, conversation.stt_provider)
        listening.check_language(chain, conversation.language)
        utterance = Utterance(decoded.pcm, conversation.language)
        return await listening.transcribe(
            call.caller, chain, utterance, field="audio", checked_speech=True
        )

    return hear


@endpoint(
    Doc(
        "Send a message and get the avatar's reply (text and speech)",
        description="JSON `{content, stream?, tts?}`, or `multipart/form-data` with an "
        "`audio` file (what was said becomes the message). With `stream: true` the answer "
        "is Server-Sent Events: `message` (a piece of text), `audio` (speech for the next "
        "chunk of it), then `done` (the stored reply) or `error`.",
        body=SEND_FIELDS,
        form={"audio": BINARY, "stream": {"type": "string", "enum": ["true", "false"]},
              "tts": {"type": "string", "enum": ["true", "false"]}},
        form_required=["audio"],
        response="Message",
        alternatives={"text/event-stream": ref("ReplyEvent")},
        idempotent=True,
        errors=[ConversationNotFoundError, QuotaExceededError, AIProviderError,
                TTSProviderError, STTProviderError],
    ),
    write=True,
    cancel_on_disconnect=True,
    client_token=True,
    upload_limit=MAX_AUDIO_BYTES,
)  # fmt: skip
async def send_message(call: Call) -> Response:
    state = call.state
    decoded: DecodedAudio | None = None
    if call.is_multipart:
        fields, body, decoded = await _spoken_send(call)
    else:
        body = call.json_object()
        fields = validate(body, SEND_FIELDS)
    streamed = bool(fields.get("stream"))
    conversation_id = call.request.path_params["conversation_id"]
    conversation, history = await state.conversations.load_with_history(
        call.caller, conversation_id
    )
    # A stream cannot be replayed, so only non-streamed sends are idempotent.
    claimed = None if streamed else await _claim(call, body)
    if isinstance(claimed, Replay):
        return _replay(claimed)
    replies = ReplyService(state.conversations)
    try:
        prepared = await replies.start(
            call.caller,
            conversation,
            history,
            fields["content"] if decoded is None else _hearing(call, conversation, decoded),
            fields.get("tts", True),
            base_url(call.request),
            state.usage,
            chunked=streamed,
        )
    except BaseException:
        if claimed is not None:
            await state.conversations.idempotency.abandon(claimed)
        raise
    if streamed:
        return EventStreamResponse(
            reply_frames(replies.run(prepared), current_request_id()),
            heartbeat_s=state.settings.sse_heartbeat_s,
            on_close=call.hold_admission(),  # the limit headers come from the pipeline
        )
    prepared.attempt = claimed
    try:
        # The non-streamed reply is the event stream collected.
        async with aclosing(replies.run(prepared)) as events:
            async for event in events:
                if isinstance(event, Done):
                    return JSONResponse(event.message)
                if isinstance(event, ErrorEvent):
                    return error_response(event.error)
    finally:
        if claimed is not None:
            claimed.stop_renewing()
    raise RuntimeError("reply stream ended without Done or ErrorEvent")


@endpoint(
    Doc(
        "A short-lived token for a browser to use this one conversation",
        body=CLIENT_TOKEN_FIELDS,
        body_required=False,
        response="ClientToken",
        errors=[ConversationNotFoundError],
    ),
    write=True,
)
async def create_client_token(call: Call) -> Response:
    state = call.state
    fields = validate(call.json_object(optional=True), CLIENT_TOKEN_FIELDS)
    conversation_id = call.request.path_params["conversation_id"]
    await state.conversations.require(call.caller, conversation_id)
    ttl = fields.get("expires_in", state.settings.client_token_ttl_s)
    issued = state.client_tokens.issue(call.caller, conversation_id, ttl)
    return JSONResponse(
        {
            "object": "client_token",
            "token": issued.token,
            "conversation_id": issued.conversation_id,
            "expires_at": rfc3339(issued.expires_at),
        }
    )


@endpoint(
    Doc(
        "A conversation's messages, oldest first by default",
        query=[LIMIT, STARTING_AFTER, ORDER],
        response=list_of(ref("Message")),
        errors=[ConversationNotFoundError],
    ),
    client_token=True,
)
async def list_messages(call: Call) -> Response:
    query = call.request.query_params
    return JSONResponse(
        await call.state.conversations.list_messages(
            call.caller,
            call.request.path_params["conversation_id"],
            base_url(call.request),
            limit=LIMIT.read(query),
            order=ORDER.read(query),
            cursor=STARTING_AFTER.read(query),
        )
    )


@endpoint(
    Doc(
        "One message", response="Message", errors=[ConversationNotFoundError, MessageNotFoundError]
    ),
    client_token=True,
)
async def get_message(call: Call) -> Response:
    params = call.request.path_params
    return JSONResponse(
        await call.state.conversations.get_message(
            call.caller, params["conversation_id"], params["message_id"], base_url(call.request)
        )
    )


routes = [
    Route("/v1/conversations", create_conversation, methods=["POST"]),
    Route("/v1/conversations", list_conversations, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}", get_conversation, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}", delete_conversation, methods=["DELETE"]),
    Route("/v1/conversations/{conversation_id}/end", end_conversation, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}/messages", send_message, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}/messages", list_messages, methods=["GET"]),
    Route(
        "/v1/conversations/{conversation_id}/client_tokens",
        create_client_token,
        methods=["POST"],
    ),
    Route(
        "/v1/conversations/{conversation_id}/messages/{message_id}", get_message, methods=["GET"]
    ),
]
