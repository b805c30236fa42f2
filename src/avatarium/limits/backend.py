"""Limiter backends: where counts live. Both answer the same two questions atomically:
"may this request start within the per-minute window?" and "is a concurrency slot free?"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One sliding-window check."""

    admitted: bool
    count: int  # requests admitted in the window, this one included if admitted
    reset_ms: float  # when the oldest request leaves the window (Unix ms)
    now_ms: float


ADMITTED, NO_SLOT, WINDOW_FULL = 1, 0, 2


class LimiterBackend(Protocol):
    """Atomic check-and-update operations over shared or in-process state."""

    async def admit(
        self,
        slots_key: str,
        window_key: str,
        concurrent: int,
        lease: str,
        ttl_s: float,
        window_s: float,
        limit: int,
    ) -> tuple[int, WindowResult]:
        """Take a slot and count the request, atomically: ``(ADMITTED | NO_SLOT |
        WINDOW_FULL, window)``. Nothing is held unless ADMITTED."""
        ...

    async def acquire(self, key: str, limit: int, lease: str, ttl_s: float) -> bool:
        """Take one of ``limit`` slots for ``ttl_s`` seconds (renewable)."""
        ...

    async def renew(self, key: str, leases: list[str], ttl_s: float) -> None:
        """Extend leases that are still held."""
        ...

    async def release(self, key: str, lease: str) -> None:
        """Give a slot back at once."""
        ...

    async def ping(self) -> bool:
        """Whether the backend answers."""
        ...
