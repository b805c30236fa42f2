"""Benchmarks (not tests): run with `make bench`. Prints figures; asserts nothing.

1. Embedded model: load time, time to first token, tokens per second.
2. eSpeak NG: real-time factor of synthesis, and of MP3 encoding.
3. The real server process on the embedded defaults: per non-streamed send, the server's own
   overhead (Server-Timing app - ai - tts) at p50/p99, and the whole reply's latency as the
   client sees it (replies bounded to 40 tokens, with speech).
4. The same overhead on top of instant OpenAI and Anthropic fakes at concurrency 10
   (bench/cloud.py).
5. The rate limiter: cost per request on each backend, over-admission in a burst across four
   workers, authenticated GETs per second with Redis and two workers (bench/limits.py).
7. A send's overhead against conversation length, 0 to 10,000 messages (bench/history.py).
6. Streamed replies: time from the request to the first `audio` event and to `done`, over
   replies of three or more sentences (bench/streaming.py).
   Then 1, 2, 4 and 8 streams at once: first audio p50/max and the engine's aggregate
   tokens/s (bench/many_streams.py).
8. Spoken turns over the WebSocket in continuous mode: last speech to first audio, end of
   turn to first audio, the recogniser's real-time factor, the worker's memory and CPU
   (bench/voice.py).
9. Knowledge: retrieval recall@5 and MRR (full text, vectors, hybrid) on an evaluation of
   invented manuals, ingestion of 50-page PDFs, retrieval's cost on a send at 10,000
   chunks, and how often the embedded avatar states a fact it was given (bench/knowledge.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from common import cli, pct, serve  # noqa: E402

from avatarium.providers.llm.local_engine import (  # noqa: E402
    LocalEngine,
    bundled_model_path,
    chatml,
)
from avatarium.speech.espeak_engine import shared_engine as espeak_engine  # noqa: E402
from avatarium.speech.mp3 import encode_mp3  # noqa: E402

PROMPTS = [
    "Hello! Who are you?",
    "What is a good way to learn to cook?",
    "Tell me something about the moon.",
    "How do I stay focused while working?",
    "What should I read this week?",
]
SPEECH_TEXT = (
    "Good morning! Today we will look at how sound travels through the air, why thunder "
    "arrives after lightning, and what that tells us about the speed of light."
)


def line(name: str, value: str) -> None:
    print(f"  {name:<46} {value}")


def bench_model(runs: int) -> None:
    print("Embedded model (SmolLM2-135M-Instruct Q4_1, llama.cpp, 2 threads, 2048 context)")
    started = time.perf_counter()
    engine = LocalEngine(bundled_model_path(), threads=2, context_tokens=2048)
    line("load", f"{(time.perf_counter() - started) * 1000:.0f} ms")
    first_tokens: list[float] = []
    rates: list[float] = []
    for index in range(runs):
        prompt = chatml(
            [("system", "You are a friendly assistant."), ("user", PROMPTS[index % len(PROMPTS)])]
        )
        marks: list[float] = []
        begin = time.perf_counter()
        _, produced = engine.generate(
            prompt,
            64,
            0.7,
            lambda _t, marks=marks: marks.append(time.perf_counter()),
            threading.Event(),
        )
        if marks and produced > 1:
            first_tokens.append((marks[0] - begin) * 1000)
            rates.append((produced - 1) / (marks[-1] - marks[0]))
    line(
        "time to first token p50 / p99",
        f"{pct(first_tokens, 50):.0f} / {pct(first_tokens, 99):.0f} ms  ({len(first_tokens)} runs)",
    )
    line("generation speed p50", f"{statistics.median(rates):.0f} tokens/s")


def bench_speech(runs: int) -> None:
    print("Embedded speech (eSpeak NG + LAME 64 kbit/s)")
    engine = espeak_engine()
    synth: list[float] = []
    encode: list[float] = []
    seconds = 0.0
    for _ in range(runs):
        begin = time.perf_counter()
        rendering = engine.render(SPEECH_TEXT, "en-us+f3")
        middle = time.perf_counter()
        encode_mp3(rendering.pcm, rendering.sample_rate)
        end = time.perf_counter()
        seconds = rendering.duration_ms / 1000
        synth.append(middle - begin)
        encode.append(end - middle)
    line("speech per run", f"{seconds:.1f} s of audio")
    line(
        "synthesis real-time factor p50",
        f"{statistics.median(synth) / seconds:.4f}  ({statistics.median(synth) * 1000:.1f} ms)",
    )
    line(
        "MP3 encoding real-time factor p50",
        f"{statistics.median(encode) / seconds:.4f}  ({statistics.median(encode) * 1000:.1f} ms)",
    )


TIMING = re.compile(r"(\w+);dur=([\d.]+)")


def bench_server(
    sends: int, database_url: str | None, extra_env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Per-send server overhead (p50, p99 ms) of a server process; ``extra_env`` adds
    settings (the observability comparison turns metrics and JSON logs on)."""
    print(f"Server process, embedded defaults, {sends} non-streamed sends with speech")
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "AVATARIUM_DATA_DIR": data_dir,
            "AVATARIUM_LOCAL_MAX_TOKENS": "40",
            "AVATARIUM_LOG_LEVEL": "warning",
        }
        if database_url:
            env["AVATARIUM_DATABASE_URL"] = database_url
        env.update(extra_env or {})
        port = 18765
        # An enterprise test key: 200 sends in a few minutes would exceed the free tier.
        key = json.loads(
            cli(env, "keys", "create", "--account", "bench", "--tier", "enterprise", "--json")
        )["key"]
        process = serve(env, port)
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(
                base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}"}
            ) as client:
                overhead: list[float] = []
                whole: list[float] = []
                tokens: list[int] = []
                conversation = ""
                for index in range(sends + 5):
                    if index % 10 == 0:  # fresh conversations keep prompts short and varied
                        conversation = client.post(
                            "/v1/conversations", json={"avatar_id": "aria-001"}
                        ).json()["id"]
                    begin = time.perf_counter()
                    response = client.post(
                        f"/v1/conversations/{conversation}/messages",
                        json={"content": PROMPTS[index % len(PROMPTS)]},
                    )
                    elapsed = (time.perf_counter() - begin) * 1000
                    response.raise_for_status()
                    if index < 5:
                        continue  # warm-up
                    phases = {
                        k: float(v) for k, v in TIMING.findall(response.headers["server-timing"])
                    }
                    overhead.append(phases["app"] - phases["ai"] - phases["tts"])
                    whole.append(elapsed)
                    tokens.append(response.json()["usage"]["ai_tokens"])
        finally:
            process.terminate()
            process.wait(timeout=20)
    line(
        "server overhead per send p50 / p99",
        f"{pct(overhead, 50):.2f} / {pct(overhead, 99):.2f} ms  (target <= 5 / 20)",
    )
    line(
        "whole reply (<= 40 tokens, with speech) p50 / p99",
        f"{pct(whole, 50):.0f} / {pct(whole, 99):.0f} ms  (target p50 <= 600)",
    )
    line("throughput, one client, sequential", f"{1000 / statistics.mean(whole):.2f} replies/s")
    return pct(overhead, 50), pct(overhead, 99)


