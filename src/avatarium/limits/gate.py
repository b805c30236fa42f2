"""The request gate: requests per minute and concurrent requests per account, with the
documented headers, over any ``LimiterBackend``.

Rates use an exact sliding-window log: at most ``limit`` requests start in any
``window``-second span (no boundary bursts, no approximation). Concurrency slots are leases
that expire after ``lease_ttl_s`` unless renewed; a background task renews the leases of
requests still running, so a killed worker's slots come back by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from avatarium.core.errors import RateLimitExceededError
from avatarium.core.ids import new_id
from avatarium.keys.service import Principal
from avatarium.limits.backend import NO_SLOT, WINDOW_FULL, LimiterBackend, WindowResult
from avatarium.limits.base import Admission
from avatarium.limits.memory import MemoryBackend
from avatarium.limits.policy import Limits

log = logging.getLogger(__name__)

LEASE_TTL_S = 30.0


def limit_headers(limit: int, result: WindowResult, window_s: float) -> dict[str, str]:
    """``X-RateLimit-*`` and the IETF draft ``RateLimit-Policy`` / ``RateLimit`` fields."""
    remaining = max(0, limit - result.count)
    reset_in = max(0, math.ceil((result.reset_ms - result.now_ms) / 1000))
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(math.ceil(result.reset_ms / 1000)),
        "RateLimit-Policy": f"{limit};w={int(window_s)}",
        "RateLimit": f"limit={limit}, remaining={remaining}, reset={reset_in}",
    }


@dataclass
class _Admitted:
    gate: LimitGate
    backend: LimiterBackend
    key: str
    lease: str
    headers: dict[str, str] = field(default_factory=dict)

    async def release(self) -> None:
        await self.gate._release(self.backend, self.key, self.lease)


class LimitGate:
    """Admits requests within their account's limits.

    When the shared backend fails (Redis unreachable), the gate degrades instead of failing
    requests or admitting everything: it counts in-process with every limit divided by the
    number of workers (so all workers together stay within it), logs once, reports
    ``rate_limiter: degraded`` in health, and returns to the shared backend as soon as it
    answers again.
    """

    def __init__(
        self,
        backend: LimiterBackend,
        *,
        window_s: float = 60.0,
        lease_ttl_s: float = LEASE_TTL_S,
        workers: int = 1,
    ) -> None:
        self.backend = backend
        self.window_s = window_s
        self.lease_ttl_s = lease_ttl_s
        self.workers = max(1, workers)
        self.degraded = False
        self._fallback: LimiterBackend = MemoryBackend()
        # Leases still running, per backend: those taken on the in-process fallback while
        # Redis was down must be renewed there too, or a long stream loses its slot.
        self._held: dict[LimiterBackend, dict[str, set[str]]] = {}
        self._renewer: asyncio.Task[None] | None = None
        # Told of each decision ("admitted" or the refusal's reason): the metrics count them.
        self.on_decision: Callable[[str], None] = lambda _decision: None

    async def admit(self, principal: Principal) -> Admission:
        try:
            admission = await self._admit(principal, self.backend, principal.limits)
        except RateLimitExceededError as refused:
            self._recovered()
            self.on_decision(str((refused.details or {}).get("reason", "refused")))
            raise
        except Exception:
            if not self.degraded:
                log.warning(
                    "rate limiter backend unreachable; limiting per worker (1/%d)", self.workers
                )
            self.degraded = True
            share = principal.limits
            share = Limits(
                max(1, share.requests_per_minute // self.workers),
                max(1, share.concurrent_requests // self.workers),
                share.monthly_messages,
            )
            try:
                admission = await self._admit(principal, self._fallback, share)
            except RateLimitExceededError as refused:
                self.on_decision(str((refused.details or {}).get("reason", "refused")))
                raise
            self.on_decision("admitted")
            return admission
        self._recovered()
        self.on_decision("admitted")
        return admission

    def _recovered(self) -> None:
        if self.degraded:
            log.warning("rate limiter backend answers again")
            self.degraded = False

    async def _admit(
        self, principal: Principal, backend: LimiterBackend, limits: Limits
    ) -> Admission:
        account = principal.account_id
        slots = f"concurrent:{account}"
        lease = new_id("lease")
        status, window = await backend.admit(
            slots,
            f"rpm:{account}",
            limits.concurrent_requests,
            lease,
            self.lease_ttl_s,
            self.window_s,
            limits.requests_per_minute,
        )
        if status == NO_SLOT:
            raise RateLimitExceededError(
                f"Too many requests at once: this account may run "
                f"{limits.concurrent_requests} at a time.",
                details={"reason": "concurrent_requests", "limit": limits.concurrent_requests},
                headers={"Retry-After": "1"},
            )
        headers = limit_headers(limits.requests_per_minute, window, self.window_s)
        if status == WINDOW_FULL:
            retry = max(1, math.ceil((window.reset_ms - window.now_ms) / 1000))
            raise RateLimitExceededError(
                f"Rate limit reached: {limits.requests_per_minute} requests per minute.",
                details={"reason": "requests_per_minute", "limit": limits.requests_per_minute},
                headers={**headers, "Retry-After": str(retry)},
            )
        self._held.setdefault(backend, {}).setdefault(slots, set()).add(lease)
        self._ensure_renewer()
        return _Admitted(self, backend, slots, lease, headers)

    async def _release(self, backend: LimiterBackend, key: str, lease: str) -> None:
        by_key = self._held.get(backend, {})
        held = by_key.get(key)
        if held is not None:
            held.discard(lease)
            if not held:
                del by_key[key]
            if not by_key:
                self._held.pop(backend, None)
        with contextlib.suppress(Exception):  # an unreleased lease expires by itself
            await backend.release(key, lease)

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        while self._held:
            await asyncio.sleep(self.lease_ttl_s / 3)
            for backend, by_key in list(self._held.items()):
                for key, leases in list(by_key.items()):
                    with contextlib.suppress(Exception):  # a missed renewal shortens a lease
                        await backend.renew(key, list(leases), self.lease_ttl_s)

    async def status(self) -> str:
        """``ok``, ``degraded`` (counting per worker) or ``unavailable``."""
        if await self.backend.ping():
            return "ok"
        return "degraded" if self.degraded else "unavailable"

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        close = getattr(self.backend, "aclose", None)
        if close is not None:
            await close()
