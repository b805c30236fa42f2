"""Requests per minute and concurrent requests, on the in-process and the Redis backend.

The window is shortened to 2 s here (the server uses 60 s) so that Retry-After can be
checked by waiting it out.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from avatarium.app import create_app
from avatarium.cli import main
from avatarium.core.errors import RateLimitExceededError
from avatarium.keys.service import Principal
from avatarium.limits.gate import LimitGate
from avatarium.limits.memory import MemoryBackend
from avatarium.limits.policy import Limits
from avatarium.limits.redis import RedisBackend
from avatarium.providers.registry import ProviderRegistry, ProviderSpec
from tests.conftest import make_settings, service_missing
from tests.support import Api, OffsetClock, ScriptedLLM, assert_error

REDIS_URL = os.environ.get("AVATARIUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WINDOW_S = 2.0
LEASE_S = 1.5


async def make_backend(kind: str) -> MemoryBackend | RedisBackend:
    if kind == "memory":
        return MemoryBackend()
    backend = RedisBackend(REDIS_URL, prefix=f"avatarium-test-{secrets.token_hex(4)}:")
    if not await backend.ping():
        service_missing("Redis", ConnectionError(REDIS_URL))
    return backend


@pytest.fixture(params=["memory", "redis"])
async def limited(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    backend = await make_backend(request.param)
    gate = LimitGate(backend, window_s=WINDOW_S, lease_ttl_s=LEASE_S)
    settings = make_settings(tmp_path)
    app = create_app(settings, providers=ProviderRegistry(settings), gate=gate)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(app=app, client=client, clock=OffsetClock(), backend=request.param)


async def test_the_eleventh_request_is_refused_with_honest_headers(limited: Api) -> None:
    key = await limited.key(tier="free")
    for expected_remaining in range(9, -1, -1):
        response = await limited.client.get("/v1/conversations", headers=limited.auth(key))
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit"] == "10"
        assert response.headers["x-ratelimit-remaining"] == str(expected_remaining)
        assert response.headers["ratelimit-policy"] == "10;w=2"
        assert f"remaining={expected_remaining}" in response.headers["ratelimit"]
        assert int(response.headers["x-ratelimit-reset"]) > 0
    refused = await limited.client.get("/v1/conversations", headers=limited.auth(key))
    assert_error(refused, 429, "rate_limit_exceeded", reason="requests_per_minute", limit=10)
    assert refused.headers["x-ratelimit-remaining"] == "0"
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW_S
    await asyncio.sleep(retry_after)
    again = await limited.client.get("/v1/conversations", headers=limited.auth(key))
    assert again.status_code == 200  # Retry-After was honest


async def test_limits_are_per_account_and_shared_by_its_keys(limited: Api) -> None:
    name = f"shared-{limited.backend}-{secrets.token_hex(3)}"
    await limited.state.accounts.ensure(name, "free")
    live = await limited.key(account=name, mode="live")
    test = await limited.key(account=name, mode="test")
    other = await limited.key(tier="free")
    for index in range(10):
        used = live if index % 2 else test
        assert (
            await limited.client.get("/v1/avatars", headers=limited.auth(used))
        ).status_code == 200
    assert_error(
        await limited.client.get("/v1/avatars", headers=limited.auth(live)),
        429,
        "rate_limit_exceeded",
    )
    assert (await limited.client.get("/v1/avatars", headers=limited.auth(other))).status_code == 200
    # Public endpoints without a key are not counted against anyone.
    assert (await limited.client.get("/v1/avatars")).status_code == 200


async def test_overrides_apply_on_the_next_request(limited: Api) -> None:
    name = f"override-{limited.backend}-{secrets.token_hex(3)}"
    await limited.state.accounts.ensure(name, "free")
    key = await limited.key(account=name)
    first = await limited.client.get("/v1/avatars", headers=limited.auth(key))
    assert first.headers["x-ratelimit-limit"] == "10"
    await limited.state.accounts.set_limits(name, rpm=3)
    second = await limited.client.get("/v1/avatars", headers=limited.auth(key))
    assert second.headers["x-ratelimit-limit"] == "3"
    await limited.state.accounts.set_tier(name, "pro")
    await limited.state.accounts.set_limits(name, rpm=None)
    third = await limited.client.get("/v1/avatars", headers=limited.auth(key))
    assert third.headers["x-ratelimit-limit"] == "3"  # the override still stands


async def test_concurrent_requests_are_capped(limited: Api) -> None:
    name = f"busy-{limited.backend}-{secrets.token_hex(3)}"
    await limited.state.accounts.ensure(name, "pro")
    await limited.state.accounts.set_limits(name, concurrent=2)
    key = await limited.key(account=name, mode="live")
    llm = ScriptedLLM(f"slow-{limited.backend}")
    llm.gate = asyncio.Event()
    limited.state.providers.register(ProviderSpec(llm.name, "llm", lambda _s: llm))
    conversation = await limited.conversation(key, ai_provider=llm.name, tts_provider="browser")
    url = f"/v1/conversations/{conversation['id']}/messages"
    sends = [
        asyncio.create_task(
            limited.client.post(url, json={"content": f"hi {i}"}, headers=limited.auth(key))
        )
        for i in range(2)
    ]
    for _ in range(500):
        if llm.calls == 2:
            break
        await asyncio.sleep(0.01)
    refused = await limited.client.get("/v1/conversations", headers=limited.auth(key))
    assert_error(refused, 429, "rate_limit_exceeded", reason="concurrent_requests", limit=2)
    assert refused.headers["retry-after"] == "1"
    llm.gate.set()
    assert [s.status_code for s in await asyncio.gather(*sends)] == [200, 200]
    # The slots were given back when the replies finished.
    assert (
        await limited.client.get("/v1/conversations", headers=limited.auth(key))
    ).status_code == 200


async def test_a_lease_that_is_not_renewed_expires(limited: Api) -> None:
    backend = limited.state.gate.backend  # type: ignore[attr-defined]
    key = f"concurrent:crashed-{secrets.token_hex(3)}"
    assert await backend.acquire(key, 1, "lease_a", LEASE_S)  # its worker then dies
    assert not await backend.acquire(key, 1, "lease_b", LEASE_S)
    await asyncio.sleep(LEASE_S + 0.2)
    assert await backend.acquire(key, 1, "lease_b", LEASE_S)


async def test_health_reports_the_limiter(limited: Api) -> None:
    body = (await limited.client.get("/health")).json()
    assert body["checks"]["rate_limiter"] == "ok"


async def test_an_unreachable_redis_is_reported(tmp_path: Path) -> None:
    gate = LimitGate(RedisBackend("redis://127.0.0.1:1/0"))
    settings = make_settings(tmp_path)
    app = create_app(settings, gate=gate)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            health = await client.get("/health")
    assert health.status_code == 503
    assert health.json()["checks"]["rate_limiter"] == "unavailable"


def test_several_workers_need_a_shared_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AVATARIUM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("AVATARIUM_REDIS_URL", raising=False)
    assert main(["serve", "--workers", "2"]) == 2
    assert "AVATARIUM_REDIS_URL" in capsys.readouterr().err


class PrivateRedis:
    """A redis-server of the test's own, so that it can be stopped mid-run."""

    def __init__(self, port: int) -> None:
        import shutil
        import subprocess

        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server", FileNotFoundError("redis-server"))
        self.port = port
        self._process = subprocess.Popen(
            [
                str(binary),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        self._process.kill()
        self._process.wait()


async def test_redis_stopping_mid_run_degrades_to_per_worker_limits(tmp_path: Path) -> None:
    from tests.fakes.server import free_port

    port = free_port()
    redis_server = PrivateRedis(port)
    backend = RedisBackend(f"redis://127.0.0.1:{port}/0")
    for _ in range(100):
        if await backend.ping():
            break
        await asyncio.sleep(0.05)
    gate = LimitGate(backend, window_s=WINDOW_S, lease_ttl_s=LEASE_S, workers=2)
    settings = make_settings(tmp_path)
    app = create_app(settings, gate=gate)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                api = Api(app=app, client=client, clock=OffsetClock(), backend="redis")
                key = await api.key(tier="free")
                ok = await client.get("/v1/avatars", headers=api.auth(key))
                assert ok.headers["x-ratelimit-limit"] == "10"
                redis_server.stop()
                codes = [
                    (await client.get("/v1/avatars", headers=api.auth(key))).status_code
                    for _ in range(8)
                ]
                # Each of 2 workers now allows 10 // 2 = 5 per window: never unbounded,
                # never a 500.
                assert codes == [200] * 5 + [429] * 3
                health = (await client.get("/health")).json()
                assert health["status"] == "ok"
                assert health["checks"]["rate_limiter"] == "degraded"
    finally:
        redis_server.stop()


async def test_in_flight_never_exceeds_the_cap(limited: Api) -> None:
    name = f"cap-{limited.backend}-{secrets.token_hex(3)}"
    await limited.state.accounts.ensure(name, "pro")
    await limited.state.accounts.set_limits(name, concurrent=3)
    key = await limited.key(account=name, mode="live")
    in_flight = peak = 0

    class CountingLLM(ScriptedLLM):
        async def stream(self, request):  # type: ignore[no-untyped-def]
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                await asyncio.sleep(0.2)  # a slow reply
                async for event in super().stream(request):
                    yield event
            finally:
                in_flight -= 1

    llm = CountingLLM(f"counting-{limited.backend}", text="Done.")
    limited.state.providers.register(ProviderSpec(llm.name, "llm", lambda _s: llm))
    conversations = [
        (await limited.conversation(key, ai_provider=llm.name, tts_provider="browser"))["id"]
        for _ in range(3)
    ]
    responses = await asyncio.gather(
        *(
            limited.client.post(
                f"/v1/conversations/{conversations[i % 3]}/messages",
                json={"content": "hi"},
                headers=limited.auth(key),
            )
            for i in range(12)
        )
    )
    statuses = [r.status_code for r in responses]
    assert peak <= 3
    assert statuses.count(200) >= 3 and set(statuses) <= {200, 429}
    for response in responses:
        if response.status_code == 429:
            assert response.json()["error"]["details"]["reason"] == "concurrent_requests"


async def test_leases_taken_while_degraded_are_renewed_on_the_fallback() -> None:
    """With Redis down, a request admitted on the in-process fallback keeps its slot for as
    long as it runs, however much longer than the lease that is."""
    from tests.fakes.server import free_port

    unreachable = RedisBackend(f"redis://127.0.0.1:{free_port()}/0")
    gate = LimitGate(unreachable, window_s=60.0, lease_ttl_s=0.3, workers=1)
    principal = Principal(
        "key_x", "acct_degraded", "degraded", "free", "test", "full", Limits(100, 1, 100)
    )
    try:
        held = await gate.admit(principal)
        assert gate.degraded
        await asyncio.sleep(1.2)  # four lease lifetimes: only renewal keeps the slot
        with pytest.raises(RateLimitExceededError) as refused:
            await gate.admit(principal)
        assert refused.value.details["reason"] == "concurrent_requests"
        await held.release()
        again = await gate.admit(principal)  # released: the slot is free at once
        await again.release()
    finally:
        await gate.aclose()
