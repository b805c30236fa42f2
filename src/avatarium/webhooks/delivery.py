"""The delivery job: one attempt per run, logged in the same transaction that ends the job
or schedules the next attempt, so the log never shows an attempt that did not happen twice,
and a worker that lost its lease (another took the job over) cannot log or reschedule."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from avatarium.core.clock import Clock, rfc3339
from avatarium.core.ids import new_id
from avatarium.core.secrets import Sealer
from avatarium.jobs.runner import RunningJob
from avatarium.storage.db import Database
from avatarium.webhooks.models import Webhook, WebhookDelivery, WebhookEvent
from avatarium.webhooks.sender import AttemptResult, WebhookSender
from avatarium.webhooks.signing import signature_headers

log = logging.getLogger(__name__)
JITTER = 0.2  # up to 20 % added to each delay, so endpoints that fail together drift apart


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """First retry after ``base_s``, doubling up to ``max_s``, while within ``window_s`` of
    the event."""

    base_s: float
    max_s: float
    window_s: float

    def delay(self, attempt: int) -> float:
        """Seconds before the attempt after number ``attempt`` (1-based)."""
        plain = min(self.base_s * 2 ** min(attempt - 1, 60), self.max_s)
        return float(plain * (1 + JITTER * random.random()))

    def gives_up(self, event_at: datetime, retry_at: datetime) -> bool:
        return retry_at > event_at + timedelta(seconds=self.window_s)


def event_body(event: WebhookEvent) -> bytes:
    """The delivered JSON: the same bytes on every attempt (the signature covers them)."""
    return orjson.dumps(
        {"id": event.id, "type": event.type, "created_at": rfc3339(event.created_at),
         "data": event.data}
    )  # fmt: skip


def attempts_so_far(session: Session, webhook_id: str, event_id: str) -> int:
    return int(
        session.execute(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.event_id == event_id)
        ).scalar_one()
    )


class DeliveryHandler:
    """Runs ``webhook.deliver`` jobs."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        sealer: Sealer,
        sender: WebhookSender,
        schedule: RetrySchedule,
    ) -> None:
        self.db = db
        self.clock = clock
        self.sealer = sealer
        self.sender = sender
        self.schedule = schedule
        # Told of each attempt's outcome (succeeded, retrying, failed): the metrics count them.
        self.on_attempt: Callable[[str], None] = lambda _outcome: None

    async def run(self, job: RunningJob) -> None:
        event_id = str(job.payload["event_id"])
        webhook_id = str(job.payload["webhook_id"])
        offset = int(str(job.payload.get("offset", 0)))

        def load(session: Session) -> tuple[WebhookEvent | None, Webhook | None]:
            return session.get(WebhookEvent, event_id), session.get(Webhook, webhook_id)

        event, hook = await self.db.read(load)
        if event is None or hook is None or not hook.enabled:
            return  # deleted or disabled since: nothing to send (the job ends as done)
        attempt = offset + job.claim.attempts
        body = event_body(event)
        secret = self.sealer.open(hook.secret_sealed)
        now = self.clock.now()
        headers = signature_headers(secret, event.id, int(now.timestamp()), body)
        result = await self.sender.post(hook.url, body, headers)
        ended = self.clock.now()

        def logged(outcome: str) -> WebhookDelivery:
            self.on_attempt(outcome)
            return _delivery_row(hook, event, attempt, result, outcome, ended)

        if result.delivered:
            await job.finish(lambda session: session.add(logged("succeeded")))
            return
        if result.status_code == 410:
            # The receiver says the endpoint is gone for good: stop sending to it.
            def gone(session: Session) -> None:
                session.add(logged("failed"))
                session.execute(
                    update(Webhook)
                    .where(Webhook.id == hook.id)
                    .values(enabled=False, disabled_reason="gone", updated_at=ended)
                )

            log.warning("webhook %s answered 410 Gone: disabled", hook.id)
            await job.fail("410 Gone: endpoint disabled", gone)
            return
        delay = self.schedule.delay(job.claim.attempts)
        error = result.error or "failed"
        if self.schedule.gives_up(event.created_at, ended + timedelta(seconds=delay)):
            log.warning("webhook %s: event %s failed for good: %s", hook.id, event.id, error)
            await job.fail(error, lambda session: session.add(logged("failed")))
            return
        await job.again_in(delay, error, lambda session: session.add(logged("retrying")))

    async def give_up(self, job: RunningJob, error: str) -> None:
        await job.fail(error)


def _delivery_row(
    hook: Webhook,
    event: WebhookEvent,
    attempt: int,
    result: AttemptResult,
    outcome: str,
    at: datetime,
) -> WebhookDelivery:
    return WebhookDelivery(
        id=new_id("whd"), webhook_id=hook.id, event_id=event.id, event_type=event.type,
        attempt=attempt, status_code=result.status_code, duration_ms=result.duration_ms,
        error=result.error, outcome=outcome, created_at=at,
    )  # fmt: skip
