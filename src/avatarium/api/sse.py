"""Server-Sent Events: an encoder from named JSON events to ``text/event-stream``.

Every event gets the next ``id:``; a comment goes out whenever nothing else did for the
heartbeat interval. The client hanging up cancels the producer at once (its ``finally``
blocks run: a reply stops and stores nothing), then ``on_close`` runs (the concurrency slot
is given back).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from avatarium.core.wire import wire_bytes

NamedEvent = tuple[str, dict[str, Any]]
HEARTBEAT = b": keep-alive\n\n"


def encode_event(event_id: int, name: str, data: dict[str, Any]) -> bytes:
    """One event; the JSON has no raw newlines, so it is always a single ``data:`` line."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, name.encode(), wire_bytes(data))


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStreamResponse(Response):
    """A streamed ``200 text/event-stream`` response over an async generator of events."""

    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncGenerator[NamedEvent, None],
        *,
        heartbeat_s: float,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self._events = events
        self._heartbeat_s = heartbeat_s
        self._on_close = on_close
        # No Content-Length (the body is open-ended); tell caches and buffering proxies to
        # pass each event through as it comes.
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.ensure_future(_disconnected(receive))
        pending: asyncio.Future[NamedEvent] | None = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            event_id = 0
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(self._events))
                waiting: set[asyncio.Future[Any]] = {pending, gone}
                done, _ = await asyncio.wait(
                    waiting, timeout=self._heartbeat_s, return_when="FIRST_COMPLETED"
                )
                if gone in done:
                    return  # the finally below cancels the producer
                if pending not in done:
                    await send({"type": "http.response.body", "body": HEARTBEAT, "more_body": True})
                    continue
                try:
                    name, data = pending.result()
                except StopAsyncIteration:
                    break
                pending = None
                event_id += 1
                body = encode_event(event_id, name, data)
                await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the connection broke while writing: the same as a disconnect
        finally:
            gone.cancel()
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await pending
            await self._events.aclose()
            if self._on_close is not None:
                await self._on_close()
