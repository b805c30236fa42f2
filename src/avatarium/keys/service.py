"""Creating, listing, revoking and checking API keys."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from avatarium.accounts.models import Account
from avatarium.core.clock import Clock
from avatarium.core.errors import ExpiredApiKeyError, InvalidApiKeyError
from avatarium.core.ids import new_id, random_base62
from avatarium.core.secrets import Signer
from avatarium.keys.models import ApiKey
from avatarium.limits.policy import TIER_LIMITS, Limits, effective_limits
from avatarium.storage.db import Database

KEY_PATTERN = re.compile(r"^av_(live|test)_[0-9A-Za-z]{32}$")
PREFIX_LENGTH = 12  # "av_test_" plus four characters: enough to recognise, useless to guess
MODES = ("live", "test")
SCOPES = ("full", "read")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key, its account and the data partition (mode) it sees."""

    key_id: str
    account_id: str
    account_name: str
    tier: str
    mode: str
    scope: str
    limits: Limits = TIER_LIMITS["free"]
    # Set for a client token: the one conversation it may read, send to and stream.
    conversation_id: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created; ``secret`` is shown once and never stored."""

    record: ApiKey
    secret: str
    account: Account


# Built once: constructing a statement costs more than running it on the hot path.
# Columns rather than entities: authentication runs on every request.
_PRINCIPAL = select(
    ApiKey.id,
    ApiKey.key_hash,
    ApiKey.mode,
    ApiKey.scope,
    ApiKey.expires_at,
    ApiKey.revoked_at,
    Account.id.label("account_id"),
    Account.name,
    Account.tier,
    Account.rpm_limit,
    Account.concurrent_limit,
    Account.monthly_messages_limit,
).join(Account, Account.id == ApiKey.account_id)
_BY_HASH = _PRINCIPAL.where(ApiKey.key_hash == bindparam("digest"))
_BY_ID = _PRINCIPAL.where(ApiKey.id == bindparam("key_id"))


def generate_key(mode: str) -> str:
    """A new ``av_<mode>_`` key with 32 random base62 characters."""
    return f"av_{mode}_{random_base62(32)}"


class KeyService:
    """API keys over the database; only keyed hashes are stored."""

    def __init__(self, db: Database, signer: Signer, clock: Clock) -> None:
        self._db = db
        self._signer = signer
        self._clock = clock

    async def create(
        self,
        account: Account,
        *,
        mode: str = "test",
        scope: str = "full",
        name: str | None = None,
        expires_in: timedelta | None = None,
    ) -> IssuedKey:
        if mode not in MODES or scope not in SCOPES:
            raise ValueError("mode must be live|test and scope full|read")
        secret = generate_key(mode)
        now = self._clock.now()
        record = ApiKey(
            id=new_id("key"),
            account_id=account.id,
            mode=mode,
            scope=scope,
            name=name,
            prefix=secret[:PREFIX_LENGTH],
            key_hash=self._signer.hash_api_key(secret),
            created_at=now,
            expires_at=now + expires_in if expires_in else None,
        )
        await self._db.write(lambda session: session.add(record))
        return IssuedKey(record=record, secret=secret, account=account)

    async def list(self, account_name: str | None = None) -> list[tuple[ApiKey, Account]]:
        query = select(ApiKey, Account).join(Account, Account.id == ApiKey.account_id)
        if account_name is not None:
            query = query.where(Account.name == account_name)

        def work(session: Session) -> list[tuple[ApiKey, Account]]:
            rows = session.execute(query.order_by(ApiKey.created_at)).all()
            return [(row[0], row[1]) for row in rows]

        return await self._db.read(work)

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key; takes effect on the next request (keys are never cached)."""
        now = self._clock.now()

        def work(session: Session) -> bool:
            record = session.get(ApiKey, key_id)
            if record is None:
                return False
            if record.revoked_at is None:
                record.revoked_at = now
            return True

        return await self._db.write(work)

    async def count(self) -> int:
        return await self._db.read(
            lambda session: len(session.execute(select(ApiKey.id).limit(1)).all())
        )

    async def authenticate(self, raw_key: str) -> Principal:
        """The principal behind ``raw_key``, or the documented 401."""
        if not KEY_PATTERN.match(raw_key):
            raise InvalidApiKeyError("The API key is malformed.")
        digest = self._signer.hash_api_key(raw_key)
        row = await self._db.read_core(
            lambda connection: connection.execute(_BY_HASH, {"digest": digest}).first()
        )
        if row is None:
            raise InvalidApiKeyError("The API key is unknown or revoked.")
        # The lookup was by hash; compare again in constant time as defence in depth.
        if not hmac.compare_digest(row.key_hash, digest):
            raise InvalidApiKeyError("The API key is unknown or revoked.")
        return self._principal(row)

    async def by_id(self, key_id: str) -> Principal:
        """The principal of a key by its id (for credentials derived from a key, such as
        client tokens); the same 401s as the key itself would get."""
        row = await self._db.read_core(
            lambda connection: connection.execute(_BY_ID, {"key_id": key_id}).first()
        )
        if row is None:
            raise InvalidApiKeyError("The API key is unknown or revoked.")
        return self._principal(row)

    def _principal(self, row: Any) -> Principal:
        if row.revoked_at is not None:
            raise InvalidApiKeyError("The API key is unknown or revoked.")
        if row.expires_at is not None and row.expires_at <= self._clock.now():
            raise ExpiredApiKeyError("The API key has expired.")
        return Principal(
            key_id=row.id,
            account_id=row.account_id,
            account_name=row.name,
            tier=row.tier,
            mode=row.mode,
            scope=row.scope,
            # Read with the key on every request: tier and limit changes apply at once.
            limits=effective_limits(
                row.tier, row.rpm_limit, row.concurrent_limit, row.monthly_messages_limit
            ),
        )
