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

import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Generic, Protocol, TypeVar

# How often the scheduler looks whether a reply waiting for a slot was cancelled.
_POLL_S = 0.05


class Job(Protocol):
    """One reply, as the scheduler drives it (on the scheduler's thread)."""

    cancelled: threading.Event

    @property
    def starting(self) -> bool:
        """Whether it has not yet written its first words (it then goes first)."""
        ...

    def fit(self, slot: object) -> int:
        """How well ``slot`` suits it: the prompt tokens its cache already holds."""
        ...

    def begin(self, slot: object) -> None:
        """It got ``slot``."""
        ...

    def step(self) -> bool:
        """One step; True when the reply is complete (or cancelled)."""
        ...

    def end(self) -> None:
        """Finish up (close what it opened); its slot is handed on after this."""
        ...


S = TypeVar("S")


class _Entry:
    __slots__ = ("arrived", "begun", "future", "job", "slot", "waited")

    def __init__(self, job: Job) -> None:
        self.job = job
        self.arrived = time.perf_counter()
        self.waited = 0.0
        self.slot: object | None = None
        self.begun = False
        self.future: Future[float] = Future()


class Scheduler(Generic[S]):
    """Runs every reply's steps on one thread, in the order the module docstring gives."""

    def __init__(self, slots: list[S]) -> None:
        self._cond = threading.Condition()
        self._free: list[S] = list(slots)
        self._waiting: deque[_Entry] = deque()
        self._active: deque[_Entry] = deque()
        self._thread: threading.Thread | None = None

    @property
    def in_progress(self) -> int:
        """How many replies hold a slot now."""
        with self._cond:
            return len(self._active)

    def submit(self, job: Job) -> Future[float]:
        """Queue ``job``; the future gives the seconds it waited for a slot once it has
        ended (or its error). A job cancelled while it waits leaves the line at the next
        step of any other."""
        entry = _Entry(job)
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="avatarium-llm", daemon=True
                )
                self._thread.start()
            self._waiting.append(entry)
            self._cond.notify_all()
        return entry.future

    def _next(self) -> _Entry:
        """Admit waiting replies while slots are free, then pick whose step is next
        (blocks while there is nothing to do). Called with the lock held."""
        while True:
            for entry in [e for e in self._waiting if e.job.cancelled.is_set()]:
                self._waiting.remove(entry)  # its listener left before it began
                entry.future.set_result(time.perf_counter() - entry.arrived)
            while self._waiting and self._free:
                entry = self._waiting.popleft()
                slot = max(self._free, key=entry.job.fit)
                self._free.remove(slot)
                entry.slot = slot
                entry.waited = time.perf_counter() - entry.arrived
                self._active.append(entry)
            for entry in self._active:
                if entry.job.starting:
                    return entry  # the first to arrive of those not yet speaking
            if self._active:
                entry = self._active.popleft()
                self._active.append(entry)  # round-robin among the speaking
                return entry
            self._cond.wait(_POLL_S if self._waiting else None)

    def _serve(self) -> None:
        while True:
            with self._cond:
                entry = self._next()
            job = entry.job
            error: BaseException | None = None
            try:
                if not entry.begun:
                    entry.begun = True
                    job.begin(entry.slot)
                finished = job.step()
            except BaseException as failure:  # handed to the reply that asked
                error, finished = failure, True
            if not finished:
                continue
            try:
                job.end()
            except BaseException as failure:
                error = error or failure
            with self._cond:
                self._active.remove(entry)
                self._free.append(entry.slot)  # type: ignore[arg-type]
            if error is None:
                entry.future.set_result(entry.waited)
            else:
                entry.future.set_exception(error)
