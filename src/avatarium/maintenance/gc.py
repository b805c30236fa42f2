"""``avatarium gc`` and its periodic run: removes what nothing needs any more.

- quota reservations past their expiry (a worker died mid-reply);
- idempotency records past ``AVATARIUM_IDEMPOTENCY_TTL_S`` whose work is not running;
- finished background jobs after a week, webhook events a week after their retry window,
  webhook delivery logs after 30 days;
- with ``AVATARIUM_RETENTION_DAYS``, conversations without activity for that long, with their
  messages and audio;
- audio files that no clip row points at (a reply that failed after writing them, a crash),
  once they are an hour old (a reply writes its files before its row commits).

Safe to run on several processes and hosts at once: every delete is by condition, rows are
deleted in the transaction that reports them (``RETURNING``), and an audio file is removed
only after its row is gone (or when no row ever pointed at it).
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.engine import Connection

from avatarium.conversations.models import Conversation, IdempotentResponse, Message
from avatarium.core.clock import Clock
from avatarium.jobs.models import Job
from avatarium.speech.models import AudioClip
from avatarium.storage.audio import AudioStore
from avatarium.storage.db import Database
from avatarium.usage.models import QuotaReservation
from avatarium.webhooks.models import WebhookDelivery, WebhookEvent

log = logging.getLogger(__name__)
BATCH = 500
JOBS_KEPT = timedelta(days=7)
EVENTS_KEPT_AFTER_WINDOW = timedelta(days=7)
DELIVERY_LOG_KEPT = timedelta(days=30)
ORPHAN_GRACE = timedelta(hours=1)
AUDIO_SUFFIX = ".mp3"


@dataclass
class GcReport:
    """How many of each kind were removed."""

    reservations: int = 0
    idempotency_records: int = 0
    jobs: int = 0
    webhook_events: int = 0
    webhook_deliveries: int = 0
    conversations: int = 0
    audio_files: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class GarbageCollector:
    """One pass of the clean-up (see the module's docstring)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        store: AudioStore,
        *,
        idempotency_ttl_s: float,
        webhook_window_s: float,
        retention_days: int | None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.store = store
        self.idempotency_ttl = timedelta(seconds=idempotency_ttl_s)
        self.events_kept = timedelta(seconds=webhook_window_s) + EVENTS_KEPT_AFTER_WINDOW
        self.retention = timedelta(days=retention_days) if retention_days else None

    async def run(self) -> GcReport:
        report = GcReport()
        now = self.clock.now()
        i = IdempotentResponse

        def rows(connection: Connection) -> dict[str, int]:
            def gone(statement: Any) -> int:
                return int(connection.execute(statement).rowcount or 0)

            return {
                "reservations": gone(
                    delete(QuotaReservation).where(QuotaReservation.expires_at < now)
                ),
                "idempotency_records": gone(
                    delete(i).where(
                        i.created_at < now - self.idempotency_ttl,
                        or_(i.lease_expires_at.is_(None), i.lease_expires_at < now),
                    )
                ),
                "jobs": gone(
                    delete(Job).where(
                        Job.status.in_(["done", "failed"]), Job.updated_at < now - JOBS_KEPT
                    )
                ),
                "webhook_events": gone(
                    delete(WebhookEvent).where(WebhookEvent.created_at < now - self.events_kept)
                ),
                "webhook_deliveries": gone(
                    delete(WebhookDelivery).where(
                        WebhookDelivery.created_at < now - DELIVERY_LOG_KEPT
                    )
                ),
            }

        for name, count in (await self.db.write_core(rows)).items():
            setattr(report, name, count)
        if self.retention is not None:
            report.conversations, files = await self._old_conversations(now - self.retention)
            report.audio_files += files
        report.audio_files += await self._orphan_audio((now - ORPHAN_GRACE).timestamp())
        if any(report.as_dict().values()):
            log.info("gc removed %s", report.as_dict())
        return report

    async def _old_conversations(self, cutoff: Any) -> tuple[int, int]:
        """Conversations without activity since ``cutoff``, a batch per transaction."""
        conversations = files = 0
        while True:

            def batch(connection: Connection) -> tuple[int, list[str]]:
                ids = list(
                    connection.execute(
                        select(Conversation.id).where(Conversation.updated_at < cutoff).limit(BATCH)
                    ).scalars()
                )
                if not ids:
                    return 0, []
                keys = list(
                    connection.execute(
                        delete(AudioClip)
                        .where(AudioClip.conversation_id.in_(ids))
                        .returning(AudioClip.storage_key)
                    ).scalars()
                )
                connection.execute(delete(Message).where(Message.conversation_id.in_(ids)))
                deleted = connection.execute(
                    delete(Conversation).where(Conversation.id.in_(ids)).returning(Conversation.id)
                ).all()
                return len(deleted), keys

            count, keys = await self.db.write_core(batch)
            await self.store.delete_many(keys)  # after the commit: no row points at nothing
            conversations += count
            files += len(keys)
            if count == 0:
                return conversations, files

    async def run_periodically(self, interval_s: float) -> None:
        """Run every ``interval_s`` on average (randomised so hosts do not run together)."""
        while True:
            await asyncio.sleep(interval_s * (0.5 + random.random()))
            try:
                await self.run()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database was away: try again next time
                log.exception("gc failed")

    async def _orphan_audio(self, before: float) -> int:
        removed = 0
        async for keys in self.store.older_than(before, BATCH):
            ids = [k.removesuffix(AUDIO_SUFFIX) for k in keys if k.endswith(AUDIO_SUFFIX)]

            def referenced(connection: Connection, ids: list[str] = ids) -> set[str]:
                found = connection.execute(select(AudioClip.id).where(AudioClip.id.in_(ids)))
                return {str(clip_id) for clip_id in found.scalars()}

            kept = await self.db.read_core(referenced)
            orphans = [clip_id + AUDIO_SUFFIX for clip_id in ids if clip_id not in kept]
            await self.store.delete_many(orphans)
            removed += len(orphans)
        return removed
