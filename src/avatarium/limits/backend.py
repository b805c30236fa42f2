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


class LimiterBackend(Protocol):
    """Atomic check-and-update operations over shared or in-process state."""

    async def hit(self, key: str, limit: int, window_s: float, member: str) -> WindowResult:
        """Record one request in ``key``'s window if fewer than ``limit`` are in it."""
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
