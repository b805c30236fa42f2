"""Throughput of the multi-host setup: server processes sharing PostgreSQL, Redis and an
S3-compatible audio store (SeaweedFS), as in tests/test_multihost.py.

An instant loopback vendor answers as OpenAI, so the server's own work is measured: each
send reads and writes PostgreSQL, is admitted by Redis, is spoken by eSpeak and its MP3 put
into the object store. 16 clients in a closed loop spread their sends round-robin over one
host, then over two (each a separate process with its own data directory, as two machines
would be); every reply's audio URL is fetched from the *other* host in the two-host run.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import cli, instant_env, pct, serve, unlimited_key  # noqa: E402
from instant_fake import InstantFake  # noqa: E402
from tests.conftest import create_postgres_database, drop_postgres_database  # noqa: E402
from tests.s3_server import start_s3_server  # noqa: E402

REDIS_URL = os.environ.get("AVATARIUM_REDIS_URL", "redis://127.0.0.1:6379/0")


async def load(bases: list[str], key: str, sends: int, clients: int) -> tuple[list[float], float]:
    """Closed loop over ``bases`` round-robin; latencies (ms) and replies per second."""
    headers = {"Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    async with httpx.AsyncClient(
        headers=headers, timeout=60, limits=httpx.Limits(max_connections=2 * clients)
    ) as client:
        conversations = []
        for n in range(clients):
            created = await client.post(
                f"{bases[n % len(bases)]}/v1/conversations",
                json={"avatar_id": "aria-001", "ai_provider": "openai"},
            )
            created.raise_for_status()
            conversations.append(created.json()["id"])
        remaining = [sends]
        turn = [0]

        async def worker(conversation: str) -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                turn[0] += 1
                here = bases[turn[0] % len(bases)]
                there = bases[(turn[0] + 1) % len(bases)]
                begin = time.perf_counter()
                sent = await client.post(
                    f"{here}/v1/conversations/{conversation}/messages",
                    json={"content": "Hello there"},
                )
                sent.raise_for_status()
                audio = await client.get(sent.json()["audio"]["url"].replace(here, there))
                audio.raise_for_status()
                latencies.append((time.perf_counter() - begin) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in conversations))
        elapsed = time.perf_counter() - started
    return latencies, sends / elapsed


def bench_multihost(sends: int = 400, clients: int = 16) -> None:
    print(
        f"Hosts sharing PostgreSQL, Redis and S3 (SeaweedFS); {clients} clients, {sends} sends "
        "with speech each run, audio fetched back"
    )
    with InstantFake() as fake, tempfile.TemporaryDirectory() as root:
        s3 = start_s3_server(Path(root) / "s3")
        database = asyncio.run(create_postgres_database())
        processes = []
        try:
            bucket = s3.new_bucket()
            envs = [
                instant_env(
                    str(Path(root) / name),
                    fake.url,
                    AVATARIUM_DATABASE_URL=database,
                    AVATARIUM_REDIS_URL=REDIS_URL,
                    AVATARIUM_SECRET_KEY="bench-multi-host",
                    AVATARIUM_GC_INTERVAL_S="0",
                    **s3.env(bucket),
                )
                for name in ("a", "b")
            ]
            cli(envs[0], "migrate")
            key = unlimited_key(envs[0], "bench-hosts")
            bases = []
            for n, env in enumerate(envs):
                port = 18790 + n
                processes.append(serve(env, port))
                bases.append(f"http://127.0.0.1:{port}")
            asyncio.run(load(bases, key, 40, clients))  # warm-up
            rates = {}
            for hosts in (1, 2):
                latencies, rate = asyncio.run(load(bases[:hosts], key, sends, clients))
                rates[hosts] = rate
                print(
                    f"  {f'{hosts} host(s): replies/s, send + audio fetch p50 / p99':<52} "
                    f"{rate:.1f}/s, {pct(latencies, 50):.0f} / {pct(latencies, 99):.0f} ms"
                )
            print(
                f"  {'two hosts against one (same 2-core machine)':<52} {rates[2] / rates[1]:.2f}x"
            )
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=20)
            asyncio.run(drop_postgres_database(database))
            s3.stop()


if __name__ == "__main__":
    bench_multihost()
