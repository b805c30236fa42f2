"""Fallback chains with a cooldown: when a provider fails, the next one answers, and a
provider that just failed is tried last on the following requests for a while."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from avatarium.providers.errors import ProviderError

log = logging.getLogger(__name__)


def parse_chain(value: str) -> list[str]:
    """``"openai, groq,local"`` -> ``["openai", "groq", "local"]``."""
    return [name.strip() for name in value.split(",") if name.strip()]


class ProviderHealth:
    """Which providers failed recently (per process)."""

    def __init__(self, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._cooldown = cooldown_s
        self._clock = clock
        self._until: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        # Told of every failure (kind, provider, reason): the metrics count them.
        self.on_failure: Callable[[str, str, str], None] = lambda _k, _n, _r: None

    def failed(self, kind: str, name: str, error: ProviderError) -> None:
        """Record a failure (after the provider's own retries): the one log line it gets,
        with the request id the log configuration adds, and the metrics."""
        reason = error.category.value
        log.warning(
            "provider failed: kind=%s provider=%s reason=%s attempts=%d: %s",
            kind, name, reason, error.attempts, error.message,
        )  # fmt: skip
        self.on_failure(kind, name, reason)
        with self._lock:
            self._until[(kind, name)] = self._clock() + self._cooldown

    def succeeded(self, kind: str, name: str) -> None:
        with self._lock:
            self._until.pop((kind, name), None)

    def cooling(self, kind: str, name: str) -> bool:
        with self._lock:
            return self._until.get((kind, name), float("-inf")) > self._clock()

    def order(self, kind: str, names: list[str]) -> list[str]:
        """``names`` with cooling-down providers moved to the end (kept as a last resort)."""
        healthy = [n for n in names if not self.cooling(kind, n)]
        return healthy + [n for n in names if n not in healthy]


def chain(primary: str, fallback: list[str]) -> list[str]:
    """The primary provider, then the fallback chain without repeating it."""
    return [primary, *(name for name in fallback if name != primary)]
