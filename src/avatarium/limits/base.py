"""Where rate limits, concurrency limits and quotas plug into every request.

The request pipeline asks the gate to ``admit`` each authenticated request (after
authentication and permission, before parameters, as the documented check order says) and
releases the admission when the response is done. Metered endpoints ``reserve`` one reply
before the model runs, then ``commit`` it on success or ``release`` it on failure.
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


class Reservation(Protocol):
    """One reply's worth of monthly quota, held while the reply is produced."""

    async def commit(self) -> None:
        """The reply was stored: count it."""
        ...

    async def release(self) -> None:
        """The reply failed or was cancelled: give it back."""
        ...


class RequestGate(Protocol):
    """Rate limits, concurrency and quota for authenticated requests."""

    async def admit(self, principal: Principal) -> Admission:
        """Admit the request or raise ``RateLimitExceededError``."""
        ...

    async def reserve(self, principal: Principal) -> Reservation:
        """Reserve one reply or raise ``QuotaExceededError``."""
        ...


class _Nothing:
    headers: dict[str, str] = {}

    async def release(self) -> None:
        return None

    async def commit(self) -> None:
        return None


class UnlimitedGate:
    """Admits everything: for embedding the app where limits are enforced elsewhere."""

    async def admit(self, principal: Principal) -> Admission:
        return _Nothing()

    async def reserve(self, principal: Principal) -> Reservation:
        return _Nothing()
