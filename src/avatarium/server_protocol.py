"""uvicorn's HTTP protocol with a deadline and a size limit on each request head, and
one socket write per response step.

uvicorn limits how long a connection may sit idle between requests, but not how long a
client may take to send a request's head, nor (with httptools) how large that head may be:
a client trickling one header line every few seconds (slowloris) holds a connection, and a
worker's file descriptors, for ever. Here every request head must arrive whole within
``header_timeout_s`` of its first byte (or of the connection opening), else the connection
is closed; a head over ``max_header_bytes`` is answered 413 ``request_too_large`` and
closed.

uvicorn writes a response's head and its body with two socket writes; on a virtual machine
each write that wakes the client costs tens of microseconds. The writes a response makes
in one step of its task are joined into one (flushed at the next turn of the event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from avatarium.core.errors import RequestTooLargeError
from avatarium.core.ids import new_id
from avatarium.core.shutdown import TURN_STATE
from avatarium.core.wire import wire_bytes

FLUSH_AT = 65_536  # uvicorn's high-water mark: larger writes go out at once


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with a head deadline and a head size limit."""

    def __init__(
        self, *args: Any, header_timeout_s: float, max_header_bytes: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._max_header_bytes = max_header_bytes
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_too_large = False

    # The head's clock starts when the connection opens and at each new request.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_clock()

    def _start_head_clock(self) -> None:
        self._head_bytes = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._header_timeout_s, self._head_too_slow)

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()  # nothing useful was said in time: no answer is owed

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        if not self._head_too_large:
            super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self._max_header_bytes:
            self._head_too_large = True

    def on_headers_complete(self) -> None:
        self._stop_head_clock()
        if self._head_too_large:
            return  # answered in data_received, once the parser has returned
        super().on_headers_complete()
        cycle = getattr(self, "cycle", None)
        if cycle is not None and not isinstance(cycle.transport, CoalescingWriter):
            # The request's task has not run yet (it starts at the next turn of the loop).
            cycle.transport = CoalescingWriter(cycle.transport, self.loop)

    def on_body(self, body: bytes) -> None:
        if not self._head_too_large:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._head_too_large:
            super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._head_too_large:
            return
        super().data_received(data)
        if self._head_too_large and not self.transport.is_closing():
            self._refuse_large_head()

    def _refuse_large_head(self) -> None:
        """The error tree's 413, written by hand: the request never reaches the app."""
        self._stop_head_clock()
        error = RequestTooLargeError(
            f"The request's headers are larger than {self._max_header_bytes} bytes.",
            details={"limit": self._max_header_bytes, "reason": "headers"},
        )
        request_id = new_id("req")
        body = wire_bytes(error.body(request_id))
        head = (
            f"HTTP/1.1 {error.status_code} Request Entity Too Large\r\n"
            "content-type: application/json\r\nconnection: close\r\n"
            f"x-request-id: {request_id}\r\ncontent-length: {len(body)}\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        self.transport.close()

    def shutdown(self) -> None:
        # A response that completed this turn may still sit in its writer: send it before
        # uvicorn closes the connection.
        cycle = getattr(self, "cycle", None)
        if cycle is not None and isinstance(cycle.transport, CoalescingWriter):
            cycle.transport.flush()
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)


class CoalescingWriter:
    """A transport whose writes within one turn of the event loop go out as one.

    Only small writes wait: once a turn's writes reach ``FLUSH_AT`` bytes they go to the
    transport at once, so its flow control (pause_writing, which makes the server wait for
    a slow client) sees them. Without that, a response streamed without yielding to the
    loop (an export read from SQLite) would pile up here whole."""

    __slots__ = ("_loop", "_pending", "_pending_bytes", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None
        self._pending_bytes = 0

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._pending_bytes = len(data)
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)
            self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        self._pending_bytes = 0
        if pending and not self._transport.is_closing():
            self._transport.write(b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def guarded_protocol(header_timeout_s: float, max_header_bytes: int) -> Any:
    """The protocol factory to hand uvicorn (``http=``); picklable for worker processes."""
    return functools.partial(
        GuardedHttpToolsProtocol,
        header_timeout_s=header_timeout_s,
        max_header_bytes=max_header_bytes,
    )


class GracefulWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, except that on shutdown a socket in the middle of a turn
    (a reply being written and spoken) is closed with 1012 once the turn is over, or after
    ``grace_s`` at the latest, rather than at once. New turns are refused meanwhile (the
    socket handler sees ``closing``)."""

    def __init__(self, *args: Any, grace_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._grace_s = grace_s
        self._turn_state: dict[str, Any] = {}

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the app's task starts at the next turn of the loop
            scope[TURN_STATE] = self._turn_state

    def shutdown(self) -> None:
        self._turn_state["closing"] = True
        idle = self._turn_state.get("idle")
        busy = isinstance(idle, asyncio.Event) and not idle.is_set()
        if (
            isinstance(idle, asyncio.Event)
            and busy
            and self.handshake_complete
            and not self.close_sent
        ):
            self.loop.create_task(self._close_when_idle(idle))
            return
        super().shutdown()

    async def _close_when_idle(self, idle: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(idle.wait(), self._grace_s)
        if not self.transport.is_closing():
            super().shutdown()


def graceful_websockets(grace_s: float) -> Any:
    """The WebSocket protocol factory to hand uvicorn (``ws=``); picklable for workers."""
    return functools.partial(GracefulWebSocketProtocol, grace_s=grace_s)
