"""A webhook receiver on loopback: records every delivery as it arrived (raw body and
headers, for signature checks) and answers as a test scripts it, per path.

Scripts, popped one per request to that path: ``"500"`` / ``"410"`` (that status),
``"302:<url>"`` (a redirect there), ``"hold"`` (keep the request open for a long time:
the sender is killed meanwhile). With nothing scripted the answer is 200.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.server import FakeServer

HOLD_SECONDS = 60.0


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ReceiverState:
    scripts: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    received: list[Delivery] = field(default_factory=list)

    def at(self, path: str) -> list[Delivery]:
        return [d for d in self.received if d.path == path]


def build(state: ReceiverState) -> Starlette:
    async def receive(request: Request) -> Response:
        path = request.url.path
        state.received.append(
            Delivery(path, {k.lower(): v for k, v in request.headers.items()}, await request.body())
        )
        script = state.scripts[path].popleft() if state.scripts[path] else "200"
        if script == "hold":
            await asyncio.sleep(HOLD_SECONDS)
            return Response(status_code=200)
        if script.startswith("302:"):
            return Response(status_code=302, headers={"Location": script[4:]})
        return Response(b"ok", status_code=int(script))

    return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])


def start_receiver() -> tuple[FakeServer, ReceiverState]:
    """A receiver running on 127.0.0.1, and what it records."""
    state = ReceiverState()
    return FakeServer(lambda _unused: build(state)).start(), state
