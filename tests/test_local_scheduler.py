"""The embedded model serving several replies at once (providers/llm/local_scheduler.py):
each reply's text is what it would be alone, a cancelled reply leaves the others untouched,
token counts are exact, memory stays flat, and a reply waiting for a slot is visible in
Server-Timing. The real engine and model throughout."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from avatarium.providers.llm.local_engine import LocalEngine, bundled_model_path, chatml
from tests.server_process import Server, free_port

QUESTIONS = [
    "Tell me about the moon in three sentences.",
    "Describe a sunny day at the beach.",
    "Give me three tips for learning to cook.",
    "Why is the sky blue?",
]
TOKENS = 40


def _prompt(question: str) -> str:
    return chatml([("system", "You are a friendly assistant."), ("user", question)])


def _engine(slots: int) -> LocalEngine:
    return LocalEngine(bundled_model_path(), threads=2, context_tokens=1024, slots=slots)


def _reply(
    engine: LocalEngine, question: str, cancelled: threading.Event | None = None
) -> tuple[str, int, int, list[int]]:
    """(text, prompt tokens, completion tokens, counts heard by on_token)."""
    pieces: list[str] = []
    heard: list[int] = []
    prompt_tokens, completion_tokens = engine.generate(
        _prompt(question),
        TOKENS,
        0.0,
        pieces.append,
        cancelled or threading.Event(),
        lambda _prompt_tokens, produced: heard.append(produced),
    )
    return "".join(pieces), prompt_tokens, completion_tokens, heard


@pytest.fixture(scope="module")
def alone() -> dict[str, tuple[str, int, int, list[int]]]:
    """Each question answered on a fresh engine with one slot, nobody else around."""
    results = {}
    for question in QUESTIONS:
        results[question] = _reply(_engine(1), question)
    return results


def test_concurrent_replies_are_what_they_would_be_alone(
    alone: dict[str, tuple[str, int, int, list[int]]],
) -> None:
    engine = _engine(len(QUESTIONS))
    start = threading.Barrier(len(QUESTIONS))

    def together(question: str) -> tuple[str, int, int, list[int]]:
        start.wait()
        return _reply(engine, question)

    with ThreadPoolExecutor(len(QUESTIONS)) as pool:
        results = dict(zip(QUESTIONS, pool.map(together, QUESTIONS), strict=True))
    for question in QUESTIONS:
        text, prompt_tokens, completion_tokens, heard = results[question]
        assert text and text == alone[question][0], question
        # Usage is exact per reply: the prompt as the tokenizer counts it, and one
        # completion token for each token the engine reported.
        assert prompt_tokens == len(engine.tokenize(_prompt(question)))
        assert (prompt_tokens, completion_tokens) == alone[question][1:3]
        assert heard[-1] == completion_tokens and heard == list(range(completion_tokens + 1))


def test_cancelling_one_reply_leaves_the_others_untouched(
    alone: dict[str, tuple[str, int, int, list[int]]],
) -> None:
    engine = _engine(len(QUESTIONS))
    stop = threading.Event()
    victim = QUESTIONS[0]
    victim_pieces: list[str] = []

    def cancel_after_some_text(piece: str) -> None:
        victim_pieces.append(piece)
        if len(victim_pieces) == 3:
            stop.set()

    with ThreadPoolExecutor(len(QUESTIONS)) as pool:
        others = {q: pool.submit(_reply, engine, q) for q in QUESTIONS[1:]}
        victim_counts = engine.generate(_prompt(victim), TOKENS, 0.0, cancel_after_some_text, stop)
        results = {q: future.result() for q, future in others.items()}
    assert victim_counts[1] == 3, "the cancelled reply stopped at the next step"
    assert alone[victim][0].startswith("".join(victim_pieces))
    for question, (text, *_counts) in results.items():
        assert text == alone[question][0], question


def test_a_reply_cancelled_while_waiting_for_a_slot_leaves_at_once() -> None:
    engine = _engine(1)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(_reply, engine, QUESTIONS[0])
        time.sleep(0.2)  # the first reply holds the only slot
        stop = threading.Event()
        waiting = engine.start(_prompt(QUESTIONS[1]), TOKENS, 0.0, lambda _t: None, stop)
        time.sleep(0.1)
        assert not waiting.done(), "the second reply waits for the only slot"
        stop.set()
        began = time.perf_counter()
        generated = waiting.result(timeout=30)
        left_after = time.perf_counter() - began
        assert not first.done(), "the first reply was still writing"
        assert first.result(timeout=60)[2] > 0
    assert generated.completion_tokens == 0
    assert left_after < 0.5, f"a cancelled waiting reply took {left_after:.2f} s to leave"


def _anonymous_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    pytest.skip("no /proc/self/status")


def test_memory_stays_flat_over_a_thousand_replies() -> None:
    engine = _engine(2)

    def short(index: int) -> int:
        # Mostly one prompt, found whole in a slot (its last token is read again); every
        # tenth another, found in part (the rest of the cache is dropped and re-read).
        prompt = chatml([("user", f"Say the number {index % 30 if index % 10 == 0 else 1}.")])
        return engine.generate(prompt, 1, 0.7, lambda _t: None, threading.Event())[1]

    growth = []
    with ThreadPoolExecutor(2) as pool:
        # Warm-up: every slot used, and the allocator's pools grown to their working size
        # (the first few hundred replies raise the resident size by tens of MB, once).
        assert sum(pool.map(short, range(400))) > 0
        for start in range(400, 1400, 200):
            gc.collect()
            before = _anonymous_kib()
            assert sum(pool.map(short, range(start, start + 200))) == 200
            gc.collect()
            growth.append((_anonymous_kib() - before) / 1024)
    # A leak grows with every reply; the allocator's one-time growth ends early. Flat: the
    # 1,000 replies after the warm-up, and above all the last 400, kept nothing.
    assert max(growth[-2:]) < 2, f"memory grew over 1,000 replies, MiB per 200: {growth}"
    assert sum(growth) < 32, f"memory grew over 1,000 replies, MiB per 200: {growth}"


def test_a_reply_that_waited_for_a_slot_says_so_in_server_timing(tmp_path: Path) -> None:
    env = {**os.environ, "AVATARIUM_DATA_DIR": str(tmp_path)}
    env.pop("AVATARIUM_DATABASE_URL", None)
    created = subprocess.run(
        [sys.executable, "-m", "avatarium.cli", "keys", "create", "--account", "waits",
         "--tier", "enterprise", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {json.loads(created.stdout)['key']}"}
    server = Server(tmp_path, free_port(), {"AVATARIUM_LOCAL_SLOTS": "1"})
    try:
        server.wait_ready()

        def send(_: int) -> str:
            with httpx.Client(base_url=server.base, headers=headers, timeout=120) as client:
                conversation = client.post("/v1/conversations", json={"avatar_id": "aria-001"})
                response = client.post(
                    f"/v1/conversations/{conversation.json()['id']}/messages",
                    json={"content": "Tell me a long story about a robot.", "tts": False},
                )
                assert response.status_code == 200, response.text
                return response.headers["server-timing"]

        with ThreadPoolExecutor(3) as pool:
            timings = list(pool.map(send, range(3)))
    finally:
        server.stop()
    waited = [t for t in timings if "queue;dur=" in t]
    assert waited, f"no send waited for the only slot: {timings}"
    for timing in waited:
        assert float(timing.split("queue;dur=")[1].split(",")[0]) > 1.0
