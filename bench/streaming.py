"""Streamed replies on the embedded model and speech engine: how soon the avatar speaks.

Sends streamed messages (`"stream": true`) to the real server process, one at a time, and
times, from the moment the request is sent, the first `audio` event and the `done` event.
Only replies of three or more sentences (three or more `audio` chunks) count; it keeps
sending until it has the requested number of them.
"""

from __future__ import annotations

import time

import httpx
from common import embedded_server, pct

PROMPTS = [
    "Tell me three short facts about the moon.",
    "Describe a sunny day at the beach in a few sentences.",
    "Give me three tips for learning to cook.",
    "Tell me a short story about a friendly robot.",
    "Explain in a few sentences why the sky is blue.",
]


def stream_once(client: httpx.Client, conversation: str, prompt: str) -> tuple[float, float, int]:
    """(ms to the first audio event, ms to done, audio chunks) for one streamed send."""
    first_audio = done = 0.0
    chunks = 0
    begin = time.perf_counter()
    with client.stream(
        "POST",
        f"/v1/conversations/{conversation}/messages",
        json={"content": prompt, "stream": True},
    ) as response:
        response.raise_for_status()
        event = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "audio":
                chunks += 1
                if chunks == 1:
                    first_audio = (time.perf_counter() - begin) * 1000
            elif line.startswith("data:") and event == "error":
                raise RuntimeError(line)
            elif line.startswith("data:") and event == "done":
                done = (time.perf_counter() - begin) * 1000
    return first_audio, done, chunks


def bench_streaming(replies: int = 60) -> None:
    print(f"Streamed replies, embedded model and speech, {replies} replies of 3+ sentences")
    port = 18766
    first: list[float] = []
    whole: list[float] = []
    sent = 0
    with (
        embedded_server(port) as (key, _process),
        httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=60,
            headers={"Authorization": f"Bearer {key}"},
        ) as client,
    ):
        conversation = ""
        while len(first) < replies and sent < replies * 6:
            if sent % 5 == 0:  # short conversations keep the prompt (and its cost) small
                conversation = client.post(
                    "/v1/conversations", json={"avatar_id": "aria-001"}
                ).json()["id"]
            to_audio, to_done, chunks = stream_once(
                client, conversation, PROMPTS[sent % len(PROMPTS)]
            )
            sent += 1
            if sent <= 3 or chunks < 3:
                continue  # warm-up, or a reply too short to count
            first.append(to_audio)
            whole.append(to_done)
    ratios = [a / d for a, d in zip(first, whole, strict=True)]
    print(f"  {'replies counted / sent':<46} {len(first)} / {sent}")
    print(
        f"  {'time to first audio p50 / p95':<46} "
        f"{pct(first, 50):.0f} / {pct(first, 95):.0f} ms  (target <= 250 / 400)"
    )
    print(f"  {'time to done p50 / p95':<46} {pct(whole, 50):.0f} / {pct(whole, 95):.0f} ms")
    print(
        f"  {'first audio as a share of done, p50':<46} {pct(ratios, 50):.2f}"
        f"  (speech starts at {pct(ratios, 50) * 100:.0f}% of the reply's time)"
    )


if __name__ == "__main__":
    bench_streaming()
