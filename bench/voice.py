"""Spoken turns on the embedded engines: how soon the avatar answers a voice.

A real server process on the defaults (Whisper tiny.en, SmolLM2, eSpeak NG) and one
WebSocket in continuous mode. For each turn the client streams, in real time and in 20 ms
frames like a microphone, a little silence, a sentence spoken by eSpeak NG, then silence
until the reply's first ``audio`` frame (and its ``done``) arrives. It times:

- from the last speech sample sent to the first ``audio`` frame (what the user feels);
- from the end of the turn (the ``PROCESSING`` state frame: the server decided the user had
  finished) to the first ``audio`` frame;
- from the last speech sample to the end of the turn (the silence window at work).

Then, in this process: the recogniser's real-time factor on the same sentences, and the
worker's resident memory and CPU time per turn with the three models loaded.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx
import websockets
from common import embedded_server, pct

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.voice_audio import SENTENCES, silence, spoken_pcm  # noqa: E402

FRAME = 640  # 20 ms of 16 kHz 16-bit audio
FRAME_S = 0.02


def _proc_tree(pid: int) -> list[int]:
    pids = [pid]
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for each in child.read_text().split():
            pids.extend(_proc_tree(int(each)))
    return pids


def _cpu_s(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        for row in Path(f"/proc/{pid}/status").read_text().splitlines():
            if row.startswith("VmRSS:"):
                total += int(row.split()[1])
    return total / 1024


class Mic:
    """Streams audio in real time; silence whenever there is nothing else to say."""

    def __init__(self, socket: websockets.ClientConnection) -> None:
        self._socket = socket
        self._queue: list[bytes] = []
        self.last_speech_at = 0.0
        self._speech_end = -1
        self._task = asyncio.ensure_future(self._run())

    def say(self, pcm: bytes) -> None:
        frames = [pcm[i : i + FRAME] for i in range(0, len(pcm), FRAME)]
        self._queue.extend(frames)
        self._speech_end = len(frames)

    async def _run(self) -> None:
        next_at = time.perf_counter()
        quiet = silence(20)
        while True:
            frame = self._queue.pop(0) if self._queue else quiet
            await self._socket.send(frame)
            if self._speech_end > 0:
                self._speech_end -= 1
                if self._speech_end == 0:
                    self.last_speech_at = time.perf_counter()
            next_at += FRAME_S
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def stop(self) -> None:
        self._task.cancel()


TURNS_PER_CONVERSATION = 5  # as bench/streaming.py: short conversations, small prompts


async def _turns(url: str, key: str, turns: int) -> dict[str, list[float]]:
    """``turns`` counted turns (after two warm-up turns), five per conversation."""
    figures: dict[str, list[float]] = {}
    done = 0
    async with httpx.AsyncClient(base_url=url.replace("ws://", "http://")) as client:
        while done < turns + 2:
            conversation = (
                await client.post(
                    "/v1/conversations",
                    json={"avatar_id": "aria-001"},
                    headers={"Authorization": f"Bearer {key}"},
                )
            ).json()["id"]
            count = min(TURNS_PER_CONVERSATION, turns + 2 - done)
            part = await _conversation_turns(url, key, conversation, done, count)
            for name, values in part.items():
                figures.setdefault(name, []).extend(values)
            done += count
    return figures


async def _conversation_turns(
    url: str, key: str, conversation: str, first: int, turns: int
) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"speech_to_audio": [], "eot_to_audio": [],
                                       "speech_to_eot": [], "eot_to_final": [],
                                       "final_to_text": [], "text_to_audio": []}  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"}
    async with websockets.connect(
        f"{url}/v1/conversations/{conversation}/ws", additional_headers=headers
    ) as socket:
        assert json.loads(await socket.recv())["type"] == "ready"
        await socket.send(json.dumps({"type": "audio.start", "format": "pcm_s16le",
                                      "sample_rate": 16000, "mode": "continuous"}))  # fmt: skip
        mic = Mic(socket)
        try:
            for turn in range(first, first + turns):
                sentence = SENTENCES[turn % len(SENTENCES)]
                mic.say(silence(300) + spoken_pcm(sentence))
                eot = first_audio = final = first_text = 0.0
                while True:
                    frame = json.loads(await asyncio.wait_for(socket.recv(), 60))
                    now = time.perf_counter()
                    if frame["type"] == "state" and frame["state"] == "PROCESSING":
                        eot = now
                    elif frame["type"] == "transcript.final":
                        final = now
                    elif frame["type"] == "message.delta" and not first_text:
                        first_text = now
                    elif frame["type"] == "audio" and not first_audio:
                        first_audio = now
                        if os.environ.get("BENCH_VERBOSE"):
                            print("   first chunk:", repr(frame["text"]))
                    elif frame["type"] == "error":
                        raise RuntimeError(frame)
                    elif frame["type"] == "done":
                        break
                # Let the reply "play" before the next turn (speech over it would barge in).
                await asyncio.sleep(0.3)
                if turn < 2 or not first_audio:
                    continue
                spoke = mic.last_speech_at
                figures["speech_to_audio"].append((first_audio - spoke) * 1000)
                figures["eot_to_audio"].append((first_audio - eot) * 1000)
                figures["speech_to_eot"].append((eot - spoke) * 1000)
                if os.environ.get("BENCH_VERBOSE"):
                    print(f"   turn {turn}: speech->eot {(eot - spoke) * 1000:.0f}, "
                          f"eot->final {(final - eot) * 1000:.0f}, "
                          f"final->audio {(first_audio - final) * 1000:.0f} ms")  # fmt: skip
                figures["eot_to_final"].append((final - eot) * 1000)
                figures["final_to_text"].append((first_text - final) * 1000)
                figures["text_to_audio"].append((first_audio - first_text) * 1000)
        finally:
            await mic.stop()
    return figures


def _stt_rtf(count: int) -> tuple[float, float]:
    """(real-time factor of final decodes, of partial decodes) on the bench's sentences."""
    sys.path.insert(0, str(ROOT / "src"))
    from avatarium.providers.stt.whisper_engine import bundled_model_dir, shared_engine

    engine = shared_engine(bundled_model_dir(), 2)
    audio_s = final_s = partial_s = 0.0
    for sentence in SENTENCES[:count]:
        pcm = spoken_pcm(sentence)
        audio_s += len(pcm) / 32_000
        started = time.perf_counter()
        engine.decode(pcm, beam_size=5, words=False)
        final_s += time.perf_counter() - started
        started = time.perf_counter()
        engine.decode(pcm, beam_size=1, words=False)
        partial_s += time.perf_counter() - started
    return final_s / audio_s, partial_s / audio_s


