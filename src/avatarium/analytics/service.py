"""The analytics overview (SPEC section 11), read from the daily roll-ups and one indexed
aggregate over the period's conversations; and the transcript export, read in keyset pages
so memory stays flat however many messages it holds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC as _UTC
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.engine import Connection

from avatarium.analytics.models import ActivityDay, LatencyDay
from avatarium.analytics.rollup import bucket_value
from avatarium.avatars.service import AvatarService
from avatarium.conversations.models import Conversation, Message
from avatarium.core.clock import Clock, rfc3339
from avatarium.keys.service import Principal
from avatarium.storage.db import Database
from avatarium.usage.ledger import stt_seconds

EXPORT_BATCH = 1_000  # messages per database read of an export
CONVERSATION_PAGE = 500  # conversations per page of an export
TOP_AVATARS = 10


@dataclass(frozen=True, slots=True)
class DayRange:
    """Whole UTC days: ``start`` included, ``end`` excluded."""

    start: date
    end: date

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days)]


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One message of a transcript export, with exactly the documented fields."""

    conversation_id: str
    avatar_id: str
    message_id: str
    role: str
    content: str
    created_at: datetime
    ai_tokens: int
    tts_characters: int
    stt_seconds: float
    escalated: bool


def _percentile(buckets: list[tuple[int, int]], share: float) -> float | None:
    total = sum(count for _bucket, count in buckets)
    if total == 0:
        return None
    rank = share * total
    seen = 0
    for bucket, count in buckets:
        seen += count
        if seen >= rank:
            return round(bucket_value(bucket), 1)
    return round(bucket_value(buckets[-1][0]), 1)


def _seconds_between(connection: Connection, later: Any, earlier: Any) -> Any:
    if connection.dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86_400.0
    return func.extract("epoch", later - earlier)


