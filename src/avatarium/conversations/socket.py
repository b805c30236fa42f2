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
import time
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
from avatarium.conversations.models import Conversation
from avatarium.conversations.replies import Hearing, PreparedSend, ReplyService
from avatarium.conversations.schemas import MAX_CONTENT
from avatarium.conversations.voice import MODES, VoiceInput
from avatarium.core.errors import (
    AuthenticationError,
    AvatariumError,
    InvalidParameterError,
    InvalidRequestError,
    MissingApiKeyError,
    MissingParameterError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from avatarium.core.shutdown import TURN_STATE
from avatarium.core.wire import wire_json
from avatarium.keys.service import Principal
from avatarium.listening.service import Heard
from avatarium.providers.selection import Selected
from avatarium.providers.stt.base import SAMPLE_RATE, STTProvider

log = logging.getLogger(__name__)

CLIENT_FRAMES = ("message", "cancel", "ping", "audio.start", "audio.stop")
AUDIO_START_FIELDS = [
    Field("type", str, required=True),
    Field("format", str, required=True, allowed=["pcm_s16le"]),
    Field("sample_rate", int, required=True, minimum=SAMPLE_RATE, maximum=SAMPLE_RATE),
    Field("mode", str, allowed=list(MODES)),
]
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
        self._principal: Principal | None = None
        self._conversation: Conversation | None = None
        self._voice: VoiceInput | None = None
        self._state_name: str | None = None
        self._prepared: PreparedSend | None = None
        self._interrupt_pending = False
        # The last reply's audio, as the client plays it: barge-in until it has played.
        self._reply_id: str | None = None
        self._playing_until = 0.0
        # Shared with the server's protocol: a socket mid-turn is closed (1012) only once
        # the turn is over when the server shuts down (server_protocol.py).
        shared = websocket.scope.get(TURN_STATE)  # an empty dict until this socket fills it
        self._lifecycle: dict[str, Any] = shared if isinstance(shared, dict) else {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._lifecycle["idle"] = self._idle

    @property
    def app_state(self) -> AppState:
        return self._state

    # Voice mode: states, the recogniser, turns and barge-in.

    async def set_state(self, state: str) -> None:
        """A ``state`` frame when the state changes (voice mode only)."""
        if self._voice is None or state == self._state_name:
            return
        self._state_name = state
        await self.send({"type": "state", "state": state})

    def language(self) -> str | None:
        return self._conversation.language if self._conversation is not None else None

    def stt_chain(self, *, quiet: bool = False) -> list[Selected[STTProvider]] | None:
        """The conversation's recogniser and fallbacks (``quiet``: None instead of the 400
        when it cannot serve, for decodes nobody waits on)."""
        assert self._principal is not None and self._conversation is not None
        try:
            return self._state.listening.chain(self._principal, self._conversation.stt_provider)
        except AvatariumError:
            if quiet:
                return None
            raise

    def _turn_running(self) -> bool:
        return self._turn is not None and not self._turn.done()

    def replying(self) -> bool:
        """A reply is being written, or its audio is still playing on the client."""
        return self._turn_running() or time.monotonic() < self._playing_until

    async def wait_for_turn(self) -> None:
        turn = self._turn
        if turn is not None and not turn.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(turn)

    async def barge_in(self) -> None:
        """The user spoke over the reply: stop it and keep what was spoken."""
        if self._turn_running():
            if self._prepared is not None:
                self._prepared.interrupt()
            else:
                self._interrupt_pending = True
            await self.wait_for_turn()
            return
        if self._reply_id is not None and time.monotonic() < self._playing_until:
            # Every chunk had been sent: the text stays whole, the reply is marked.
            assert self._principal is not None
            reply_id, self._reply_id, self._playing_until = self._reply_id, None, 0.0
            await self._state.conversations.mark_interrupted(
                self._principal, self._conversation_id, reply_id
            )
            await self.send({"type": "interrupted", "message_id": reply_id})

    async def start_voice_turn(self, heard: Heard) -> None:
        async def hear() -> Heard:
            return heard

        self._cancel_requested = False
        self._turn = asyncio.ensure_future(self._run_turn(hear, True))

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
            self._principal = await self.authenticate()
            self._conversation = await self._state.conversations.require(
                self._principal, self._conversation_id
            )
        except AvatariumError as error:
            await self.refuse(error)
            return
        await self.send({"type": "ready", "conversation_id": self._conversation_id})
        try:
            while True:
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    await self._on_audio(message["bytes"])
                else:
                    await self._on_frame(message.get("text"))
        except WebSocketDisconnect:
            return
        finally:
            if self._voice is not None:
                await self._voice.close()
            await self._stop_turn()

    async def _on_audio(self, pcm: bytes) -> None:
        try:
            if self._voice is None or not self._voice.open:
                raise InvalidRequestError(
                    "Send audio.start before audio frames.",
                    details={"reason": "audio_not_started"},
                )
            await self._voice.on_audio(pcm)
        except AvatariumError as error:
            await self.send_error(error)

    async def _start_audio(self, frame: dict[str, Any]) -> None:
        fields = validate(frame, AUDIO_START_FIELDS)
        self._principal = await self.authenticate()
        self._conversation = await self._state.conversations.require(
            self._principal, self._conversation_id
        )
        self.stt_chain()  # a recogniser that cannot serve is refused now, not mid-turn
        if self._voice is not None:
            await self._voice.close()
        self._voice = VoiceInput(self, fields.get("mode", "push_to_talk"))
        if self._voice.mode == "push_to_talk":
            if self.replying():
                await self.barge_in()  # pressing to talk over the avatar stops it
            await self.set_state("RECORDING")
        else:
            await self.set_state("SPEAKING" if self._turn_running() else "LISTENING")

    async def _on_frame(self, text: str | None) -> None:
        try:
            frame = _parse(text)
            kind = frame.get("type")
            if kind == "ping":
                await self.send({"type": "pong"})
            elif kind == "audio.start":
                await self._start_audio(frame)
            elif kind == "audio.stop":
                if self._voice is None or not self._voice.open:
                    raise InvalidRequestError(
                        "No audio was started.", details={"reason": "audio_not_started"}
                    )
                await self._voice.stop()
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
                self._refuse_while_closing()
                self._cancel_requested = False
                self._idle.clear()
                self._turn = asyncio.ensure_future(
                    self._run_turn(fields["content"], fields.get("tts", True))
                )
        except AvatariumError as error:
            await self.send_error(error)

    def _refuse_while_closing(self) -> None:
        if self._lifecycle.get("closing"):
            raise ServiceUnavailableError(
                "The server is restarting; reconnect and send again.",
                details={"reason": "shutting_down"},
            )

    async def _run_turn(self, content: str | Hearing, want_speech: bool) -> None:
        self._idle.clear()
        try:
            await self._turn_body(content, want_speech)
        finally:
            self._idle.set()

    async def _turn_body(self, content: str | Hearing, want_speech: bool) -> None:
        state = self._state
        admission = None
        self._prepared, self._interrupt_pending = None, False
        self._reply_id, self._playing_until = None, 0.0
        try:
            principal = await self.authenticate()
            admission = await state.gate.admit(principal)
            conversation, history = await state.conversations.load_with_history(
                principal, self._conversation_id
            )
            self._principal, self._conversation = principal, conversation
            await self.set_state("THINKING")
            replies = ReplyService(state.conversations)
            prepared = await replies.start(
                principal, conversation, history, content, want_speech, base_url(self._ws),
                state.usage, chunked=True,
            )  # fmt: skip
            self._prepared = prepared
            if self._interrupt_pending:
                prepared.interrupt()
            audio_started = 0.0
            audio_ms = 0
            async for name, data in reply_frames(replies.run(prepared), current_request_id()):
                if name == "audio":
                    if not audio_started:
                        audio_started = time.monotonic()
                        await self.set_state("SPEAKING")
                    audio_ms += int(data.get("duration_ms") or 0)
                await self.send({"type": FRAME_TYPES.get(name, name), **data})
                if name == "done":
                    self._reply_id = data["id"]
                    self._playing_until = audio_started + audio_ms / 1000 if audio_ms else 0.0
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
            self._prepared = None
            if admission is not None:
                await admission.release()
            if self._voice is not None:
                with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
                    await self.set_state(self._voice.resting_state())

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
            "type", "not_allowed", f"type must be one of: {', '.join(CLIENT_FRAMES)}.",
            allowed=list(CLIENT_FRAMES),
        )  # fmt: skip
    return frame


async def conversation_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    conversation_id = websocket.path_params["conversation_id"]
    await ConversationSocket(websocket, state_of(websocket), conversation_id).serve()


routes = [WebSocketRoute("/v1/conversations/{conversation_id}/ws", conversation_socket)]
