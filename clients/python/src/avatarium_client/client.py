"""The synchronous client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import httpx

from avatarium_client import resources as r
from avatarium_client._config import ClientConfig
from avatarium_client._core import (
    ENDED_EARLY,
    Call,
    StreamReader,
    lower_headers,
    message_frame,
    read_answer,
    stream_event,
    turn_event,
)
from avatarium_client._core import transport_error as _transport_error
from avatarium_client.errors import APIConnectionError, APIError
from avatarium_client.models import (
    Avatar,
    ClientToken,
    Conversation,
    Message,
    Page,
    Speech,
    StreamEvent,
    Usage,
    Voice,
)
from avatarium_client.retries import Attempts

T = TypeVar("T")


class Avatarium:
    """A client for one server and key. Every call retries what is safe to retry (see
    :mod:`avatarium_client.retries`); sends carry an automatic Idempotency-Key, so a retry
    after a lost answer never makes a second turn.

    ``api_key`` defaults to ``AVATARIUM_API_KEY`` and ``base_url`` to ``AVATARIUM_BASE_URL``
    (else ``http://127.0.0.1:8000``)."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        max_attempts: int = 3,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        deadline_s: float = 120.0,
    ) -> None:
        self.config = ClientConfig.build(
            api_key, base_url, timeout_s, max_attempts, backoff_base_s, backoff_max_s, deadline_s
        )
        self._http = httpx.Client(
            base_url=self.config.base_url, timeout=timeout_s, headers=self.config.headers
        )
        self.avatars = Avatars(self)
        self.conversations = Conversations(self)
        self.messages = Messages(self)
        self.tts = TextToSpeech(self)
        self.usage = UsageAPI(self)

    def __enter__(self) -> Avatarium:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def run(self, call: Call[T]) -> T:
        """Make ``call``, retrying as the policy allows; its answer or a typed error."""
        attempts = Attempts(self.config.retry)
        while True:
            try:
                response = self._http.request(
                    call.method, call.path, json=call.json, params=call.params, headers=call.headers
                )
                return read_answer(
                    response.status_code, lower_headers(response.headers), response.content, call
                )
            except httpx.TransportError as exc:
                time.sleep(attempts.wait_after(_transport_error(exc)))
            except APIError as error:
                time.sleep(attempts.wait_after(error))

    def stream(self, call: Call[Any]) -> Iterator[StreamEvent]:
        """A streamed send's events. Retries happen only before the first event (a retry
        later would repeat text the caller has already seen)."""
        attempts = Attempts(self.config.retry)
        while True:
            flowing = False
            try:
                with self._http.stream(
                    call.method, call.path, json=call.json, headers=call.headers
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        headers = lower_headers(response.headers)
                        read_answer(response.status_code, headers, response.content, call)
                    flowing = True
                    reader = StreamReader()
                    for text in response.iter_text():
                        yield from reader.feed(text)
                        if reader.done:
                            return
                    raise APIConnectionError(ENDED_EARLY)
            except httpx.TransportError as exc:
                if flowing:
                    raise _transport_error(exc) from exc
                time.sleep(attempts.wait_after(_transport_error(exc)))
            except APIError as error:
                if flowing:
                    raise
                time.sleep(attempts.wait_after(error))


class Avatars:
    def __init__(self, client: Avatarium) -> None:
        self._c = client

    def list(self) -> list[Avatar]:
        return self._c.run(r.list_avatars())

    def get(self, avatar_id: str) -> Avatar:
        return self._c.run(r.get_avatar(avatar_id))


class Conversations:
    def __init__(self, client: Avatarium) -> None:
        self._c = client

    def create(self, avatar_id: str, **options: Any) -> Conversation:
        """Options: ai_provider, tts_provider, voice_id, model, system_prompt, metadata, byok."""
        return self._c.run(r.create_conversation(avatar_id, **options))

    def list(
        self, limit: int | None = None, starting_after: str | None = None, **filters: Any
    ) -> Page[Conversation]:
        return self._c.run(r.list_conversations(limit, starting_after, **filters))

    def get(self, conversation_id: str) -> Conversation:
        return self._c.run(r.get_conversation(conversation_id))

    def delete(self, conversation_id: str) -> dict[str, Any]:
        return self._c.run(r.delete_conversation(conversation_id))

    def end(self, conversation_id: str) -> Conversation:
        return self._c.run(r.end_conversation(conversation_id))

    def client_token(self, conversation_id: str, expires_in: int | None = None) -> ClientToken:
        return self._c.run(r.client_token(conversation_id, expires_in))

    def connect(self, conversation_id: str, *, token: str | None = None) -> ConversationSocket:
        """A WebSocket to the conversation (by the client's key, or a client ``token``)."""
        return ConversationSocket(self._c.config, conversation_id, token)


class Messages:
    def __init__(self, client: Avatarium) -> None:
        self._c = client

    def send(self, conversation_id: str, content: str, *, tts: bool | None = None) -> Message:
        return self._c.run(r.send_message(conversation_id, content, tts))

    def stream(
        self, conversation_id: str, content: str, *, tts: bool | None = None
    ) -> Iterator[StreamEvent]:
        return self._c.stream(r.stream_message(conversation_id, content, tts))

    def list(
        self,
        conversation_id: str,
        limit: int | None = None,
        starting_after: str | None = None,
        order: str | None = None,
    ) -> Page[Message]:
        return self._c.run(r.list_messages(conversation_id, limit, starting_after, order))

    def get(self, conversation_id: str, message_id: str) -> Message:
        return self._c.run(r.get_message(conversation_id, message_id))


class TextToSpeech:
    def __init__(self, client: Avatarium) -> None:
        self._c = client

    def speak(self, text: str, *, voice: str | None = None, provider: str | None = None) -> Speech:
        return self._c.run(r.speak(text, voice, provider))

    def preview(self, voice: str, *, provider: str | None = None) -> Speech:
        return self._c.run(r.preview_voice(voice, provider))

    def voices(self, provider: str | None = None) -> list[Voice]:
        return self._c.run(r.list_voices(provider))


class UsageAPI:
    def __init__(self, client: Avatarium) -> None:
        self._c = client

    def get(self) -> Usage:
        return self._c.run(r.get_usage())


class ConversationSocket:
    """Many turns over one WebSocket. Use as a context manager::

    with client.conversations.connect(conversation_id) as socket:
        for event in socket.send("Hello!"):
            ...
    """

    def __init__(self, config: ClientConfig, conversation_id: str, token: str | None) -> None:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        headers = None if token else {"Authorization": f"Bearer {config.api_key}"}
        try:
            # Entered like a context manager: what newer websockets releases ask for, and
            # what older ones (where connect() returns the connection itself) also accept.
            self._ws = connect(
                config.socket_url(conversation_id, token),
                additional_headers=headers,
                open_timeout=config.timeout_s,
            ).__enter__()
            ready = json.loads(self._ws.recv())
        except (OSError, WebSocketException) as exc:
            raise _transport_error(exc) from exc
        if ready.get("type") != "ready":
            self._ws.close()
            stream_event(str(ready.get("type")), ready)  # raises the refusal's error
        self.conversation_id = conversation_id

    def __enter__(self) -> ConversationSocket:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def send(self, content: str, *, tts: bool | None = None) -> Iterator[StreamEvent]:
        """Send a message; the turn's events, ending with Done. A cancelled turn just ends;
        a failed one raises its typed error (the socket stays usable)."""
        self._ws.send(message_frame(content, tts))
        while True:
            event, ended = turn_event(self._ws.recv())
            if event is not None:
                yield event
            if ended:
                return

    def cancel(self) -> None:
        """Stop the turn in progress (nothing is stored)."""
        self._ws.send(json.dumps({"type": "cancel"}))

    def ping(self) -> None:
        self._ws.send(json.dumps({"type": "ping"}))
        while json.loads(self._ws.recv()).get("type") != "pong":
            pass

    def close(self) -> None:
        self._ws.close()
