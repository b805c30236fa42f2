"""Recording events in the transaction that caused them (the transactional outbox).

A cause (a stored message, an ended conversation, a safety action) opens an :class:`Outbox`
on its own connection and adds events to it. For each event an endpoint of that account and
mode wants, the event row and one delivery job per endpoint are inserted right there, so an
event exists if and only if its cause was committed, and a crash after the commit loses
nothing: the jobs are in the database, and any worker delivers them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, true
from sqlalchemy.engine import Connection

from avatarium.core.ids import new_id
from avatarium.jobs.queue import enqueue_in
from avatarium.storage.base import table_of
from avatarium.webhooks.models import Webhook, WebhookEvent

EVENT_TYPES = (
    "conversation.started",
    "conversation.ended",
    "conversation.escalated",
    "message.created",
    "message.failed",
    "avatar.updated",
    "avatar.deleted",
    "safety.escalation",
    "safety.topic_blocked",
    "safety.filter_triggered",
)
TEST_EVENT = "webhook.test"
DELIVER_JOB = "webhook.deliver"
# A delivery job ends by the retry window, not by a count; this only stops a job whose
# worker keeps dying from being claimed for ever.
DELIVER_MAX_ATTEMPTS = 1_000

_HOOKS = table_of(Webhook)
_LISTENERS = select(_HOOKS.c.id, _HOOKS.c.events).where(
    _HOOKS.c.account_id == bindparam("account_id"),
    _HOOKS.c.mode == bindparam("mode"),
    _HOOKS.c.enabled == true(),
)
_INSERT_EVENT = insert(table_of(WebhookEvent))


def wants(events: list[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``events`` receives ``event_type``."""
    return "*" in events or event_type in events


class Outbox:
    """The events of one transaction, for one account and mode."""

    def __init__(self, connection: Connection, account_id: str, mode: str, now: datetime) -> None:
        self.connection = connection
        self.account_id = account_id
        self.mode = mode
        self.now = now
        self.recorded = 0
        self._listeners: list[tuple[str, list[str]]] | None = None

    def listeners(self) -> list[tuple[str, list[str]]]:
        """The enabled endpoints of the account and mode (read once per transaction)."""
        if self._listeners is None:
            rows = self.connection.execute(
                _LISTENERS, {"account_id": self.account_id, "mode": self.mode}
            ).all()
            self._listeners = [(str(hook_id), list(events)) for hook_id, events in rows]
        return self._listeners

    def add(self, event_type: str, data: dict[str, Any], *, only: str | None = None) -> str | None:
        """Record ``event_type`` for every endpoint that wants it (or just ``only``); the
        event's id, or None when no endpoint wants it (nothing is stored then)."""
        if only is not None:
            targets = [only]
        else:
            targets = [hook for hook, events in self.listeners() if wants(events, event_type)]
        if not targets:
            return None
        event_id = new_id("evt")
        self.connection.execute(
            _INSERT_EVENT,
            {"id": event_id, "account_id": self.account_id, "mode": self.mode,
             "type": event_type, "data": data, "created_at": self.now},
        )  # fmt: skip
        for hook in targets:
            enqueue_in(
                self.connection, self.now, DELIVER_JOB,
                {"event_id": event_id, "webhook_id": hook, "offset": 0},
                max_attempts=DELIVER_MAX_ATTEMPTS,
            )  # fmt: skip
        self.recorded += len(targets)
        return event_id


class EventLog:
    """Opens outboxes, and wakes this process's delivery workers after a commit."""

    def __init__(self) -> None:
        self.on_recorded: Callable[[], None] = lambda: None

    @staticmethod
    def outbox(connection: Connection, account_id: str, mode: str, now: datetime) -> Outbox:
        return Outbox(connection, account_id, mode, now)

    def committed(self, *outboxes: Outbox | None) -> None:
        """Call after the transaction committed: deliver now rather than at the next poll."""
        if any(box is not None and box.recorded for box in outboxes):
            self.on_recorded()