def bench_voice(turns: int = 50) -> None:
    print(f"Spoken turns, embedded engines, continuous mode, {turns} turns over one WebSocket")
    port = 18767
    with embedded_server(port) as (key, process):
        pids = _proc_tree(process.pid)
        idle_rss = _rss_mb(pids)
        cpu_before = _cpu_s(pids)
        started = time.perf_counter()
        figures = asyncio.run(_turns(f"ws://127.0.0.1:{port}", key, turns))
        wall = time.perf_counter() - started
        cpu = _cpu_s(pids) - cpu_before
        busy_rss = _rss_mb(pids)
    s2a, e2a, s2e = figures["speech_to_audio"], figures["eot_to_audio"], figures["speech_to_eot"]
    print(f"  {'turns counted':<46} {len(s2a)}")
    print(f"  {'last speech -> first audio p50 / p95':<46} "
          f"{pct(s2a, 50):.0f} / {pct(s2a, 95):.0f} ms  (target <= 1000 / 1400)")  # fmt: skip
    print(f"  {'end of turn -> first audio p50 / p95':<46} "
          f"{pct(e2a, 50):.0f} / {pct(e2a, 95):.0f} ms  (target p50 <= 400)")  # fmt: skip
    print(f"  {'last speech -> end of turn p50 / p95':<46} "
          f"{pct(s2e, 50):.0f} / {pct(s2e, 95):.0f} ms  (silence window 600 ms)")  # fmt: skip
    e2f = figures["eot_to_final"]
    print(f"  {'end of turn -> final transcript p50 / p95':<46} "
          f"{pct(e2f, 50):.0f} / {pct(e2f, 95):.0f} ms")  # fmt: skip
    for name, label in (
        ("final_to_text", "final transcript -> first text"),
        ("text_to_audio", "first text -> first audio"),
    ):
        values = figures[name]
        print(f"  {label + ' p50 / p95':<46} {pct(values, 50):.0f} / {pct(values, 95):.0f} ms")
    print(f"  {'worker resident memory, idle / after':<46} {idle_rss:.0f} / {busy_rss:.0f} MB")
    per_turn = cpu / (len(s2a) + 2) * 1000
    share = cpu / wall * 100
    print(f"  {'worker CPU per turn (2 warm-up turns too)':<46} "
          f"{per_turn:.0f} ms  ({share:.0f}% of one core)")  # fmt: skip
    final_rtf, partial_rtf = _stt_rtf(20)
    print(f"  {'recogniser real-time factor, final / partial':<46} "
          f"{final_rtf:.3f} / {partial_rtf:.3f}  (decode time / audio time)")  # fmt: skip


if __name__ == "__main__":
    bench_voice(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