def bench_observability(sends: int) -> None:
    """The per-send overhead with metrics and JSON logs (an access line per request) on,
    against off; alternated twice so drift does not pass for a difference."""
    on = {"AVATARIUM_METRICS_TOKEN": "bench-metrics-token", "AVATARIUM_LOG_FORMAT": "json",
          "AVATARIUM_LOG_LEVEL": "info"}  # fmt: skip
    results: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    for _round in range(2):
        for name, extra in (("off", {}), ("on", on)):
            print(f"[observability {name}] ", end="")
            results[name].append(bench_server(sends, None, extra))
    off50 = statistics.mean(p50 for p50, _p99 in results["off"])
    on50 = statistics.mean(p50 for p50, _p99 in results["on"])
    line("overhead p50, metrics and JSON logs off / on",
         f"{off50:.2f} / {on50:.2f} ms: {on50 - off50:+.2f} ms (target within 0.3)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sends", type=int, default=200)
    parser.add_argument("--model-runs", type=int, default=20)
    parser.add_argument(
        "--database-url", default=None, help="bench the server on this database instead of SQLite"
    )
    parser.add_argument(
        "--only",
        choices=(
            "model",
            "speech",
            "server",
            "cloud",
            "history",
            "limits",
            "streaming",
            "many_streams",
            "voice",
            "knowledge",
            "webhooks",
            "observability",
            "multihost",
        ),
        default=None,
    )
    args = parser.parse_args()
    print(f"Avatarium benchmarks on {os.cpu_count()} cores\n")
    if args.only in (None, "model"):
        bench_model(args.model_runs)
        print()
    if args.only in (None, "speech"):
        bench_speech(50)
        print()
    if args.only in (None, "server"):
        bench_server(args.sends, args.database_url)
        print()
    if args.only in (None, "cloud"):
        from cloud import bench_cloud  # bench/cloud.py: starts the vendor fakes

        bench_cloud()
        print()
    if args.only in (None, "history"):
        from history import bench_history  # bench/history.py: cost against length

        bench_history()
        print()
    if args.only in (None, "streaming"):
        from streaming import bench_streaming  # bench/streaming.py: SSE, first audio

        bench_streaming()
        print()
    if args.only in (None, "many_streams"):
        from many_streams import bench_many_streams  # bench/many_streams.py: 1-8 at once

        bench_many_streams()
        print()
    if args.only in (None, "voice"):
        from voice import bench_voice  # bench/voice.py: spoken turns over the WebSocket

        bench_voice()
        print()
    if args.only in (None, "knowledge"):
        from knowledge import bench_knowledge  # bench/knowledge.py: retrieval, ingestion

        bench_knowledge()
        print()
    if args.only in (None, "observability"):
        bench_observability(args.sends)
        print()
    if args.only in (None, "webhooks"):
        from webhooks import bench_webhooks  # bench/webhooks.py: deliveries, analytics

        bench_webhooks()
        print()
    if args.only in (None, "multihost"):
        from multihost import bench_multihost  # bench/multihost.py: PostgreSQL, Redis, S3

        bench_multihost()
        print()
    if args.only in (None, "limits"):
        from limits import main as bench_limits  # bench/limits.py: Redis, workers, wrk

        bench_limits()


if __name__ == "__main__":
    main()
