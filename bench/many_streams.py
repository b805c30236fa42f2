"""Many people at once on the embedded engines: time to first audio and tokens per second.

Two measurements at 1, 2, 4 and 8 concurrent streams:

* **first audio**, through the API: N clients, each in its own conversation, send the same
  streamed message at the same moment ("Tell me about the moon in three sentences.") to a
  real server process on the embedded defaults; each times its first ``audio`` event. A few
  rounds per level; p50 and max over every stream of every round.
* **aggregate tokens/s**, in-process: N threads each generate a reply of 48 tokens from the
  engine at once (temperature 0); completion tokens of all replies / wall time.

    python bench/many_streams.py     # or: python bench/run.py --only many_streams
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from common import embedded_server, pct
from streaming import stream_once

from avatarium.core.settings import Settings

LEVELS = (1, 2, 4, 8)
PROMPT = "Tell me about the moon in three sentences."


def _first_audio(base: str, key: str, conversation: str, start: threading.Barrier) -> float:
    with httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {key}"}) as c:
        start.wait()
        first, _done, chunks = stream_once(c, conversation, PROMPT)
        if not chunks:
            raise RuntimeError("a streamed reply ended without any audio")
        return first


def bench_first_audio(slots: int, rounds: int = 3) -> dict[int, tuple[float, float]]:
    port = 18768
    results: dict[int, tuple[float, float]] = {}
    with embedded_server(port, AVATARIUM_LOCAL_SLOTS=str(slots)) as (key, _process):
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {key}"}
        for level in LEVELS:
            times: list[float] = []
            for round_ in range(rounds + 1):  # the first round warms up
                body = {"avatar_id": "aria-001"}
                conversations = [
                    httpx.post(f"{base}/v1/conversations", headers=auth, json=body).json()["id"]
                    for _ in range(level)
                ]
                barrier = threading.Barrier(level)
                with ThreadPoolExecutor(level) as pool:
                    firsts = list(
                        pool.map(_first_audio, [base] * level, [key] * level, conversations,
                                 [barrier] * level)
                    )  # fmt: skip
                if round_:
                    times.extend(firsts)
            results[level] = (pct(times, 50), max(times))
    return results


def bench_tokens(tokens: int = 48) -> dict[int, float]:
    from avatarium.providers.llm.local_engine import bundled_model_path, chatml, shared_engine

    settings = Settings()
    engine = shared_engine(
        bundled_model_path(),
        settings.local_threads,
        settings.local_context_tokens,
        max(LEVELS),
    )
    prompt = chatml([("system", "You are a friendly assistant."), ("user", PROMPT)])
    results: dict[int, float] = {}

    def one(_: int) -> int:
        _prompt_tokens, produced = engine.generate(
            prompt, tokens, 0.0, lambda _text: None, threading.Event()
        )
        return produced

    for level in LEVELS:
        # A round to warm up: every slot then holds the prompt, as in a steady state
        # (a reply reads only the part of its prompt that its slot does not hold).
        with ThreadPoolExecutor(level) as pool:
            list(pool.map(one, range(level)))
        begin = time.perf_counter()
        with ThreadPoolExecutor(level) as pool:
            produced = sum(pool.map(one, range(level)))
        results[level] = produced / (time.perf_counter() - begin)
    return results


def bench_many_streams() -> None:
    print("Concurrent streams on the embedded model and speech (same message, same moment)")
    rates = bench_tokens()
    default = Settings().local_slots
    audio = {slots: bench_first_audio(slots) for slots in (default, max(LEVELS))}
    print(
        f"  {'streams':<8} {'first audio p50 / max':>22} {f'with {max(LEVELS)} slots':>16}"
        f" {'tokens/s':>9} {'vs 1':>6}"
    )
    for level in LEVELS:
        (p50, worst), (p50_all, worst_all) = audio[default][level], audio[max(LEVELS)][level]
        ratio = rates[level] / rates[1]
        print(
            f"  {level:<8} {p50:9.0f} / {worst:5.0f} ms {p50_all:8.0f} / {worst_all:5.0f} ms"
            f" {rates[level]:9.1f} {ratio:5.2f}x"
        )
    print(f"  (first audio with the default {default} slots, then with {max(LEVELS)})")
    print(
        "  targets: at 4 streams p50 <= 300 ms and max <= 600 ms; at 8, p50 <= 500 ms; "
        "tokens/s at 8 >= 2.5x one stream's"
    )


if __name__ == "__main__":
    bench_many_streams()
