"""Webhook endpoints of an account and mode: register, read, change, remove, test, and the
log of delivery attempts with a way to send one event again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from avatarium.conversations.service import page
from avatarium.core.clock import Clock, rfc3339
from avatarium.core.errors import InvalidParameterError, InvalidRequestError, WebhookNotFoundError
from avatarium.core.ids import new_id
from avatarium.core.secrets import Sealer
from avatarium.jobs.queue import enqueue_in
from avatarium.keys.service import Principal
from avatarium.storage.db import Database
from avatarium.webhooks.delivery import attempts_so_far
from avatarium.webhooks.events import (
    DELIVER_JOB,
    DELIVER_MAX_ATTEMPTS,
    TEST_EVENT,
    EventLog,
)
from avatarium.webhooks.models import Webhook, WebhookDelivery, WebhookEvent
from avatarium.webhooks.signing import new_secret
from avatarium.webhooks.targets import check_target

MAX_WEBHOOKS = 20  # per account and mode


@dataclass(frozen=True, slots=True)
class WebhookChanges:
    """A PATCH: the fields named (None: left as it is)."""

    url: str | None = None
    events: list[str] | None = None
    description: str | None = None
    clear_description: bool = False
    enabled: bool | None = None


def webhook_json(hook: Webhook, *, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": hook.id,
        "object": "webhook",
        "url": hook.url,
        "events": list(hook.events),
        "description": hook.description,
        "enabled": hook.enabled,
        "disabled_reason": hook.disabled_reason,
        "created_at": rfc3339(hook.created_at),
        "updated_at": rfc3339(hook.updated_at),
    }
    if secret is not None:
        body["secret"] = secret  # shown once, in the answer to the create
    return body


def delivery_json(row: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "webhook_delivery",
        "webhook_id": row.webhook_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "attempt": row.attempt,
        "status_code": row.status_code,
        "duration_ms": row.duration_ms,
        "error": row.error,
        "outcome": row.outcome,
        "created_at": rfc3339(row.created_at),
    }


def _not_found(what: str) -> WebhookNotFoundError:
    return WebhookNotFoundError(f"No webhook {what!r}.")


class WebhookService:
    """Endpoints and deliveries, isolated by account and mode."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        sealer: Sealer,
        events: EventLog,
        *,
        allow_private: bool,
    ) -> None:
        self.db = db
        self.clock = clock
        self.sealer = sealer
        self.events = events
        self.allow_private = allow_private

    @staticmethod
    def _owned(session: Session, principal: Principal, webhook_id: str) -> Webhook:
        hook = session.get(Webhook, webhook_id)
        if hook is None or hook.account_id != principal.account_id or hook.mode != principal.mode:
            raise _not_found(webhook_id)
        return hook

    async def create(
        self,
        principal: Principal,
        *,
        url: str,
        events: list[str],
        description: str | None,
        secret: str | None,
    ) -> dict[str, Any]:
        await check_target(url, allow_private=self.allow_private)
        secret = secret or new_secret()
        now = self.clock.now()
        hook = Webhook(
            id=new_id("wh"), account_id=principal.account_id, mode=principal.mode, url=url,
            events=events, description=description, secret_sealed=self.sealer.seal(secret),
            enabled=True, disabled_reason=None, created_at=now, updated_at=now,
        )  # fmt: skip

        def work(session: Session) -> None:
            count = session.execute(
                select(func.count())
                .select_from(Webhook)
                .where(Webhook.account_id == principal.account_id, Webhook.mode == principal.mode)
            ).scalar_one()
            if count >= MAX_WEBHOOKS:
                raise InvalidRequestError(
                    f"An account has at most {MAX_WEBHOOKS} webhooks per mode; delete one first.",
                    details={"reason": "too_many_webhooks", "limit": MAX_WEBHOOKS},
                )
            session.add(hook)

        await self.db.write(work)
        return webhook_json(hook, secret=secret)

    async def list_webhooks(
        self, principal: Principal, *, limit: int, starting_after: str | None
    ) -> dict[str, Any]:
        def work(session: Session) -> list[Webhook]:
            query = select(Webhook).where(
                Webhook.account_id == principal.account_id, Webhook.mode == principal.mode
            )
            if starting_after is not None:
                anchor = self._anchor(session, principal, starting_after)
                query = query.where(
                    (Webhook.created_at < anchor.created_at)
                    | and_(Webhook.created_at == anchor.created_at, Webhook.id < anchor.id)
                )
            ordered = query.order_by(Webhook.created_at.desc(), Webhook.id.desc())
            return list(session.execute(ordered.limit(limit + 1)).scalars())

        rows = await self.db.read(work)
        return page([webhook_json(row) for row in rows], limit)

    def _anchor(self, session: Session, principal: Principal, webhook_id: str) -> Webhook:
        try:
            return self._owned(session, principal, webhook_id)
        except WebhookNotFoundError:
            raise InvalidParameterError(
                "starting_after", "not_allowed", "starting_after must be an id from this list."
            ) from None

    async def get(self, principal: Principal, webhook_id: str) -> dict[str, Any]:
        hook = await self.db.read(lambda session: self._owned(session, principal, webhook_id))
        return webhook_json(hook)

    async def update(
        self, principal: Principal, webhook_id: str, changes: WebhookChanges
    ) -> dict[str, Any]:
        await self.get(principal, webhook_id)  # 404 before the URL's DNS lookup
        if changes.url is not None:
            await check_target(changes.url, allow_private=self.allow_private)
        now = self.clock.now()

        def work(session: Session) -> dict[str, Any]:
            hook = self._owned(session, principal, webhook_id)
            if changes.url is not None:
                hook.url = changes.url
            if changes.events is not None:
                hook.events = changes.events
            if changes.description is not None or changes.clear_description:
                hook.description = changes.description
            if changes.enabled is not None:
                hook.enabled = changes.enabled
                hook.disabled_reason = None if changes.enabled else "manual"
            hook.updated_at = now
            return webhook_json(hook)

        return await self.db.write(work)

    async def delete(self, principal: Principal, webhook_id: str) -> dict[str, Any]:
        def work(session: Session) -> None:
            session.delete(self._owned(session, principal, webhook_id))

        await self.db.write(work)
        return {"id": webhook_id, "object": "webhook", "deleted": True}

    async def send_test(self, principal: Principal, webhook_id: str) -> dict[str, Any]:
        """Record a ``webhook.test`` event for this endpoint alone; it is delivered (and
        logged) like any other."""
        now = self.clock.now()

        def work(session: Session) -> tuple[str, Any]:
            hook = self._owned(session, principal, webhook_id)
            if not hook.enabled:
                raise _disabled(hook)
            box = self.events.outbox(
                session.connection(), principal.account_id, principal.mode, now
            )
            event_id = box.add(
                TEST_EVENT,
                {"webhook_id": hook.id, "message": "A test event from Avatarium."},
                only=hook.id,
            )
            return str(event_id), box

        event_id, box = await self.db.write(work)
        self.events.committed(box)
        return {"object": "webhook_test", "webhook_id": webhook_id, "event_id": event_id,
                "event_type": TEST_EVENT, "status": "queued"}  # fmt: skip

    async def deliveries(
        self,
        principal: Principal,
        webhook_id: str,
        *,
        limit: int,
        starting_after: str | None,
        event_id: str | None,
    ) -> dict[str, Any]:
        """The attempts, newest first."""

        def work(session: Session) -> list[WebhookDelivery]:
            hook = self._owned(session, principal, webhook_id)
            query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
            if event_id is not None:
                query = query.where(WebhookDelivery.event_id == event_id)
            if starting_after is not None:
                anchor = session.get(WebhookDelivery, starting_after)
                if anchor is None or anchor.webhook_id != hook.id:
                    raise InvalidParameterError(
                        "starting_after", "not_allowed",
                        "starting_after must be an id from this list.",
                    )  # fmt: skip
                query = query.where(
                    (WebhookDelivery.created_at < anchor.created_at)
                    | and_(
                        WebhookDelivery.created_at == anchor.created_at,
                        WebhookDelivery.id < anchor.id,
                    )
                )
            ordered = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
            return list(session.execute(ordered.limit(limit + 1)).scalars())

        rows = await self.db.read(work)
        return page([delivery_json(row) for row in rows], limit)

    async def retry(
        self, principal: Principal, webhook_id: str, delivery_id: str
    ) -> dict[str, Any]:
        """Send a delivery's event to this endpoint again, now (its attempts are numbered on
        from the ones logged)."""
        now = self.clock.now()

        def work(session: Session) -> dict[str, Any]:
            hook = self._owned(session, principal, webhook_id)
            row = session.get(WebhookDelivery, delivery_id)
            if row is None or row.webhook_id != hook.id:
                raise WebhookNotFoundError(f"No delivery {delivery_id!r} of webhook {hook.id!r}.")
            if not hook.enabled:
                raise _disabled(hook)
            if session.get(WebhookEvent, row.event_id) is None:
                raise InvalidRequestError(
                    "That event is no longer kept, so it cannot be sent again.",
                    details={"reason": "event_expired"},
                )
            enqueue_in(
                session.connection(), now, DELIVER_JOB,
                {"event_id": row.event_id, "webhook_id": hook.id,
                 "offset": attempts_so_far(session, hook.id, row.event_id)},
                max_attempts=DELIVER_MAX_ATTEMPTS,
            )  # fmt: skip
            return {"object": "webhook_retry", "webhook_id": hook.id, "delivery_id": row.id,
                    "event_id": row.event_id, "status": "queued"}  # fmt: skip

        body = await self.db.write(work)
        self.events.on_recorded()
        return body


def _disabled(hook: Webhook) -> InvalidRequestError:
    return InvalidRequestError(
        "This webhook is disabled; enable it (PATCH enabled: true) first.",
        details={"reason": "webhook_disabled", "disabled_reason": hook.disabled_reason},
    )
