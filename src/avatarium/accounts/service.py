"""Accounts and their tiers."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

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

    async def ensure(self, name: str, tier: str | None = None) -> Account:
        """The account called ``name``, created on first use (with ``tier`` or free)."""
        if tier is not None and tier not in TIERS:
            raise ValueError(f"tier must be one of {', '.join(TIERS)}")
        now = self._clock.now()

        def work(session: Session) -> Account:
            account = _named(session, name)
            if account is None:
                account = Account(id=new_id("acct"), name=name, tier=tier or "free", created_at=now)
                session.add(account)
            elif tier is not None:
                account.tier = tier
            return account

        return await self._db.write(work)

    async def set_tier(self, name: str, tier: str) -> Account | None:
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {', '.join(TIERS)}")

        def work(session: Session) -> Account | None:
            account = _named(session, name)
            if account is not None:
                account.tier = tier
            return account

        return await self._db.write(work)

    async def set_limits(
        self,
        name: str,
        *,
        rpm: int | None = None,
        concurrent: int | None = None,
        monthly_messages: int | None = None,
    ) -> Account | None:
        def work(session: Session) -> Account | None:
            account = _named(session, name)
            if account is None:
                return None
            if rpm is not None:
                account.rpm_limit = rpm
            if concurrent is not None:
                account.concurrent_limit = concurrent
            if monthly_messages is not None:
                account.monthly_messages_limit = monthly_messages
            return account

        return await self._db.write(work)


def _named(session: Session, name: str) -> Account | None:
    account: Account | None = session.execute(
        select(Account).where(Account.name == name)
    ).scalar_one_or_none()
    return account
