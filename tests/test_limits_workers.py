"""Limits across processes: four server workers sharing Redis admit exactly the limit."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import service_missing
from tests.fakes.server import free_port
from tests.test_limits import REDIS_URL
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "avatarium.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


async def burst(base: str, key: str, count: int) -> list[int]:
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=60, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        responses = await asyncio.gather(*(client.get("/v1/conversations") for _ in range(count)))
    return [r.status_code for r in responses]


def test_four_workers_admit_exactly_the_limit(tmp_path: Path) -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        service_missing("Redis", error)
    env = {
        **os.environ,
        "AVATARIUM_DATA_DIR": str(tmp_path),
        "AVATARIUM_REDIS_URL": REDIS_URL,
        "AVATARIUM_LOG_LEVEL": "warning",
        "AVATARIUM_SECRET_KEY": "burst-test-secret",
    }
    env.pop("AVATARIUM_DATABASE_URL", None)
    key = json.loads(cli(env, "keys", "create", "--account", "burst", "--json"))["key"]
    cli(env, "accounts", "set-limits", "burst", "--rpm", "100", "--concurrent", "1000")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "avatarium.cli", "serve", "--port", str(port), "--workers", "4"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{base}/health", timeout=1).status_code == 200,
            90,
            "the four-worker server to answer /health",
        )
        time.sleep(2)  # let all four workers finish starting
        statuses = asyncio.run(burst(base, key, 1000))
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert statuses.count(200) == 100
    assert statuses.count(429) == 900