class AnalyticsService:
    """Overview and export, for one account and mode at a time."""

    def __init__(self, db: Database, clock: Clock, avatars: AvatarService) -> None:
        self.db = db
        self.clock = clock
        self.avatars = avatars

    async def overview(self, principal: Principal, days: DayRange) -> dict[str, Any]:
        account, mode = principal.account_id, principal.mode
        first, last = days.start.isoformat(), days.end.isoformat()
        start = datetime.combine(days.start, datetime.min.time()).replace(tzinfo=_UTC)
        end = datetime.combine(days.end, datetime.min.time()).replace(tzinfo=_UTC)
        a = ActivityDay
        in_range = and_(a.account_id == account, a.mode == mode, a.day >= first, a.day < last)

        def work(connection: Connection) -> dict[str, Any]:
            totals = connection.execute(
                select(
                    func.coalesce(func.sum(a.conversations), 0),
                    func.coalesce(func.sum(a.messages), 0),
                    func.coalesce(func.sum(a.escalations), 0),
                    func.coalesce(func.sum(a.ai_tokens), 0),
                    func.coalesce(func.sum(a.tts_characters), 0),
                    func.coalesce(func.sum(a.stt_ms), 0),
                ).where(in_range)
            ).one()
            per_day = connection.execute(
                select(a.day, func.sum(a.conversations), func.sum(a.messages))
                .where(in_range)
                .group_by(a.day)
            ).all()
            top = connection.execute(
                select(a.avatar_id, func.sum(a.conversations).label("started"))
                .where(in_range)
                .group_by(a.avatar_id)
                .having(func.sum(a.conversations) > 0)
                .order_by(func.sum(a.conversations).desc(), a.avatar_id)
                .limit(TOP_AVATARS)
            ).all()
            latency = connection.execute(
                select(LatencyDay.bucket, func.sum(LatencyDay.count))
                .where(
                    LatencyDay.account_id == account,
                    LatencyDay.mode == mode,
                    LatencyDay.day >= first,
                    LatencyDay.day < last,
                )
                .group_by(LatencyDay.bucket)
                .order_by(LatencyDay.bucket)
            ).all()
            c = Conversation
            duration = _seconds_between(connection, c.last_message_at, c.first_message_at)
            completed = case((and_(c.message_count >= 2, c.escalated.is_(False)), 1), else_=0)
            started, finished, avg_duration = connection.execute(
                select(func.count(), func.sum(completed), func.avg(duration)).where(
                    c.account_id == account,
                    c.mode == mode,
                    c.created_at >= start,
                    c.created_at < end,
                )
            ).one()
            return {
                "totals": totals,
                "per_day": {str(day): (int(n), int(m)) for day, n, m in per_day},
                "top": [(str(avatar), int(n)) for avatar, n in top],
                "latency": [(int(b), int(n)) for b, n in latency],
                "started": int(started or 0),
                "finished": int(finished or 0),
                "avg_duration": None if avg_duration is None else float(avg_duration),
            }

        found = await self.db.read_core(work)
        conversations, messages, escalations, ai_tokens, tts_chars, stt_ms = found["totals"]
        names = await self.avatars.names(principal, [avatar for avatar, _n in found["top"]])
        started = found["started"]
        return {
            "object": "analytics_overview",
            "period": {"start": _rfc(start), "end": _rfc(end)},
            "conversations": int(conversations),
            "messages": int(messages),
            "avg_duration_s": (
                None if found["avg_duration"] is None else round(found["avg_duration"], 1)
            ),
            "completion_rate": round(found["finished"] / started, 4) if started else None,
            "escalations": int(escalations),
            "ai_tokens": int(ai_tokens),
            "tts_characters": int(tts_chars),
            "stt_seconds": stt_seconds(int(stt_ms)),
            "top_avatars": [
                {"avatar_id": avatar, "name": names.get(avatar), "conversations": n}
                for avatar, n in found["top"]
            ],
            "by_day": [
                {
                    "date": day.isoformat(),
                    "conversations": found["per_day"].get(day.isoformat(), (0, 0))[0],
                    "messages": found["per_day"].get(day.isoformat(), (0, 0))[1],
                }
                for day in days.days
            ],
            "latency_ms": {
                "p50": _percentile(found["latency"], 0.50),
                "p95": _percentile(found["latency"], 0.95),
            },
        }

    async def export(
        self,
        principal: Principal,
        *,
        start: datetime | None,
        end: datetime | None,
        avatar_id: str | None = None,
    ) -> AsyncIterator[list[ExportRow]]:
        """The messages of the conversations started in [start, end), conversation by
        conversation (oldest first) and in order within each, in batches of about
        ``EXPORT_BATCH`` messages. Conversations are paged by keyset on (created_at, id)
        through the owner index; each page's messages are read by (conversation_id, seq),
        a long conversation in seq ranges, so no read holds more than one batch."""
        c, m = Conversation, Message
        owned = [c.account_id == principal.account_id, c.mode == principal.mode]
        if start is not None:
            owned.append(c.created_at >= start)
        if end is not None:
            owned.append(c.created_at < end)
        if avatar_id is not None:
            owned.append(c.avatar_id == avatar_id)
        page = (
            select(c.id, c.avatar_id, c.escalated, c.created_at, c.message_count)
            .where(*owned)
            .order_by(c.created_at, c.id)
            .limit(CONVERSATION_PAGE)
        )
        columns = (m.conversation_id, m.id, m.role, m.content, m.created_at, m.ai_tokens,
                   m.tts_characters, m.stt_ms, m.seq)  # fmt: skip
        cursor: tuple[datetime, str] | None = None
        while True:
            query = page
            if cursor is not None:
                at, last_id = cursor
                # The plain bound lets the index range start at the cursor.
                query = query.where(
                    c.created_at >= at,
                    or_(c.created_at > at, and_(c.created_at == at, c.id > last_id)),
                )
            conversations = await self.db.read_core(_fetch(query))
            if not conversations:
                return
            about = {str(row[0]): (str(row[1]), bool(row[2])) for row in conversations}
            for group in _by_budget([(str(r[0]), int(r[4])) for r in conversations]):
                if len(group) == 1 and group[0][1] > EXPORT_BATCH:
                    ranges = range(0, group[0][1] + 1, EXPORT_BATCH)
                    queries = [
                        select(*columns)
                        .where(m.conversation_id == group[0][0], m.seq >= low,
                               m.seq < low + EXPORT_BATCH)
                        .order_by(m.seq)
                        for low in ranges
                    ]  # fmt: skip
                else:
                    ids = [conversation_id for conversation_id, _count in group]
                    queries = [select(*columns).where(m.conversation_id.in_(ids))]
                for query_m in queries:
                    rows = await self.db.read_core(_fetch(query_m))
                    if not rows:
                        continue
                    order = {conversation_id: n for n, (conversation_id, _c) in enumerate(group)}
                    rows = sorted(rows, key=lambda row: (order[str(row[0])], int(row[8])))
                    yield [_export_row(row, about[str(row[0])]) for row in rows]
            last = conversations[-1]
            cursor = (_as_utc(last[3]), str(last[0]))
            if len(conversations) < CONVERSATION_PAGE:
                return


def _by_budget(conversations: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    """Consecutive conversations grouped so a group holds at most ``EXPORT_BATCH``
    messages (a longer conversation is a group of its own)."""
    groups: list[list[tuple[str, int]]] = []
    current: list[tuple[str, int]] = []
    held = 0
    for conversation_id, count in conversations:
        if current and held + count > EXPORT_BATCH:
            groups.append(current)
            current, held = [], 0
        current.append((conversation_id, count))
        held += count
    if current:
        groups.append(current)
    return groups


def _export_row(row: Any, about: tuple[str, bool]) -> ExportRow:
    avatar_id, escalated = about
    return ExportRow(
        str(row[0]), avatar_id, str(row[1]), str(row[2]), str(row[3]), _as_utc(row[4]),
        int(row[5]), int(row[6]), stt_seconds(int(row[7] or 0)), escalated,
    )  # fmt: skip


def _fetch(query: Any) -> Callable[[Connection], Sequence[Any]]:
    def work(connection: Connection) -> Sequence[Any]:
        return connection.execute(query).all()

    return work


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)


def _rfc(value: datetime) -> str:
    return str(rfc3339(value))
