"""The monthly quota and usage counters, kept exact in the database.

A reply reserves one message before the model runs (refused when used + reserved would pass
the limit), and the reservation is turned into a used message inside the same transaction
that stores the reply, or dropped when the reply fails. Reservations expire, so a worker that
dies mid-reply does not keep quota forever. Provider usage of failed replies is still counted
in ``ai_tokens`` / ``tts_characters``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from avatarium.core.clock import Clock, rfc3339
from avatarium.core.errors import QuotaExceededError
from avatarium.core.ids import new_id
from avatarium.keys.service import Principal
from avatarium.storage.base import UTCDateTime, table_of
from avatarium.storage.db import Database
from avatarium.usage.models import QuotaReservation, UsagePeriod

RESERVATION_TTL = timedelta(minutes=10)


def _build_upsert(insert: Any) -> Any:
    statement = insert(UsagePeriod).values(
        account_id=bindparam("account_id"),
        period=bindparam("period"),
        messages_used=bindparam("messages_used"),
        ai_tokens=bindparam("ai_tokens"),
        tts_characters=bindparam("tts_characters"),
        ai_tokens_estimated=bindparam("ai_tokens_estimated"),
        stt_ms=bindparam("stt_ms"),
    )
    added = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["account_id", "period"],
        set_={
            "messages_used": UsagePeriod.messages_used + added.messages_used,
            "ai_tokens": UsagePeriod.ai_tokens + added.ai_tokens,
            "tts_characters": UsagePeriod.tts_characters + added.tts_characters,
            "ai_tokens_estimated": UsagePeriod.ai_tokens_estimated + added.ai_tokens_estimated,
            "stt_ms": UsagePeriod.stt_ms + added.stt_ms,
        },
    )


def _build_ensure_row(insert: Any) -> Any:
    return (
        insert(UsagePeriod)
        .values(
            account_id=bindparam("account_id"),
            period=bindparam("period"),
            messages_used=0,
            ai_tokens=0,
            tts_characters=0,
        )
        .on_conflict_do_nothing()
    )


# Built once (per dialect): constructing a statement costs more than running it.
_UPSERT = {"sqlite": _build_upsert(sqlite.insert), "postgresql": _build_upsert(postgresql.insert)}
_ENSURE_ROW = {
    "sqlite": _build_ensure_row(sqlite.insert),
    "postgresql": _build_ensure_row(postgresql.insert),
}
_OWN_PERIOD = (
    UsagePeriod.account_id == bindparam("account_id"),
    UsagePeriod.period == bindparam("period"),
)
_USED_FOR_UPDATE = select(UsagePeriod.messages_used).where(*_OWN_PERIOD).with_for_update()
_HELD = (
    select(func.count())
    .select_from(QuotaReservation)
    .where(
        QuotaReservation.account_id == bindparam("account_id"),
        QuotaReservation.period == bindparam("period"),
        QuotaReservation.expires_at > bindparam("now", type_=UTCDateTime()),
    )
)
_RESERVE = insert(table_of(QuotaReservation)).values(
    id=bindparam("id"),
    account_id=bindparam("account_id"),
    period=bindparam("period"),
    expires_at=bindparam("expires_at", type_=UTCDateTime()),
)
_DELETE_RESERVATION = delete(QuotaReservation).where(QuotaReservation.id == bindparam("id"))


def stt_seconds(stt_ms: int) -> float:
    """Transcribed audio as the API reports it: seconds, to 0.1."""
    return round(stt_ms / 1000, 1)


def period_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def period_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """Start and end (exclusive) of the calendar month (UTC) holding ``moment``."""
    start = moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


@dataclass
class Reservation:
    """One reply's place in the quota (``id`` is None for unlimited accounts)."""

    ledger: UsageLedger
    account_id: str
    period: str
    id: str | None

    def commit_in(self, connection: Connection, ai_tokens: int, tts_characters: int) -> None:
        """Count the stored reply, inside the transaction that stores it."""
        self.ledger.add_in(connection, self.account_id, self.period, 1, ai_tokens, tts_characters)
        if self.id is not None:
            connection.execute(_DELETE_RESERVATION, {"id": self.id})

    async def release(
        self,
        ai_tokens: int = 0,
        tts_characters: int = 0,
        *,
        estimated: bool = False,
        also: Callable[[Connection], None] | None = None,
    ) -> None:
        """The reply failed: free the place, but count what the providers were paid for
        (``estimated``: the model's tokens were estimated from its text); ``also`` runs in
        the same transaction (the failure's event)."""

        def work(connection: Connection) -> None:
            if also is not None:
                also(connection)
            if ai_tokens or tts_characters:
                self.ledger.add_in(
                    connection,
                    self.account_id,
                    self.period,
                    0,
                    ai_tokens,
                    tts_characters,
                    ai_tokens_estimated=ai_tokens if estimated else 0,
                )
            if self.id is not None:
                connection.execute(_DELETE_RESERVATION, {"id": self.id})

        await self.ledger.db.write_core(work)


