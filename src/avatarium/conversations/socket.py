"""``GET /v1/conversations/{id}/ws``: many turns over one WebSocket.

The socket is accepted first so that a refusal can carry its close code (4401, 4403, 4404)
and an ``error`` frame saying why; a close before accepting would reach the client as a bare
HTTP 403. Each turn is authenticated again (a revoked key or an expired client token stops
at the next turn), admitted by the rate and concurrency limits, and charged to the quota,
exactly like a REST send. A failed turn ends with an ``error`` frame and the socket stays
open; ``cancel`` ends the current turn with a ``cancelled`` frame and stores nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from avatarium.api.body import decode_json
from avatarium.api.endpoint import authenticate_token, bearer_token, check_permission
from avatarium.api.frames import reply_frames
from avatarium.api.request_context import current_request_id
from avatarium.api.state import AppState, state_of
from avatarium.api.urls import base_url
from avatarium.api.validation import Field, validate
from avatarium.conversations.replies import ReplyService
from avatarium.conversations.schemas import MAX_CONTENT
from avatarium.core.errors import (
    AuthenticationError,
    AvatariumError,
    InvalidParameterError,
    InvalidRequestError,
    MissingApiKeyError,
    MissingParameterError,
    PermissionDeniedError,
)
from avatarium.core.wire import wire_json
from avatarium.keys.service import Principal

log = logging.getLogger(__name__)

CLIENT_FRAMES = ("message", "cancel", "ping")
MESSAGE_FIELDS = [
    Field("type", str, required=True),
    Field("content", str, required=True, not_blank=True, max_length=MAX_CONTENT),
    Field("tts", bool),
]
# SSE's event names, as WebSocket frame types.
FRAME_TYPES = {"message": "message.delta"}
# Errors that end the socket rather than the turn: the credential no longer works.
FATAL = (AuthenticationError, PermissionDeniedError)


class ConversationSocket:
    """One open socket: reads client frames, runs at most one turn at a time."""

    def __init__(self, websocket: WebSocket, state: AppState, conversation_id: str) -> None:
        self._ws = websocket
        self._state = state
        self._conversation_id = conversation_id
        self._send_lock = asyncio.Lock()  # frames from the turn and from the reader interleave
        self._turn: asyncio.Task[None] | None = None
        self._cancel_requested = False

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._ws.send_text(wire_json(frame))

    async def send_error(self, error: AvatariumError) -> None:
        frame: dict[str, Any] = {"type": "error", **error.body(current_request_id())}
        retry_after = error.headers.get("Retry-After")
        if retry_after is not None:
            frame["retry_after"] = int(retry_after)  # what HTTP would say in the header
        await self.send(frame)

    async def refuse(self, error: AvatariumError) -> None:
        """Say why, then close with the error's code."""
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await self.send_error(error)
            await self._ws.close(code=error.ws_close_code, reason=error.code)

    async def authenticate(self) -> Principal:
        """The caller, by ``Authorization`` header or ``?token=`` (browsers cannot set headers
        on a WebSocket), allowed to send to this conversation."""
        token = _credential(self._ws)
        if not token:
            raise MissingApiKeyError(
                "No credential was given. Send 'Authorization: Bearer <key>' or ?token=."
            )
        principal = await authenticate_token(self._state, token)
        check_permission(principal, True, self._conversation_id)
        return principal

    async def serve(self) -> None:
        try:
            principal = await self.authenticate()
            await self._state.conversations.require(principal, self._conversation_id)
        except AvatariumError as error:
            await self.refuse(error)
            return
        await self.send({"type": "ready", "conversation_id": self._conversation_id})
        try:
            while True:
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                await self._on_frame(message.get("text"))
        except WebSocketDisconnect:
            return
        finally:
            await self._stop_turn()

    async def _on_frame(self, text: str | None) -> None:
        try:
            frame = _parse(text)
            kind = frame.get("type")
            if kind == "ping":
                await self.send({"type": "pong"})
            elif kind == "cancel":
                if self._turn is not None and not self._turn.done():
                    self._cancel_requested = True
                    self._turn.cancel()
            else:
                fields = validate(frame, MESSAGE_FIELDS)
                if self._turn is not None and not self._turn.done():
                    raise InvalidRequestError(
                        "A reply is still being written; wait for it or send cancel.",
                        details={"reason": "turn_in_progress"},
                    )
                self._cancel_requested = False
                self._turn = asyncio.ensure_future(
                    self._run_turn(fields["content"], fields.get("tts", True))
                )
        except AvatariumError as error:
            await self.send_error(error)

    async def _run_turn(self, content: str, want_speech: bool) -> None:
        state = self._state
        admission = None
        try:
            principal = await self.authenticate()
            admission = await state.gate.admit(principal)
            conversation, history = await state.conversations.load_with_history(
                principal, self._conversation_id
            )
            replies = ReplyService(state.conversations)
            prepared = await replies.start(
                principal, conversation, history, content, want_speech, base_url(self._ws),
                state.usage, chunked=True,
            )  # fmt: skip
            async for name, data in reply_frames(replies.run(prepared), current_request_id()):
                await self.send({"type": FRAME_TYPES.get(name, name), **data})
        except FATAL as error:
            await self.refuse(error)
        except AvatariumError as error:
            await self.send_error(error)
        except asyncio.CancelledError:
            if not self._cancel_requested:
                raise  # the socket is closing
            await self.send({"type": "cancelled"})
        except (WebSocketDisconnect, OSError):
            pass  # the socket went away mid-turn; the reply has stopped and stored nothing
        finally:
            if admission is not None:
                await admission.release()

    async def _stop_turn(self) -> None:
        turn = self._turn
        if turn is not None and not turn.done():
            turn.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await turn


def _credential(websocket: WebSocket) -> str | None:
    token = bearer_token(websocket)
    return token if token is not None else websocket.query_params.get("token")


def _parse(text: str | None) -> dict[str, Any]:
    """A client frame: a JSON object with a known ``type``."""
    if text is None:
        raise InvalidRequestError("Frames must be JSON text, not binary.")
    frame = decode_json(text, "The frame")
    if not isinstance(frame, dict):
        raise InvalidRequestError("The frame must be a JSON object.")
    kind = frame.get("type")
    if kind is None:
        raise MissingParameterError("type")
    if kind not in CLIENT_FRAMES:
        raise InvalidParameterError(
            "type", "not_allowed", "type must be one of: message, cancel, ping.",
            allowed=list(CLIENT_FRAMES),
        )  # fmt: skip
    return frame


async def conversation_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    conversation_id = websocket.path_params["conversation_id"]
    await ConversationSocket(websocket, state_of(websocket), conversation_id).serve()


routes = [WebSocketRoute("/v1/conversations/{conversation_id}/ws", conversation_socket)]
