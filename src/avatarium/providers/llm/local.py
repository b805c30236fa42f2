"""``local``: the embedded model as an LLM provider, streaming off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future
from pathlib import Path

from avatarium.core.events import TextDelta, Usage
from avatarium.core.settings import Settings
from avatarium.core.timing import current_timings
from avatarium.providers.errors import FailureCategory, ProviderError
from avatarium.providers.llm.base import ChatMessage, ChatRequest
from avatarium.providers.llm.local_engine import (
    MODEL_NAME,
    Generated,
    LocalEngine,
    bundled_model_path,
    chatml,
    shared_engine,
)
from avatarium.providers.registry import ProviderSpec

_END = object()


# Keeps a small model out of loops in free conversation.
REPEAT_PENALTY = 1.1


class LocalProvider:
    """SmolLM2 in-process. Generation runs in a worker thread; tokens reach the event loop
    through a queue, and leaving the iteration early stops the model at the next token."""

    name = "local"
    # A 135M-parameter model follows facts placed next to the question far better than
    # facts in the system prompt (docs/knowledge.md, Figures).
    knowledge_in_user_turn = True
    # ... and one passage better than three: given more, it copies from the wrong one.
    knowledge_passages = 1
    default_model = MODEL_NAME

    def __init__(self, settings: Settings) -> None:
        self._model_path: Path = settings.local_model_path or bundled_model_path()
        self._threads = settings.local_threads
        self._slots = settings.local_slots
        self.context_tokens = settings.local_context_tokens
        self.max_reply_tokens = settings.local_max_tokens
        self._temperature = settings.local_temperature
        self._message_tokens = functools.lru_cache(maxsize=8192)(self._count_message)

    def engine(self) -> LocalEngine:
        """The loaded model (first call loads it)."""
        return shared_engine(self._model_path, self._threads, self.context_tokens, self._slots)

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        # ChatML wraps each message in special tokens, which the tokenizer never merges
        # across, so a prompt's count is the sum of its messages' counts: cache those, and a
        # send only tokenizes its new message.
        return self._reply_cue + sum(self._message_tokens(m.role, m.content) for m in messages)

    def message_tokens(self, message: ChatMessage) -> int:
        return self._message_tokens(message.role, message.content)

    @functools.cached_property
    def _reply_cue(self) -> int:
        return len(self.engine().tokenize(chatml([])))

    def _count_message(self, role: str, content: str) -> int:
        return len(self.engine().tokenize(chatml([(role, content)]))) - self._reply_cue

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | Usage]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()
        prompt = chatml([(m.role, m.content) for m in request.messages])
        engine = self.engine()
        meter = request.meter
        timings = current_timings.get()  # this request's (the engine reports from its thread)

        def put(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def count(prompt_tokens: int, produced: int) -> None:
            meter.prompt_tokens, meter.completion_tokens = prompt_tokens, produced

        def ended(done: Future[Generated]) -> None:
            error = done.exception()
            if error is not None:
                put(error)
            else:
                generated = done.result()
                if timings is not None and generated.waited_s > 0.001:
                    timings.add("queue", generated.waited_s * 1000.0)  # all slots were busy
                put(Usage(ai_tokens=generated.prompt_tokens + generated.completion_tokens))
            put(_END)

        # No thread per reply: the engine's own thread runs every reply's steps.
        reply = engine.start(
            prompt,
            self.max_reply_tokens,
            self._temperature,
            lambda text: put(TextDelta(text)),
            cancelled,
            count,
            # Copying the facts it was given is the point of a grounded reply; the penalty
            # on repeating recent tokens makes the model paraphrase them into errors ("£314"
            # for "314 euros"): 16 of 25 facts stated with it, 19 without
            # (bench/knowledge.py, docs/knowledge.md).
            repeat_penalty=1.0 if request.grounded else REPEAT_PENALTY,
        )
        reply.add_done_callback(ended)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise ProviderError(
                        FailureCategory.BAD_RESPONSE, self.name, f"embedded model failed: {item}"
                    ) from item
                assert isinstance(item, TextDelta | Usage)
                yield item
        finally:
            cancelled.set()
            # Returns once the reply has left the engine (at its next step at the latest);
            # its failure, if any, was raised above.
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.wrap_future(reply))


def _build(settings: Settings) -> LocalProvider:
    return LocalProvider(settings)


SPEC = ProviderSpec(name="local", kind="llm", build=_build)
