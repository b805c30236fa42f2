"""Retries done the documented way: against a real server (and one scripted stand-in for a
429 with a fixed Retry-After, which a real per-minute window cannot produce quickly)."""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tests.fakes.server import FakeServer

from avatarium_client import (
    APIConnectionError,
    Avatarium,
    InvalidRequestError,
    QuotaExceededError,
)
from conftest import Proxy, Server, free_port


def account() -> str:
    return f"retry-{secrets.token_hex(4)}"


def test_a_provider_failing_twice_then_succeeding(server: Server, vendor: FakeServer) -> None:
    key = server.key(account(), mode="live")
    base, ceiling = 0.2, 1.0
    with Avatarium(key, base_url=server.url, backoff_base_s=base, backoff_max_s=ceiling) as client:
        conversation = client.conversations.create(
            "aria-001", ai_provider="openai", tts_provider="browser"
        )
        vendor.state.faults.extend(["500", "500"])
        reply = client.messages.send(conversation.id, "Are you there?")
        assert reply.content.startswith("You said: Are you there?")
        turns = client.messages.list(conversation.id).data
    assert [m.role for m in turns] == ["user", "assistant"]  # one stored turn
    calls = [r for r in vendor.state.requests if r.path.endswith("/chat/completions")]
    assert len(calls) == 3  # three attempts reached the vendor
    policy = client.config.retry
    for retry, (before, after) in enumerate(itertools.pairwise(calls), start=1):
        low, high = policy.backoff_bounds(retry)
        gap = after.at - before.at
        # The gap is the backoff plus one quick round trip through the server.
        assert low <= gap <= high + 0.25, (retry, gap, low, high)


def test_client_errors_and_quota_are_never_retried(server: Server, proxy: Proxy) -> None:
    name = account()
    key = server.key(name)
    server.cli("accounts", "set-limits", name, "--monthly-messages", "1")
    with Avatarium(key, base_url=proxy.url, backoff_base_s=0.1) as client:
        conversation = client.conversations.create("aria-001", tts_provider="browser")
        path = f"/v1/conversations/{conversation.id}/messages"
        with pytest.raises(InvalidRequestError):
            client.messages.send(conversation.id, "")
        assert proxy.count(f"POST {path}") == 1
        client.messages.send(conversation.id, "The one message this month.")
        assert proxy.count(f"POST {path}") == 2
        with pytest.raises(QuotaExceededError) as spent:
            client.messages.send(conversation.id, "One too many.")
        assert proxy.count(f"POST {path}") == 3  # exactly one attempt
        assert spent.value.resets_at and spent.value.details["used"] == 1


def test_a_lost_answer_is_retried_without_a_second_turn(server: Server, proxy: Proxy) -> None:
    with Avatarium(server.key(account()), base_url=proxy.url, backoff_base_s=0.1) as client:
        conversation = client.conversations.create("aria-001", tts_provider="browser")
        path = f"/v1/conversations/{conversation.id}/messages"
        proxy.lose = lambda line: line.startswith(f"POST {path}")
        reply = client.messages.send(conversation.id, "Did you get this?")
        assert proxy.count(f"POST {path}") == 2  # the lost one, and the retry
        turns = client.messages.list(conversation.id).data
    assert [m.id for m in turns if m.role == "assistant"] == [reply.id]
    assert len(turns) == 2


def test_connection_errors_give_up_after_the_attempts(server: Server) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    client = Avatarium("av_test_" + "0" * 32, base_url=closed, backoff_base_s=0.1)
    with client, pytest.raises(APIConnectionError):
        client.avatars.list()
    assert 0.15 <= time.monotonic() - started < 5  # two backoffs: [0.05, 0.1] + [0.1, 0.2]


class RateLimitedOnce:
    """A stand-in answering the first request with the API's documented 429 and
    ``Retry-After: 2``, then with a conversation."""

    def __init__(self) -> None:
        self.times: list[float] = []

        async def create(request: Request) -> JSONResponse:
            self.times.append(time.monotonic())
            if len(self.times) == 1:
                body = {"error": {"code": "rate_limit_exceeded", "message": "Slow down.",
                                  "details": {"reason": "requests_per_minute", "limit": 10},
                                  "request_id": "req_0000000000000000"}}  # fmt: skip
                return JSONResponse(body, status_code=429, headers={"Retry-After": "2"})
            return JSONResponse({
                "id": "conv_0000000000000001", "object": "conversation",
                "avatar_id": "aria-001", "status": "active", "message_count": 0,
                "metadata": {}, "created_at": "2026-01-01T00:00:00.000Z",
            })  # fmt: skip

        self.app = Starlette(routes=[Route("/v1/conversations", create, methods=["POST"])])


@pytest.fixture
def limited() -> Iterator[tuple[RateLimitedOnce, str]]:
    stand_in = RateLimitedOnce()
    fake = FakeServer(lambda _state: stand_in.app).start()
    yield stand_in, fake.url
    fake.stop()


def test_retry_after_is_honoured(limited: tuple[RateLimitedOnce, str]) -> None:
    stand_in, url = limited
    with Avatarium("av_test_" + "0" * 32, base_url=url, backoff_base_s=0.1) as client:
        conversation = client.conversations.create("aria-001")
    assert conversation.id == "conv_0000000000000001"
    assert len(stand_in.times) == 2
    assert stand_in.times[1] - stand_in.times[0] >= 2.0


def test_rate_limits_from_the_real_server_are_waited_out(
    server: Server, vendor: FakeServer, proxy: Proxy
) -> None:
    name = account()
    key = server.key(name, mode="live")
    server.cli("accounts", "set-limits", name, "--concurrent", "1")
    with Avatarium(key, base_url=server.url) as client:
        conversation = client.conversations.create(
            "aria-001", ai_provider="openai", tts_provider="browser"
        )
        vendor.state.faults.append("slow")  # the vendor holds the send (and the slot) ~3 s
        worker = threading.Thread(target=client.messages.send, args=(conversation.id, "Hi"))
        worker.start()
        while not vendor.state.requests:
            time.sleep(0.01)
        with Avatarium(key, base_url=proxy.url, max_attempts=10, deadline_s=30) as other:
            started = time.monotonic()
            assert other.usage.get().tier == "enterprise"
            waited = time.monotonic() - started
        worker.join()
    attempts = proxy.count("GET /v1/usage")
    assert attempts >= 2  # met 429 (concurrent_requests) at least once, then got through
    assert waited >= 1.0 * (attempts - 1)  # each retry waited out Retry-After: 1
