"""``GET /metrics``: off unless a token is set, then only with it; the Prometheus text
format (parsed with the client library's own parser), requests by route template and status,
errors by code, reply phases, limiter decisions; several workers' counts added up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import service_missing, start_api
from tests.server_process import free_port
from tests.support import Api, assert_error
from tests.test_limits_workers import REDIS_URL, cli
from tests.waiting import wait_until

TOKEN = "metrics-" + "x" * 24


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture(scope="module")
async def metered(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async for api in start_api("sqlite", tmp_path_factory.mktemp("metrics"), None,
                               metrics_token=TOKEN):  # fmt: skip
        yield api


async def test_metrics_need_their_token(metered: Api, api: Api) -> None:
    assert_error(await metered.client.get("/metrics"), 401, "invalid_api_key")
    wrong = await metered.client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert_error(wrong, 401, "invalid_api_key")
    # An API key is not the metrics token either.
    key = await metered.key()
    assert_error(await metered.client.get("/metrics", headers=metered.auth(key)), 401,
                 "invalid_api_key")  # fmt: skip
    # Without AVATARIUM_METRICS_TOKEN there is no such page.
    assert_error(await api.client.get("/metrics"), 404, "not_found")


async def test_requests_errors_phases_and_limits_are_counted(metered: Api) -> None:
    api = metered
    key = await api.key()
    conversation = await api.conversation(key)
    for _ in range(2):
        sent = await api.client.post(
            f"/v1/conversations/{conversation['id']}/messages", headers=api.auth(key),
            json={"content": "Hello!"},
        )  # fmt: skip
        assert sent.status_code == 200, sent.text
    missing = await api.client.get("/v1/conversations/conv_nope", headers=api.auth(key))
    assert missing.status_code == 404
    await api.client.get("/no/such/page")
    page = await api.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    found = samples(page.text)
    send = "/v1/conversations/{conversation_id}/messages"
    key_of = (("method", "POST"), ("route", send), ("status", "200"))
    assert found[("avatarium_requests_total", key_of)] == 2
    get_one = (("method", "GET"), ("route", "/v1/conversations/{conversation_id}"),
               ("status", "404"))  # fmt: skip
    assert found[("avatarium_requests_total", get_one)] == 1
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert found[("avatarium_requests_total", unmatched)] == 1
    assert found[("avatarium_errors_total", (("code", "conversation_not_found"),))] == 1
    histogram = ("avatarium_request_duration_seconds_count", (("method", "POST"), ("route", send)))
    assert found[histogram] == 2
    assert found[("avatarium_reply_phase_seconds_count", (("phase", "ai"),))] == 2
    assert found[("avatarium_reply_phase_seconds_count", (("phase", "tts"),))] == 2
    assert found[("avatarium_limiter_decisions_total", (("decision", "admitted"),))] >= 4
    assert not any("conv_" in name or any("conv_" in v for _k, v in labels)
                   for name, labels in found)  # ids never become labels  # fmt: skip


@pytest.mark.e2e
def test_two_workers_add_up(tmp_path: Path) -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        service_missing("Redis", error)
    env = {**os.environ, "AVATARIUM_DATA_DIR": str(tmp_path), "AVATARIUM_REDIS_URL": REDIS_URL,
           "AVATARIUM_LOG_LEVEL": "warning", "AVATARIUM_METRICS_TOKEN": TOKEN}  # fmt: skip
    env.pop("AVATARIUM_DATABASE_URL", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    key = json.loads(
        cli(env, "keys", "create", "--account", "metrics", "--tier", "enterprise", "--json")
    )["key"]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "avatarium.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{base}/health/live").status_code == 200, 90, "2 workers")
        time.sleep(2)
        with httpx.Client(base_url=base) as client:  # new connections: both workers answer
            for _ in range(20):
                httpx.get(f"{base}/v1/usage", headers={"Authorization": f"Bearer {key}"})
            usage = (("method", "GET"), ("route", "/v1/usage"), ("status", "200"))
            for _ in range(4):
                page = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
                assert samples(page.text)[("avatarium_requests_total", usage)] == 20
        # Both workers counted some of them (one file of samples per worker process).
        assert len(list((tmp_path / "metrics").glob("counter_*.db"))) >= 2
    finally:
        server.terminate()
        server.wait(timeout=30)
