"""In-process limiter state: exact for one process (the server refuses several workers
without a shared backend, so a limit is never multiplied)."""

from __future__ import annotations

import time
from collections import deque

from avatarium.limits.backend import ADMITTED, NO_SLOT, WINDOW_FULL, WindowResult


class MemoryBackend:
    """Sliding-window logs and leases in dictionaries. Every operation runs without an
    ``await`` in between its read and its write, so on one event loop it is atomic."""

    def __init__(self) -> None:
        self._windows: dict[str, deque[float]] = {}
        self._leases: dict[str, dict[str, float]] = {}

    @staticmethod
    def _now_ms() -> float:
        return time.time() * 1000

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
        if not await self.acquire(slots_key, concurrent, lease, ttl_s):
            return NO_SLOT, WindowResult(False, 0, 0.0, self._now_ms())
        window = self._hit(window_key, limit, window_s)
        if not window.admitted:
            await self.release(slots_key, lease)
            return WINDOW_FULL, window
        return ADMITTED, window

    def _hit(self, key: str, limit: int, window_s: float) -> WindowResult:
        now = self._now_ms()
        window = self._windows.setdefault(key, deque())
        while window and window[0] <= now - window_s * 1000:
            window.popleft()
        admitted = len(window) < limit
        if admitted:
            window.append(now)
        reset = (window[0] if window else now) + window_s * 1000
        return WindowResult(admitted, len(window), reset, now)

    async def acquire(self, key: str, limit: int, lease: str, ttl_s: float) -> bool:
        now = self._now_ms()
        leases = self._leases.setdefault(key, {})
        for held, expiry in list(leases.items()):
            if expiry <= now:
                del leases[held]
        if len(leases) >= limit:
            return False
        leases[lease] = now + ttl_s * 1000
        return True

    async def renew(self, key: str, leases: list[str], ttl_s: float) -> None:
        held = self._leases.get(key, {})
        expiry = self._now_ms() + ttl_s * 1000
        for lease in leases:
            if lease in held:
                held[lease] = expiry

    async def release(self, key: str, lease: str) -> None:
        self._leases.get(key, {}).pop(lease, None)

    async def ping(self) -> bool:
        return True
