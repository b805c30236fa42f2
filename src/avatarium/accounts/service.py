"""Accounts and their tiers."""

from __future__ import annotations

from sqlalchemy import select

from avatarium.accounts.models import Account
from avatarium.core.clock import Clock
from avatarium.core.ids import new_id
from avatarium.storage.db import Database

TIERS = ("free", "creator", "pro", "enterprise")


class AccountService:
    """Find, create and change accounts."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def get_by_name(self, name: str) -> Account | None:
        async with self._db.read() as session:
            result = await session.execute(select(Account).where(Account.name == name))
            return result.scalar_one_or_none()

    async def ensure(self, name: str, tier: str | None = None) -> Account:
        """The account called ``name``, created on first use (with ``tier`` or free)."""
        if tier is not None and tier not in TIERS:
            raise ValueError(f"tier must be one of {', '.join(TIERS)}")
        async with self._db.write() as session:
            result = await session.execute(select(Account).where(Account.name == name))
            account = result.scalar_one_or_none()
            if account is None:
                account = Account(
                    id=new_id("acct"), name=name, tier=tier or "free", created_at=self._clock.now()
                )
                session.add(account)
            elif tier is not None:
                account.tier = tier
            return account

    async def set_tier(self, name: str, tier: str) -> Account | None:
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {', '.join(TIERS)}")
        async with self._db.write() as session:
            result = await session.execute(select(Account).where(Account.name == name))
            account = result.scalar_one_or_none()
            if account is not None:
                account.tier = tier
            return account

    async def set_limits(
        self,
        name: str,
        *,
        rpm: int | None = None,
        concurrent: int | None = None,
        monthly_messages: int | None = None,
    ) -> Account | None:
        async with self._db.write() as session:
            result = await session.execute(select(Account).where(Account.name == name))
            account = result.scalar_one_or_none()
            if account is None:
                return None
            if rpm is not None:
                account.rpm_limit = rpm
            if concurrent is not None:
                account.concurrent_limit = concurrent
            if monthly_messages is not None:
                account.monthly_messages_limit = monthly_messages
            return account
