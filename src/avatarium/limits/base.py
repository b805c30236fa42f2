"""Where rate limits, concurrency limits and quotas plug into every request.

The request pipeline asks the gate to ``admit`` each authenticated request (after
authentication and permission, before parameters, as the documented check order says) and
releases the admission when the response is done. The monthly quota is kept by
:mod:`avatarium.usage.ledger`.
"""

from __future__ import annotations

from typing import Protocol

from avatarium.keys.service import Principal


class Admission(Protocol):
    """An admitted request: the limit headers to send, and the slot to free."""

    headers: dict[str, str]

    async def release(self) -> None:
        """Free whatever the request held (its concurrency slot)."""
        ...


class RequestGate(Protocol):
    """Rate limits and concurrency for authenticated requests."""

    async def admit(self, principal: Principal) -> Admission:
        """Admit the request or raise ``RateLimitExceededError``."""
        ...

    async def status(self) -> str:
        """``ok``, ``degraded`` or ``unavailable``, for ``/health``."""
        ...

    async def aclose(self) -> None:
        """Release connections (at shutdown)."""
        ...
