"""When to try a request again, and how long to wait first.

Retried: connection errors and timeouts, 5xx (unless a provider error says it is not
retryable), ``rate_limit_exceeded`` and ``request_in_progress``. Never retried: any other
4xx, and ``quota_exceeded`` (waiting seconds will not help; the quota resets monthly).
The wait is exponential backoff with jitter, or the server's ``Retry-After`` when it gave
one; no wait may run past the total deadline.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from avatarium_client.errors import (
    APIConnectionError,
    AvatariumError,
    ConflictError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` counts the first try. Backoff before retry *n* (1-based) is drawn
    from ``[b/2, b]`` with ``b = min(backoff_max_s, backoff_base_s * 2**(n-1))``."""

    max_attempts: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    deadline_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def backoff_bounds(self, retry: int) -> tuple[float, float]:
        """The (shortest, longest) wait before retry number ``retry``."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (retry - 1))
        return ceiling / 2, ceiling

    def delay(self, error: AvatariumError, attempt: int, elapsed_s: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up with ``error``."""
        if attempt >= self.max_attempts or not retryable(error):
            return None
        low, high = self.backoff_bounds(attempt)
        wait = self.rng.uniform(low, high)
        server_says = getattr(error, "retry_after", None)
        if server_says is not None:
            wait = max(wait, float(server_says))  # the server knows when it will have room
        if elapsed_s + wait > self.deadline_s:
            return None
        return wait


def retryable(error: AvatariumError) -> bool:
    """Whether trying the same request again can succeed."""
    if isinstance(error, QuotaExceededError):
        return False
    if isinstance(error, ProviderUnavailableError):
        return error.retryable
    return isinstance(error, APIConnectionError | RateLimitError | ConflictError | ServerError)


class Attempts:
    """The attempts of one call under a policy: ``wait_after(error)`` says how long to wait
    before the next one, or raises ``error`` when the call should give up."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._started = time.monotonic()
        self.failed = 0

    def wait_after(self, error: AvatariumError) -> float:
        self.failed += 1
        delay = self._policy.delay(error, self.failed, time.monotonic() - self._started)
        if delay is None:
            raise error
        return delay
