"""Sharing the embedded model between concurrent replies: slots, and turns at the model.

A reply holds a *slot* (a llama.cpp context of its own: its KV cache keeps one sequence)
from its first prompt token to its last token, and advances one *step* at a time (a piece
of its prompt, or one token). On a small CPU a step for several sequences in one batch
costs nearly as much as the steps one by one (``bench/batching.py``), so the gain is not
throughput but order: who computes next.

* A reply that has not yet written its first words is served first, in order of arrival:
  its first sentence is what its listener waits for, while a reply that is already
  speaking has seconds of audio queued. The others take turns round-robin.
* There are ``AVATARIUM_LOCAL_SLOTS`` slots; beyond that many replies at once, the others
  wait for one in order of arrival.

Every step runs on one thread of the scheduler's own. llama.cpp's OpenMP runtime keeps a
team of worker threads per calling thread, so replies computing from their own threads
would each start a team whose idle workers spin on the cores the next step needs; and
handing each token back to a reply's thread costs a GIL hand-over per token. Both cost
about a quarter of the aggregate tokens/s when measured (``bench/many_streams.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

S = TypeVar("S")
S_contra = TypeVar("S_contra", contravariant=True)


class Job(Protocol[S_contra]):
    """One reply, as the scheduler drives it (every call on the scheduler's thread)."""

    cancelled: threading.Event

    @property
    def starting(self) -> bool:
        """Whether it has not yet written its first words (it then goes first)."""
        ...

    def fit(self, slot: S_contra) -> int:
        """How well ``slot`` suits it: the prompt tokens its cache already holds."""
        ...

    def step(self, slot: S_contra) -> bool:
        """One step in ``slot`` (always the same one); True when the reply is complete
        (or cancelled)."""
        ...

    def end(self, waited_s: float, error: BaseException | None) -> None:
        """It is over: complete, cancelled (if before it got a slot, ``step`` was never
        called) or failed with ``error``; ``waited_s`` is how long it waited for a slot.
        Its slot is handed on after this."""
        ...


@dataclass(eq=False)
class _Entry(Generic[S]):
    job: Job[S]
    arrived: float = field(default_factory=time.perf_counter)
    waited: float = 0.0
    slot: S | None = None


class Scheduler(Generic[S]):
    """Runs every reply's steps on one thread, in the order the module docstring gives."""

    def __init__(self, slots: list[S]) -> None:
        self._cond = threading.Condition()
        self._free: list[S] = list(slots)
        self._waiting: deque[_Entry[S]] = deque()
        self._active: deque[_Entry[S]] = deque()
        self._thread: threading.Thread | None = None

    @property
    def in_progress(self) -> int:
        """How many replies hold a slot now."""
        with self._cond:
            return len(self._active)

    def submit(self, job: Job[S]) -> None:
        """Queue ``job``; the scheduler calls its ``end`` when it is over. A job cancelled
        while it waits for a slot leaves the line at the next step of any other (while
        all slots are taken, steps are being made)."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="avatarium-llm", daemon=True
                )
                self._thread.start()
            self._waiting.append(_Entry(job))
            self._cond.notify_all()

    def _next(self) -> tuple[_Entry[S], S]:
        """Admit waiting replies while slots are free, then pick whose step is next and
        its slot (blocks while there is nothing to do). Called with the lock held."""
        while True:
            for entry in [e for e in self._waiting if e.job.cancelled.is_set()]:
                self._waiting.remove(entry)  # its listener left before it began
                _end(entry.job, time.perf_counter() - entry.arrived, None)
            while self._waiting and self._free:
                entry = self._waiting.popleft()
                slot = max(self._free, key=entry.job.fit)
                self._free.remove(slot)
                entry.slot = slot
                entry.waited = time.perf_counter() - entry.arrived
                self._active.append(entry)
            # The first to arrive of those not yet speaking, else round-robin.
            chosen = next((e for e in self._active if e.job.starting), None)
            if chosen is None and self._active:
                chosen = self._active.popleft()
                self._active.append(chosen)
            if chosen is not None:
                assert chosen.slot is not None
                return chosen, chosen.slot
            self._cond.wait()

    def _serve(self) -> None:
        while True:
            with self._cond:
                entry, slot = self._next()
            error: BaseException | None = None
            try:
                finished = entry.job.step(slot)
            except BaseException as failure:  # handed to the reply that asked
                error, finished = failure, True
            if finished:
                _end(entry.job, entry.waited, error)
                with self._cond:
                    self._active.remove(entry)
                    self._free.append(slot)


def _end(job: Job[S], waited_s: float, error: BaseException | None) -> None:
    try:
        job.end(waited_s, error)
    except BaseException:  # the engine's thread must go on serving the others
        log.exception("a reply failed to end cleanly")
