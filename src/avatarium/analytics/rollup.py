"""Keeping the daily roll-ups: one upsert per counter row, inside the caller's transaction,
and a full rebuild from the stored conversations and messages."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from avatarium.analytics.models import ActivityDay, LatencyDay
from avatarium.conversations.models import Conversation, Message

GROWTH = 1.05  # latency buckets: each 5 % wider than the last
COUNTERS = ("conversations", "messages", "escalations", "ai_tokens", "tts_characters", "stt_ms")


def day_of(moment: datetime) -> str:
    """The UTC date of ``moment``, as the roll-ups key it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def bucket_of(ms: int) -> int:
    """Bucket ``b`` holds times in (GROWTH^(b-1), GROWTH^b] ms; bucket 0 holds 0 and 1 ms."""
    return 0 if ms <= 1 else math.ceil(math.log(ms) / math.log(GROWTH) - 1e-9)


def bucket_value(bucket: int) -> float:
    """The time a bucket stands for: the geometric middle of its range (within 2.5 %)."""
    return 1.0 if bucket <= 0 else float(GROWTH ** (bucket - 0.5))


def _activity_upsert(insert: Any) -> Any:
    statement = insert(ActivityDay).values(
        account_id=bindparam("account_id"), mode=bindparam("mode"), day=bindparam("day"),
        avatar_id=bindparam("avatar_id"),
        **{name: bindparam(name) for name in COUNTERS},
    )  # fmt: skip
    added = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["account_id", "mode", "day", "avatar_id"],
        set_={name: getattr(ActivityDay, name) + getattr(added, name) for name in COUNTERS},
    )


def _latency_upsert(insert: Any) -> Any:
    statement = insert(LatencyDay).values(
        account_id=bindparam("account_id"), mode=bindparam("mode"), day=bindparam("day"),
        bucket=bindparam("bucket"), count=bindparam("count"),
    )  # fmt: skip
    return statement.on_conflict_do_update(
        index_elements=["account_id", "mode", "day", "bucket"],
        set_={"count": LatencyDay.count + statement.excluded.count},
    )


_ACTIVITY = {
    "sqlite": _activity_upsert(sqlite.insert),
    "postgresql": _activity_upsert(postgresql.insert),
}
_LATENCY = {
    "sqlite": _latency_upsert(sqlite.insert),
    "postgresql": _latency_upsert(postgresql.insert),
}


def add_activity(
    connection: Connection,
    account_id: str,
    mode: str,
    at: datetime,
    avatar_id: str,
    **counts: int,
) -> None:
    """Add ``counts`` (names from :data:`COUNTERS`) to the avatar's row for ``at``'s day."""
    row = {name: counts.get(name, 0) for name in COUNTERS}
    connection.execute(
        _ACTIVITY[connection.dialect.name],
        {"account_id": account_id, "mode": mode, "day": day_of(at), "avatar_id": avatar_id,
         **row},
    )  # fmt: skip


def add_latency(connection: Connection, account_id: str, mode: str, at: datetime, ms: int) -> None:
    """Count one reply that took ``ms`` from the send to its storing."""
    connection.execute(
        _LATENCY[connection.dialect.name],
        {"account_id": account_id, "mode": mode, "day": day_of(at), "bucket": bucket_of(ms),
         "count": 1},
    )  # fmt: skip


def day_column(connection: Connection, column: Any) -> ColumnElement[str]:
    """SQL for a timestamp column's UTC date as ``YYYY-MM-DD``."""
    if connection.dialect.name == "sqlite":
        return func.substr(column, 1, 10)  # stored as naive UTC "YYYY-MM-DD HH:MM:SS..."
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


def rebuild(connection: Connection) -> int:
    """Recompute every roll-up from the stored conversations and messages (after the
    migration that added them, or to repair them); the number of rows written. Grouping
    runs in the database; only the grouped rows come back."""
    connection.execute(delete(ActivityDay))
    connection.execute(delete(LatencyDay))
    rows: dict[tuple[str, str, str, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(COUNTERS, 0)
    )
    c, m = Conversation, Message
    started = day_column(connection, c.created_at)
    for account, mode, day, avatar, count, escalated in connection.execute(
        select(c.account_id, c.mode, started, c.avatar_id, func.count(),
               func.sum(case((c.escalated, 1), else_=0)))
        .group_by(c.account_id, c.mode, started, c.avatar_id)
    ):  # fmt: skip
        row = rows[(account, mode, day, avatar)]
        row["conversations"] += int(count)
        row["escalations"] += int(escalated or 0)
    stored = day_column(connection, m.created_at)
    for account, mode, day, avatar, count, tokens, chars, stt in connection.execute(
        select(c.account_id, c.mode, stored, c.avatar_id, func.count(), func.sum(m.ai_tokens),
               func.sum(m.tts_characters), func.sum(m.stt_ms))
        .join(c, c.id == m.conversation_id)
        .group_by(c.account_id, c.mode, stored, c.avatar_id)
    ):  # fmt: skip
        row = rows[(account, mode, day, avatar)]
        row["messages"] += int(count)
        row["ai_tokens"] += int(tokens or 0)
        row["tts_characters"] += int(chars or 0)
        row["stt_ms"] += int(stt or 0)
    if rows:
        connection.execute(
            _ACTIVITY[connection.dialect.name],
            [{"account_id": a, "mode": md, "day": d, "avatar_id": av, **counts}
             for (a, md, d, av), counts in rows.items()],
        )  # fmt: skip
    latencies: dict[tuple[str, str, str, int], int] = defaultdict(int)
    for account, mode, day, ms, count in connection.execute(
        select(c.account_id, c.mode, stored, m.latency_ms, func.count())
        .join(c, c.id == m.conversation_id)
        .where(m.latency_ms.is_not(None))
        .group_by(c.account_id, c.mode, stored, m.latency_ms)
    ):
        latencies[(account, mode, day, bucket_of(int(ms or 0)))] += int(count)
    if latencies:
        connection.execute(
            _LATENCY[connection.dialect.name],
            [{"account_id": a, "mode": md, "day": d, "bucket": b, "count": n}
             for (a, md, d, b), n in latencies.items()],
        )  # fmt: skip
    return len(rows) + len(latencies)
