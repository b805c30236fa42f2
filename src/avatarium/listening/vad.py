"""Voice-activity detection with Silero VAD v6 (the ONNX model ``faster-whisper`` ships in
its assets), run through ONNX Runtime on one thread.

The model scores 32 ms frames (512 samples at 16 kHz) given the 64 samples before each;
frames are scored in batches, so a 64 KiB WebSocket frame (2 s of audio) is one call of about
a millisecond. The model is loaded, and its file checked, once per process.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import numpy as np

from avatarium.core.model_files import package_dir, verify

FRAME_SAMPLES = 512  # 32 ms at 16 kHz
FRAME_MS = 32
CONTEXT_SAMPLES = 64
MODEL_FILE = "silero_vad_v6.onnx"
# faster-whisper 1.2.1's assets/silero_vad_v6.onnx.
MODEL_DIGEST = "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2"


class SileroModel:
    """The loaded ONNX model; ``score`` is thread-safe (ONNX Runtime sessions are)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One thread: a frame batch is tiny, and the cores belong to the recogniser and the
        # language model.
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.log_severity_level = 4
        self._session: Any = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"], sess_options=options
        )

    def score(self, frames: np.ndarray) -> np.ndarray:
        """Speech probabilities of ``frames`` (n, 64 + 512 float32: context then frame)."""
        state = np.zeros((1, 1, 128), dtype=np.float32)
        out, _h, _c = self._session.run(None, {"input": frames, "h": state, "c": state})
        return np.asarray(out, dtype=np.float32).reshape(-1)


_lock = threading.Lock()


@functools.cache
def _load() -> SileroModel:
    directory = package_dir("faster_whisper", "pip install faster-whisper==1.2.1") / "assets"
    verify(directory, {MODEL_FILE: MODEL_DIGEST})
    return SileroModel(directory / MODEL_FILE)


def shared_model() -> SileroModel:
    """The process-wide model (loaded on first use)."""
    with _lock:
        return _load()


def _to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


class FrameScorer:
    """Streaming: feed PCM as it comes, get one probability per complete 32 ms frame."""

    def __init__(self, model: SileroModel) -> None:
        self._model = model
        self._pending = np.zeros(0, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def feed(self, pcm: bytes) -> np.ndarray:
        samples = np.concatenate([self._pending, _to_float(pcm)])
        whole = len(samples) // FRAME_SAMPLES
        self._pending = samples[whole * FRAME_SAMPLES :]
        if whole == 0:
            return np.zeros(0, dtype=np.float32)
        frames = samples[: whole * FRAME_SAMPLES].reshape(whole, FRAME_SAMPLES)
        contexts = np.empty((whole, CONTEXT_SAMPLES), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = frames[:-1, -CONTEXT_SAMPLES:]
        self._context = frames[-1, -CONTEXT_SAMPLES:].copy()
        return self._model.score(np.concatenate([contexts, frames], axis=1))


def speech_ms(pcm: bytes, model: SileroModel, threshold: float) -> int:
    """How much of a whole recording is speech (frames scored at or over ``threshold``)."""
    scores = FrameScorer(model).feed(pcm)
    return int(np.count_nonzero(scores >= threshold)) * FRAME_MS