class UsageLedger:
    """Quota reservations and usage counters over the database."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    @staticmethod
    def _ensure_row(connection: Connection, account_id: str, period: str) -> None:
        connection.execute(
            _ENSURE_ROW[connection.dialect.name], {"account_id": account_id, "period": period}
        )

    @staticmethod
    def add_in(
        connection: Connection,
        account_id: str,
        period: str,
        messages: int,
        ai_tokens: int,
        tts_characters: int,
        *,
        ai_tokens_estimated: int = 0,
        stt_ms: int = 0,
    ) -> None:
        """Add to the period's counters: one prebuilt upsert (it runs in every send)."""
        connection.execute(
            _UPSERT[connection.dialect.name],
            {
                "account_id": account_id,
                "period": period,
                "messages_used": messages,
                "ai_tokens": ai_tokens,
                "tts_characters": tts_characters,
                "ai_tokens_estimated": ai_tokens_estimated,
                "stt_ms": stt_ms,
            },
        )

    async def add_transcribed(self, principal: Principal, stt_ms: int) -> None:
        """Count audio a speech-to-text provider transcribed (whatever happens next: the
        provider did the work)."""
        period = period_of(self.clock.now())

        def work(connection: Connection) -> None:
            self.add_in(connection, principal.account_id, period, 0, 0, 0, stt_ms=stt_ms)

        await self.db.write_core(work)

    async def reserve(self, principal: Principal) -> Reservation:
        """A place for one reply, or ``quota_exceeded``."""
        now = self.clock.now()
        period = period_of(now)
        limit = principal.limits.monthly_messages
        if limit is None:
            return Reservation(self, principal.account_id, period, None)
        reservation_id = new_id("qres")

        keys = {"account_id": principal.account_id, "period": period}

        def work(connection: Connection) -> int | None:
            # Writing first takes the lock (SQLite) / the row lock (PostgreSQL) that makes
            # this check-and-reserve atomic against every other worker.
            self._ensure_row(connection, principal.account_id, period)
            used = connection.execute(_USED_FOR_UPDATE, keys).scalar_one()
            held = connection.execute(_HELD, {**keys, "now": now}).scalar_one()
            if used + held >= limit:
                return int(used)
            connection.execute(
                _RESERVE, {**keys, "id": reservation_id, "expires_at": now + RESERVATION_TTL}
            )
            return None

        refused_at = await self.db.write_core(work)
        if refused_at is not None:
            _, end = period_bounds(now)
            raise QuotaExceededError(
                f"The monthly quota of {limit} messages is used up; it resets at {rfc3339(end)}.",
                details={"limit": limit, "used": refused_at, "resets_at": rfc3339(end)},
                headers={"Retry-After": str(max(1, math.ceil((end - now).total_seconds())))},
            )
        return Reservation(self, principal.account_id, period, reservation_id)

    async def usage(self, principal: Principal) -> dict[str, Any]:
        """The body of ``GET /v1/usage``."""
        now = self.clock.now()
        start, end = period_bounds(now)
        period = period_of(now)
        row = await self.db.read(
            lambda session: session.get(UsagePeriod, (principal.account_id, period))
        )
        used = row.messages_used if row else 0
        limit = principal.limits.monthly_messages
        return {
            "object": "usage",
            "period": {"start": rfc3339(start), "end": rfc3339(end)},
            "tier": principal.tier,
            "messages": {
                "used": used,
                "limit": limit,
                "remaining": None if limit is None else max(0, limit - used),
            },
            "ai_tokens": row.ai_tokens if row else 0,
            "ai_tokens_estimated": row.ai_tokens_estimated if row else 0,
            "tts_characters": row.tts_characters if row else 0,
            "stt_seconds": stt_seconds(row.stt_ms if row else 0),
            "limits": {
                "requests_per_minute": principal.limits.requests_per_minute,
                "concurrent_requests": principal.limits.concurrent_requests,
            },
        }
