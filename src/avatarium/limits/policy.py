"""Per-account limits: the tier's numbers, overridden per account by the operator."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """What one account may do. ``monthly_messages`` of ``None`` means unlimited."""

    requests_per_minute: int
    concurrent_requests: int
    monthly_messages: int | None


TIER_LIMITS = {
    "free": Limits(10, 2, 100),
    "creator": Limits(60, 10, 10_000),
    "pro": Limits(300, 50, 100_000),
    "enterprise": Limits(1_000, 200, None),
}


def effective_limits(
    tier: str, rpm: int | None, concurrent: int | None, monthly: int | None
) -> Limits:
    """The tier's limits with the account's overrides applied."""
    base = TIER_LIMITS.get(tier, TIER_LIMITS["free"])
    return Limits(
        requests_per_minute=base.requests_per_minute if rpm is None else rpm,
        concurrent_requests=base.concurrent_requests if concurrent is None else concurrent,
        monthly_messages=base.monthly_messages if monthly is None else monthly,
    )
