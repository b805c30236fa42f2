"""Talking to the app in-process, in real time: a streamed HTTP response read as it is
written (and hung up on at will), and a WebSocket.

httpx's ASGI transport runs the app to completion before returning anything, so it cannot
show *when* an event arrived or what happens when the client leaves. These drivers speak
plain ASGI to the same app, on the test's own event loop, over either database backend.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message

from tests.sse import SSEDecoder, SSEEvent

TIMEOUT = 20.0


def _scope(kind: str, path: str, headers: dict[str, str], method: str = "GET") -> dict[str, Any]:
    parts = urlsplit(path)
    raw = [(b"host", b"testserver")]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "http" if kind == "http" else "ws",
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    if kind == "http":
        scope["method"] = method
    else:
        scope["subprotocols"] = []
    return scope


class LiveStream:
    """One streamed HTTP exchange."""

    def __init__(self, app: ASGIApp, path: str, headers: dict[str, str], body: Any) -> None:
        self._app = app
        self._path = path
        self._headers = {"content-type": "application/json", **headers}
        self._body = json.dumps(body).encode()
        self._out: asyncio.Queue[Message] = asyncio.Queue()
        self._gone = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.finished = False
        self.decoder = SSEDecoder()

    async def start(self) -> LiveStream:
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": self._body, "more_body": False}
            await self._gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            self._out.put_nowait(message)

        scope = _scope("http", self._path, self._headers, "POST")
        self._task = asyncio.ensure_future(self._app(scope, receive, send))
        start = await asyncio.wait_for(self._out.get(), TIMEOUT)
        assert start["type"] == "http.response.start"
        self.status = start["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return self

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body pieces as the app writes them."""
        while not self.finished:
            message = await asyncio.wait_for(self._out.get(), TIMEOUT)
            if message["type"] != "http.response.body":
                continue
            if not message.get("more_body", False):
                self.finished = True
            if message.get("body"):
                yield message["body"]

    async def events(self) -> AsyncIterator[SSEEvent]:
        """Dispatched SSE events as they arrive."""
        async for chunk in self.chunks():
            for event in self.decoder.feed(chunk):
                yield event

    async def json(self) -> Any:
        return json.loads(b"".join([chunk async for chunk in self.chunks()]))

    async def hang_up(self) -> None:
        """Disconnect, and wait until the app has finished with the request."""
        self._gone.set()
        await self.closed()

    async def closed(self) -> None:
        assert self._task is not None
        await asyncio.wait_for(self._task, TIMEOUT)


async def open_stream(app: ASGIApp, path: str, headers: dict[str, str], body: Any) -> LiveStream:
    return await LiveStream(app, path, headers, body).start()


class LiveSocket:
    """One WebSocket to the app."""

    def __init__(self, app: ASGIApp, path: str, headers: dict[str, str]) -> None:
        self._incoming: asyncio.Queue[Message] = asyncio.Queue()
        self._outgoing: asyncio.Queue[Message] = asyncio.Queue()
        self._incoming.put_nowait({"type": "websocket.connect"})

        async def receive() -> Message:
            return await self._incoming.get()

        async def send(message: Message) -> None:
            self._outgoing.put_nowait(message)

        self._task = asyncio.ensure_future(app(_scope("websocket", path, headers), receive, send))
        self.close_code: int | None = None
        self.close_reason: str | None = None

    async def send(self, frame: Any) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        self._incoming.put_nowait({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        self._incoming.put_nowait({"type": "websocket.receive", "bytes": data})

    async def receive(self) -> dict[str, Any] | None:
        """The next frame, or None once the server closed the socket."""
        while True:
            message = await asyncio.wait_for(self._outgoing.get(), TIMEOUT)
            if message["type"] == "websocket.accept":
                continue
            if message["type"] == "websocket.close":
                self.close_code = message.get("code", 1000)
                self.close_reason = message.get("reason")
                return None
            frame: dict[str, Any] = json.loads(message["text"])
            return frame

    async def until(self, *types: str) -> list[dict[str, Any]]:
        """Frames up to and including the first of one of ``types``."""
        frames = []
        while True:
            frame = await self.receive()
            assert frame is not None, f"socket closed ({self.close_code}) before {types}"
            frames.append(frame)
            if frame["type"] in types:
                return frames

    async def close(self) -> None:
        self._incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self._task, TIMEOUT)


def open_socket(app: ASGIApp, path: str, headers: dict[str, str] | None = None) -> LiveSocket:
    return LiveSocket(app, path, headers or {})
