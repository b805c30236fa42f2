"""What the server tells browsers (security headers, CORS) and how it treats slow or bloated
request heads."""

from __future__ import annotations

import socket
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from avatarium.app import create_app
from avatarium.providers.registry import ProviderRegistry
from tests.conftest import make_settings
from tests.server_process import Server, free_port
from tests.support import Api, OffsetClock, assert_error
from tests.waiting import wait_until

ORIGIN = "http://127.0.0.1:9"  # a page on another origin that the operator allowed
OTHER = "http://evil.example"


async def test_the_page_has_a_strict_content_security_policy(api: Api) -> None:
    for path in ("/", "/static/js/app.js"):
        response = await api.client.get(path)
        assert response.status_code == 200
        policy = response.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["script-src"] == "'self'"  # no inline script, no eval
        assert directives["object-src"] == "'none'"
        assert directives["frame-ancestors"] == "'self'"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    html = (await api.client.get("/")).text
    assert "<script>" not in html and " on" + "click=" not in html  # nothing inline to allow


async def test_api_answers_are_not_cached_or_sniffed(api: Api) -> None:
    key = await api.key()
    for response in (
        await api.client.get("/v1/usage", headers=api.auth(key)),
        await api.client.get("/v1/avatars"),
        await api.client.get("/v1/nope"),
    ):
        assert response.headers["cache-control"] == "no-store", response.url
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in response.headers
    conversation = await api.conversation(key)
    reply = await api.client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"content": "Hi"},
        headers=api.auth(key),
    )
    audio = await api.client.get(reply.json()["audio_url"].removeprefix("http://testserver"))
    # A signed audio URL may be cached by the browser that fetched it, privately.
    assert audio.headers["cache-control"] == "private, max-age=3600"
    assert audio.headers["x-content-type-options"] == "nosniff"


@pytest.fixture(scope="module")
async def cors_api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path_factory.mktemp("cors"),
        cors_origins=f"{ORIGIN}, http://another.example/",
        frame_ancestors="'self' https://shop.example",
    )
    app = create_app(settings, clock=OffsetClock(), providers=ProviderRegistry(settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(app=app, client=client, clock=OffsetClock(), backend="sqlite")


async def test_listed_origins_get_cors_and_others_get_none(cors_api: Api) -> None:
    api = cors_api
    key = await api.key()
    preflight = await api.client.options(
        "/v1/conversations",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for name in ("authorization", "content-type", "idempotency-key"):
        assert name in allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]
    created = await api.client.post(
        "/v1/conversations",
        json={"avatar_id": "aria-001"},
        headers={**api.auth(key), "Origin": ORIGIN},
    )
    assert created.headers["access-control-allow-origin"] == ORIGIN
    exposed = created.headers["access-control-expose-headers"].lower()
    for name in ("x-request-id", "x-ratelimit-remaining", "retry-after", "ratelimit"):
        assert name in exposed
    reply = await api.client.post(
        f"/v1/conversations/{created.json()['id']}/messages",
        json={"content": "Hi"},
        headers={**api.auth(key), "Origin": ORIGIN},
    )
    audio_path = reply.json()["audio_url"].removeprefix("http://testserver")
    audio = await api.client.get(audio_path, headers={"Origin": ORIGIN})
    assert audio.status_code == 200 and audio.headers["access-control-allow-origin"] == ORIGIN
    # Another origin: no CORS at all, and a refused preflight in the error envelope.
    plain = await api.client.get("/v1/avatars", headers={"Origin": OTHER})
    assert "access-control-allow-origin" not in plain.headers
    refused = await api.client.options(
        "/v1/conversations",
        headers={"Origin": OTHER, "Access-Control-Request-Method": "POST"},
    )
    assert_error(refused, 400, "invalid_request", reason="cors_not_allowed")
    assert "access-control-allow-origin" not in refused.headers
    page = await api.client.get("/")
    assert "frame-ancestors 'self' https://shop.example" in page.headers["content-security-policy"]


async def test_no_cors_without_configuration(api: Api) -> None:
    response = await api.client.get("/v1/avatars", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers


def _trickle(port: int, count: int, seconds: float) -> tuple[list[socket.socket], float]:
    """Open ``count`` connections that send a request head one line at a time, slowly.
    Returns the sockets and how long after the start the last one was closed by the server."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        sock.setblocking(False)
        sockets.append(sock)
    started = time.monotonic()
    open_ = set(range(count))
    while open_ and time.monotonic() - started < seconds:
        for index in list(open_):
            sock = sockets[index]
            try:
                sock.sendall(b"X-Slow: yes\r\n")
                if sock.recv(1024) == b"":
                    open_.discard(index)
            except BlockingIOError:
                pass
            except OSError:  # reset or broken pipe: the server closed it
                open_.discard(index)
        time.sleep(0.25)
    assert not open_, f"{len(open_)} of {count} trickling connections still open"
    return sockets, time.monotonic() - started


def test_the_server_process_cuts_off_slow_and_huge_request_heads(
    tmp_path: Path, server_factory: list[Server]
) -> None:
    port = free_port()
    server = Server(tmp_path, port, {"AVATARIUM_HEADER_TIMEOUT_S": "1"})
    server_factory.append(server)
    server.wait_ready()
    health = httpx.get(f"{server.base}/health")
    assert "server" not in health.headers  # no banner naming the software
    sockets, took = _trickle(port, 200, 8.0)
    for sock in sockets:
        sock.close()
    assert took < 4.0, took
    # The server still answers while (and after) it sheds them.
    assert httpx.get(f"{server.base}/health").status_code == 200
    huge = httpx.get(f"{server.base}/v1/avatars", headers={"X-Big": "a" * 20_000})
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "request_too_large"
    assert huge.json()["error"]["details"] == {"limit": 16_384, "reason": "headers"}
    # Ordinary requests on a kept-alive connection are unaffected by the head deadline.
    with httpx.Client(base_url=server.base) as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
            time.sleep(1.2)
    database = tmp_path / "avatarium.db"
    wait_until(database.exists, 10, "the database file")
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_large_writes_reach_the_transport_at_once_so_flow_control_sees_them() -> None:
    """Small writes of one loop turn are joined; a turn's writes of 64 KiB or more go out
    at once, so the transport can pause a response streamed to a slow client (an export
    read inline from SQLite would otherwise pile up in memory whole)."""
    import asyncio

    from avatarium.server_protocol import FLUSH_AT, CoalescingWriter

    class Transport:
        def __init__(self) -> None:
            self.written: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.written.append(data)

        def is_closing(self) -> bool:
            return False

    loop = asyncio.new_event_loop()
    try:
        transport = Transport()
        writer = CoalescingWriter(transport, loop)  # type: ignore[arg-type]
        writer.write(b"head")
        writer.write(b"small body")
        assert transport.written == []  # joined, at the next turn
        writer.write(b"x" * FLUSH_AT)
        assert transport.written == [b"headsmall body" + b"x" * FLUSH_AT]
        loop.run_until_complete(asyncio.sleep(0))
        writer.write(b"tail")
        loop.run_until_complete(asyncio.sleep(0))
        assert transport.written[-1] == b"tail"
    finally:
        loop.close()
