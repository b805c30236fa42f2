"""Per-request durations for the ``Server-Timing`` header (``app``, ``db``, ``ai``, ``tts``).

A mutable holder lives in a context variable: child tasks and SQLAlchemy's greenlets see the
same object, so adding to it from anywhere in the request counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Timings:
    """Accumulated milliseconds per phase for one request."""

    started: float = field(default_factory=time.perf_counter)
    phases: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, ms: float) -> None:
        self.phases[name] = self.phases.get(name, 0.0) + ms

    def header(self) -> str:
        """``Server-Timing`` value; ``app`` is wall time since the request began."""
        app_ms = (time.perf_counter() - self.started) * 1000.0
        parts = [f"app;dur={app_ms:.2f}"]
        for name in ("db", "ai", "tts"):
            parts.append(f"{name};dur={self.phases.get(name, 0.0):.2f}")
        if "queue" in self.phases:  # waited for the embedded model (all its slots busy)
            parts.append(f"queue;dur={self.phases['queue']:.2f}")
        return ", ".join(parts)


current_timings: ContextVar[Timings | None] = ContextVar("avatarium_timings", default=None)


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Add the duration of the block to the current request's ``name`` phase."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings = current_timings.get()
        if timings is not None:
            timings.add(name, (time.perf_counter() - start) * 1000.0)
