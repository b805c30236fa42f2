"""A loopback HTTP server for vendor fakes, with scripted faults and a request log.

Each fake is a Starlette app speaking one vendor's documented wire protocol. Tests queue
faults (``fake.faults.append("503")``); every request pops the next one, so "fail twice,
then succeed" is ``["503", "503"]``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from tests.waiting import wait_until

SLOW_SECONDS = 3.0
STALL_SECONDS = 30.0


@dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeState:
    """What a test scripts and inspects."""

    faults: deque[str] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)

    def reset(self) -> None:
        self.faults.clear()
        self.requests.clear()


async def record(state: FakeState, request: Request) -> tuple[Recorded, str | None]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    entry = Recorded(
        request.method,
        request.url.path,
        dict(request.query_params),
        {k.lower(): v for k, v in request.headers.items()},
        body,
    )
    state.requests.append(entry)
    fault = state.faults.popleft() if state.faults else None
    if fault == "slow":
        await asyncio.sleep(SLOW_SECONDS)  # longer than the client's timeout
    return entry, fault


def sse(
    events: list[tuple[str | None, str]],
    cut_after: int | None = None,
    stall_after: int | None = None,
) -> StreamingResponse:
    """A text/event-stream body; ``cut_after`` drops the connection after that many events,
    ``stall_after`` goes quiet after that many (for STALL_SECONDS, or until the client goes)."""

    async def body() -> AsyncIterator[bytes]:
        for index, (name, data) in enumerate(events):
            if cut_after is not None and index == cut_after:
                raise ConnectionResetError("scripted: stream cut mid-way")
            if stall_after is not None and index == stall_after:
                await asyncio.sleep(STALL_SECONDS)
            head = f"event: {name}\n" if name else ""
            yield f"{head}data: {data}\n\n".encode()
            await asyncio.sleep(0)

    return StreamingResponse(body(), media_type="text/event-stream")


def json_error(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def malformed() -> Response:
    return Response(b"{this is not json", media_type="application/json")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeServer:
    """Runs an app on 127.0.0.1 in a thread of its own (its own event loop)."""

    def __init__(self, build: Callable[[FakeState], Starlette]) -> None:
        self.state = FakeState()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            build(self.state), host="127.0.0.1", port=self.port, log_level="error", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> FakeServer:
        self._thread.start()
        wait_until(lambda: self._server.started, 10, "the fake server to start", 0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def google_error(
    code: int,
    status: str,
    message: str,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Google APIs' error body: ``{"error": {"code", "message", "status", "details"?}}``."""
    body: dict[str, object] = {"code": code, "message": message, "status": status}
    if reason:
        body["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        ]
    return json_error(code, {"error": body}, headers)
