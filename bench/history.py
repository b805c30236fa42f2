"""A send's cost against the length of its conversation (0 to 10,000 stored messages).

One server process on an instant loopback OpenAI-compatible upstream (speech by the
browser, so only the text path runs). One conversation grows through the API itself (eight
clients sending to it at once); at each length, 40 sequential sends are timed by their
``Server-Timing``: the server's own part, ``app - ai - tts``.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import instant_env, pct, serve, unlimited_key  # noqa: E402
from instant_fake import InstantFake  # noqa: E402

TIMING = re.compile(r"(\w+);dur=([\d.]+)")
LENGTHS = (0, 100, 1_000, 2_500, 5_000, 10_000)
SAMPLES = 40
CONVERSATION = {"avatar_id": "aria-001", "ai_provider": "openai", "tts_provider": "browser"}


async def _grow(client: httpx.AsyncClient, path: str, have: int, want: int) -> int:
    """Send until the conversation holds at least ``want`` messages (two per send)."""
    sends = max(0, (want - have + 1) // 2)
    queue = list(range(sends))

    async def worker() -> None:
        while queue:
            queue.pop()
            (await client.post(path, json={"content": "Filling the history."})).raise_for_status()

    await asyncio.gather(*(worker() for _ in range(8)))
    return have + 2 * sends


async def _measure(client: httpx.AsyncClient, path: str, count: int = SAMPLES) -> list[float]:
    overheads = []
    for _ in range(count):
        response = await client.post(path, json={"content": "Hello there"})
        response.raise_for_status()
        phases = {k: float(v) for k, v in TIMING.findall(response.headers["server-timing"])}
        overheads.append(phases["app"] - phases["ai"] - phases["tts"])
    return overheads


async def _curve(base: str, key: str) -> list[tuple[int, list[float]]]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        created = await client.post("/v1/conversations", json=CONVERSATION)
        created.raise_for_status()
        path = f"/v1/conversations/{created.json()['id']}/messages"
        await _measure(client, path)  # warm-up; these sends count in the length
        rows: list[tuple[int, list[float]]] = []
        have = 2 * SAMPLES
        for length in LENGTHS:
            if length == 0:  # a new conversation for each sample: truly empty
                samples: list[float] = []
                for _ in range(SAMPLES):
                    new = await client.post("/v1/conversations", json=CONVERSATION)
                    one = f"/v1/conversations/{new.json()['id']}/messages"
                    samples.extend(await _measure(client, one, 1))
                rows.append((0, samples))
                continue
            have = await _grow(client, path, have, length)
            rows.append((have, await _measure(client, path)))
            have += 2 * SAMPLES
    return rows


def bench_history() -> None:
    print("A send's server overhead against conversation length (instant upstream, SQLite)")
    with InstantFake() as fake, tempfile.TemporaryDirectory() as data_dir:
        env = instant_env(data_dir, fake.url)
        key = unlimited_key(env, "history")
        port = 18767
        server = serve(env, port)
        try:
            rows = asyncio.run(_curve(f"http://127.0.0.1:{port}", key))
        finally:
            server.terminate()
            server.wait(timeout=20)
    empty = pct(rows[0][1], 50)
    for length, samples in rows:
        p50 = pct(samples, 50)
        print(
            f"  {length:>6} stored messages: overhead p50 / p99 "
            f"{p50:.2f} / {pct(samples, 99):.2f} ms  ({p50 - empty:+.2f} ms vs a new one;"
            f" target within 1 ms)"
        )


if __name__ == "__main__":
    bench_history()
