"""Test audio the suite makes itself: known sentences spoken by eSpeak NG, resampled and
encoded with PyAV, and the word error rate of what came back."""

from __future__ import annotations

import functools
import io
import pickle
import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

from avatarium.speech.espeak_engine import shared_engine

RATE = 16_000
VOICE = "en-us"

# Everyday requests of the length people speak to an avatar.
SENTENCES = [
    "What time does the library open on Sunday?",
    "Please tell me about the weather in Paris today.",
    "I would like to book a table for two people.",
    "Can you recommend a good book about history?",
    "How far is the train station from here?",
    "My favorite color is green.",
    "Turn off the lights in the kitchen.",
    "What is the capital of France?",
    "I need help with my homework.",
    "The meeting starts at nine in the morning.",
    "Could you play some relaxing music?",
    "How do I make a cup of tea?",
    "Tell me a short story about a dragon.",
    "What is your name?",
    "I am looking for a new pair of shoes.",
    "Where can I buy fresh bread?",
    "Please send the report to my manager.",
    "How many days are in a leap year?",
    "The children are playing in the garden.",
    "I forgot my password again.",
    "Can you explain how a computer works?",
    "We are going to the beach this weekend.",
    "What should I cook for dinner tonight?",
    "The coffee is too hot to drink.",
    "Remind me to call my mother tomorrow.",
    "How old is the universe?",
    "I would like to learn to play the piano.",
    "The bus was late this morning.",
    "Which planet is closest to the sun?",
    "Please open the window.",
    "My phone battery is almost empty.",
    "What is the best way to learn a language?",
    "Thank you very much for your help.",
    "Can you set a timer for ten minutes?",
    "The store closes at six in the evening.",
    "I am feeling a little tired today.",
    "Do you know any good jokes?",
    "Let us go for a walk in the park.",
    "How much water should I drink every day?",
    "The movie was really exciting.",
    "Where did I leave my keys?",
    "Good morning, how are you today?",
    "Please speak a little more slowly.",
    "What is the price of this jacket?",
]


@functools.lru_cache(maxsize=256)
@functools.cache
def spoken_corpus() -> dict[str, bytes]:
    """Every sentence of :data:`SENTENCES` spoken, made in a fresh process.

    eSpeak's output depends a little on what it spoke before (its noise generator and wave
    phase carry over from one render to the next), and Whisper tiny hears such differences:
    the same sentences scored 8.1 % in one process and 10.4 % in another that had rendered
    other voices first. Rendered in a new process, in order, the accuracy test hears the
    same audio on every run and in any test order."""
    script = (
        "import sys, pickle; from tests.voice_audio import SENTENCES, spoken_pcm; "
        "pickle.dump({s: spoken_pcm(s) for s in SENTENCES}, sys.stdout.buffer)"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, check=True, timeout=120
    )
    corpus: dict[str, bytes] = pickle.loads(done.stdout)
    return corpus


def spoken_pcm(text: str) -> bytes:
    """``text`` spoken by eSpeak NG as 16 kHz mono 16-bit PCM."""
    rendering = shared_engine().render(text, VOICE)
    return resample(rendering.pcm, rendering.sample_rate)


def resample(pcm: bytes, rate: int) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    out = [*resampler.resample(frame), *resampler.resample(None)]
    return b"".join(np.ascontiguousarray(f.to_ndarray()).astype("<i2").tobytes() for f in out)


def silence(ms: int) -> bytes:
    return b"\x00\x00" * (RATE * ms // 1000)


# (container, codec, sample rate the codec wants)
FORMATS = {
    "wav": ("wav", "pcm_s16le", RATE),
    "flac": ("flac", "flac", RATE),
    "ogg": ("ogg", "libopus", 48_000),
    "webm": ("webm", "libopus", 48_000),
    "mp3": ("mp3", "libmp3lame", 44_100),
}


def encode(pcm: bytes, kind: str) -> bytes:
    """16 kHz mono PCM in one of the documented upload formats."""
    container_name, codec, rate = FORMATS[kind]
    out = io.BytesIO()
    with av.open(out, mode="w", format=container_name) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"  # type: ignore[union-attr]
        resampler = av.AudioResampler(
            format=stream.format.name,  # type: ignore[union-attr]
            layout="mono",
            rate=rate,
        )
        frame = av.AudioFrame.from_ndarray(
            np.frombuffer(pcm, dtype="<i2").reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        for piece in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(piece):  # type: ignore[union-attr]
                container.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            container.mux(packet)
    return out.getvalue()


def words_of(text: str) -> list[str]:
    """Lower-case words without punctuation; numbers as digits or words both count."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words): Levenshtein over words."""
    ref, hyp = words_of(reference), words_of(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[len(hyp)], len(ref)
