"""Limiter benchmarks: cost per request on each backend, over-admission in a burst across
four workers, and throughput of authenticated GETs with Redis and two workers (wrk)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import httpx
from common import cli, pct, serve

from avatarium.keys.service import Principal
from avatarium.limits.gate import LimitGate
from avatarium.limits.memory import MemoryBackend
from avatarium.limits.policy import Limits
from avatarium.limits.redis import RedisBackend

REDIS_URL = os.environ.get("AVATARIUM_REDIS_URL", "redis://127.0.0.1:6379/0")


async def gate_cost(backend: MemoryBackend | RedisBackend, runs: int = 3000) -> list[float]:
    gate = LimitGate(backend)
    principal = Principal(
        "key_b",
        f"acct_bench_{time.time_ns()}",
        "bench",
        "enterprise",
        "live",
        "full",
        Limits(10**9, 10**6, None),
    )
    costs: list[float] = []
    for index in range(runs + 200):
        started = time.perf_counter()
        admission = await gate.admit(principal)
        await admission.release()
        if index >= 200:
            costs.append((time.perf_counter() - started) * 1e6)
    await gate.aclose()
    return costs


async def burst(base: str, key: str, count: int) -> list[int]:
    async with httpx.AsyncClient(
        base_url=base,
        timeout=60,
        limits=httpx.Limits(max_connections=100),
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        responses = await asyncio.gather(*(client.get("/v1/conversations") for _ in range(count)))
    return [r.status_code for r in responses]


def main() -> None:
    print("Rate limiter")
    for name, backend in (("in-process", MemoryBackend()), ("Redis", RedisBackend(REDIS_URL))):
        costs = asyncio.run(gate_cost(backend))
        print(
            f"  {'admit + release, ' + name + ', p50 / p99':<46} "
            f"{pct(costs, 50):.0f} / {pct(costs, 99):.0f} us"
        )
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "AVATARIUM_DATA_DIR": data_dir,
            "AVATARIUM_REDIS_URL": REDIS_URL,
            "AVATARIUM_LOG_LEVEL": "warning",
        }
        limit = 100
        key = json.loads(cli(env, "keys", "create", "--account", "burst", "--json"))["key"]
        cli(env, "accounts", "set-limits", "burst", "--rpm", str(limit), "--concurrent", "1000")
        fast = json.loads(
            cli(env, "keys", "create", "--account", "fast", "--tier", "enterprise", "--json")
        )["key"]
        cli(env, "accounts", "set-limits", "fast", "--rpm", "100000000", "--concurrent", "10000")
        server = serve(env, 18767, 4)
        try:
            statuses = asyncio.run(burst("http://127.0.0.1:18767", key, 1000))
        finally:
            server.terminate()
            server.wait(timeout=30)
        admitted = statuses.count(200)
        print(
            f"  {'burst: 1,000 requests, 4 workers, limit 100':<46} {admitted} admitted, "
            f"over-admission {admitted - limit} (target 0)"
        )
        if shutil.which("wrk") is None:
            print("  throughput: skipped (wrk is not installed; make bench installs it)")
            return
        server = serve(env, 18768, 2)
        try:
            result = subprocess.run(
                [
                    "wrk",
                    "-t2",
                    "-c64",
                    "-d10s",
                    "-H",
                    f"Authorization: Bearer {fast}",
                    "http://127.0.0.1:18768/v1/conversations",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        finally:
            server.terminate()
            server.wait(timeout=30)
        rate = re.search(r"Requests/sec:\s+([\d.]+)", result)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result)
        print(
            f"  {'authenticated GETs, Redis, 2 workers (wrk)':<46} "
            f"{float(rate.group(1)) if rate else 0:.0f} requests/s, "
            f"{errors.group(1) if errors else 0} non-2xx (target >= 1500)"
        )


if __name__ == "__main__":
    main()
