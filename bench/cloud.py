"""What the server adds on top of an instant cloud provider, at concurrency 10.

Starts an instant loopback vendor (bench/instant_fake.py, its own process), a real server
process configured to use it as OpenAI and as Anthropic, and sends non-streamed messages
(speech by the browser, so only the AI path is measured) from 10 concurrent clients. Per
send, the server's own time is ``app - ai - tts`` from ``Server-Timing``.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import instant_env, pct, serve, unlimited_key  # noqa: E402
from instant_fake import InstantFake  # noqa: E402

TIMING = re.compile(r"(\w+);dur=([\d.]+)")


async def load(
    base: str, key: str, provider: str, sends: int, concurrency: int, rate: float | None = None
) -> tuple[list[float], float]:
    """Closed loop (each client sends again at once) or, with ``rate``, paced: sends start
    at ``rate`` per second overall, still at most ``concurrency`` in flight."""
    overheads: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=60, limits=httpx.Limits(max_connections=concurrency)
    ) as client:
        conversations = []
        for _ in range(concurrency):
            created = await client.post(
                "/v1/conversations",
                json={"avatar_id": "aria-001", "ai_provider": provider, "tts_provider": "browser"},
            )
            created.raise_for_status()
            conversations.append(created.json()["id"])
        remaining = [sends + 5 * concurrency]
        begin = time.perf_counter()
        started_count = [0]

        async def worker(conversation: str) -> None:
            warm = 5
            while remaining[0] > 0:
                remaining[0] -= 1
                if rate is not None:
                    due = begin + started_count[0] / rate
                    started_count[0] += 1
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                response = await client.post(
                    f"/v1/conversations/{conversation}/messages", json={"content": "Hello there"}
                )
                response.raise_for_status()
                if warm:
                    warm -= 1
                    continue
                phases = {k: float(v) for k, v in TIMING.findall(response.headers["server-timing"])}
                overheads.append(phases["app"] - phases["ai"] - phases["tts"])

        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in conversations))
        elapsed = time.perf_counter() - started
    return overheads, (sends + 5 * concurrency) / elapsed


def bench_cloud(sends: int = 300, concurrency: int = 10) -> None:
    workers = os.environ.get("BENCH_WORKERS", "1")
    print(
        f"Server overhead over an instant provider, concurrency {concurrency}, "
        f"{sends} sends each, {workers} worker(s)"
    )
    with InstantFake() as fake, tempfile.TemporaryDirectory() as data_dir:
        env = instant_env(data_dir, fake.url)
        # The load exceeds even the enterprise tier's 1,000 requests a minute.
        key = unlimited_key(env, "bench")
        port = 18766
        server = serve(env, port, int(workers))
        base = f"http://127.0.0.1:{port}"
        try:
            for provider in ("openai", "anthropic"):
                label = "OpenAI-compatible" if provider == "openai" else "Anthropic"
                for pace in (None, 100.0):
                    overheads, rate = asyncio.run(
                        load(base, key, provider, sends, concurrency, pace)
                    )
                    how = "closed loop" if pace is None else f"paced {pace:.0f}/s"
                    print(
                        f"  {label + ', ' + how + ', overhead p50 / p99':<52} "
                        f"{pct(overheads, 50):.2f} / {pct(overheads, 99):.2f} ms  "
                        f"({rate:.0f} sends/s; target <= 5 / 20)"
                    )
        finally:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    bench_cloud()
