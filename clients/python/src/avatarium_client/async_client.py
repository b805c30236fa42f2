"""The asyncio client: the same calls as :class:`avatarium_client.Avatarium`, awaited."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
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


class AsyncAvatarium:
    """Asyncio twin of :class:`avatarium_client.Avatarium` (same arguments, same retries)."""

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
        self._http = httpx.AsyncClient(
            base_url=self.config.base_url, timeout=timeout_s, headers=self.config.headers
        )
        self.avatars = AsyncAvatars(self)
        self.conversations = AsyncConversations(self)
        self.messages = AsyncMessages(self)
        self.tts = AsyncTextToSpeech(self)
        self.usage = AsyncUsageAPI(self)

    async def __aenter__(self) -> AsyncAvatarium:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def run(self, call: Call[T]) -> T:
        attempts = Attempts(self.config.retry)
        while True:
            try:
                response = await self._http.request(
                    call.method, call.path, json=call.json, params=call.params, headers=call.headers
                )
                return read_answer(
                    response.status_code, lower_headers(response.headers), response.content, call
                )
            except httpx.TransportError as exc:
                await asyncio.sleep(attempts.wait_after(_transport_error(exc)))
            except APIError as error:
                await asyncio.sleep(attempts.wait_after(error))

    async def stream(self, call: Call[Any]) -> AsyncIterator[StreamEvent]:
        attempts = Attempts(self.config.retry)
        while True:
            flowing = False
            try:
                async with self._http.stream(
                    call.method, call.path, json=call.json, headers=call.headers
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        headers = lower_headers(response.headers)
                        read_answer(response.status_code, headers, response.content, call)
                    flowing = True
                    reader = StreamReader()
                    async for text in response.aiter_text():
                        for event in reader.feed(text):
                            yield event
                        if reader.done:
                            return
                    raise APIConnectionError(ENDED_EARLY)
            except httpx.TransportError as exc:
                if flowing:
                    raise _transport_error(exc) from exc
                await asyncio.sleep(attempts.wait_after(_transport_error(exc)))
            except APIError as error:
                if flowing:
                    raise
                await asyncio.sleep(attempts.wait_after(error))


class AsyncAvatars:
    def __init__(self, client: AsyncAvatarium) -> None:
        self._c = client

    async def list(self) -> list[Avatar]:
        return await self._c.run(r.list_avatars())

    async def get(self, avatar_id: str) -> Avatar:
        return await self._c.run(r.get_avatar(avatar_id))


class AsyncConversations:
    def __init__(self, client: AsyncAvatarium) -> None:
        self._c = client

    async def create(self, avatar_id: str, **options: Any) -> Conversation:
        return await self._c.run(r.create_conversation(avatar_id, **options))

    async def list(
        self, limit: int | None = None, starting_after: str | None = None, **filters: Any
    ) -> Page[Conversation]:
        return await self._c.run(r.list_conversations(limit, starting_after, **filters))

    async def get(self, conversation_id: str) -> Conversation:
        return await self._c.run(r.get_conversation(conversation_id))

    async def delete(self, conversation_id: str) -> dict[str, Any]:
        return await self._c.run(r.delete_conversation(conversation_id))

    async def end(self, conversation_id: str) -> Conversation:
        return await self._c.run(r.end_conversation(conversation_id))

    async def client_token(
        self, conversation_id: str, expires_in: int | None = None
    ) -> ClientToken:
        return await self._c.run(r.client_token(conversation_id, expires_in))

    async def connect(
        self, conversation_id: str, *, token: str | None = None
    ) -> AsyncConversationSocket:
        return await AsyncConversationSocket.open(self._c.config, conversation_id, token)


class AsyncMessages:
    def __init__(self, client: AsyncAvatarium) -> None:
        self._c = client

    async def send(self, conversation_id: str, content: str, *, tts: bool | None = None) -> Message:
        return await self._c.run(r.send_message(conversation_id, content, tts))

    def stream(
        self, conversation_id: str, content: str, *, tts: bool | None = None
    ) -> AsyncIterator[StreamEvent]:
        return self._c.stream(r.stream_message(conversation_id, content, tts))

    async def list(
        self,
        conversation_id: str,
        limit: int | None = None,
        starting_after: str | None = None,
        order: str | None = None,
    ) -> Page[Message]:
        return await self._c.run(r.list_messages(conversation_id, limit, starting_after, order))

    async def get(self, conversation_id: str, message_id: str) -> Message:
        return await self._c.run(r.get_message(conversation_id, message_id))


class AsyncTextToSpeech:
    def __init__(self, client: AsyncAvatarium) -> None:
        self._c = client

    async def speak(
        self, text: str, *, voice: str | None = None, provider: str | None = None
    ) -> Speech:
        return await self._c.run(r.speak(text, voice, provider))

    async def preview(self, voice: str, *, provider: str | None = None) -> Speech:
        return await self._c.run(r.preview_voice(voice, provider))

    async def voices(self, provider: str | None = None) -> list[Voice]:
        return await self._c.run(r.list_voices(provider))


class AsyncUsageAPI:
    def __init__(self, client: AsyncAvatarium) -> None:
        self._c = client

    async def get(self) -> Usage:
        return await self._c.run(r.get_usage())


class AsyncConversationSocket:
    """Asyncio twin of :class:`avatarium_client.ConversationSocket`."""

    def __init__(self, ws: Any, conversation_id: str) -> None:
        self._ws = ws
        self.conversation_id = conversation_id

    @classmethod
    async def open(
        cls, config: ClientConfig, conversation_id: str, token: str | None
    ) -> AsyncConversationSocket:
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        headers = None if token else {"Authorization": f"Bearer {config.api_key}"}
        try:
            ws = await connect(
                config.socket_url(conversation_id, token),
                additional_headers=headers,
                open_timeout=config.timeout_s,
            )
            ready = json.loads(await ws.recv())
        except (OSError, WebSocketException) as exc:
            raise _transport_error(exc) from exc
        if ready.get("type") != "ready":
            await ws.close()
            stream_event(str(ready.get("type")), ready)  # raises the refusal's error
        return cls(ws, conversation_id)

    async def __aenter__(self) -> AsyncConversationSocket:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def send(self, content: str, *, tts: bool | None = None) -> AsyncIterator[StreamEvent]:
        await self._ws.send(message_frame(content, tts))
        while True:
            event, ended = turn_event(await self._ws.recv())
            if event is not None:
                yield event
            if ended:
                return

    async def cancel(self) -> None:
        await self._ws.send(json.dumps({"type": "cancel"}))

    async def ping(self) -> None:
        await self._ws.send(json.dumps({"type": "ping"}))
        while json.loads(await self._ws.recv()).get("type") != "pong":
            pass

    async def close(self) -> None:
        await self._ws.close()
