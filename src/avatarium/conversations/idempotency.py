"""``Idempotency-Key`` handling: replay a stored answer, refuse a reused key with another
body, refuse a concurrent duplicate. Successful answers are stored in the same transaction
as the work they describe, so a replay can never disagree with what was stored. Failed
attempts are forgotten, so a client's retry after a 5xx really retries.

A claim in progress holds a short lease that its worker renews while the work runs (a
timer, so the common fast request never renews at all). A worker that crashes stops
renewing, and the client's retry takes the claim over a few seconds later instead of
getting 409 for minutes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from avatarium.conversations.models import IdempotentResponse
from avatarium.core.clock import Clock
from avatarium.core.errors import InvalidParameterError, InvalidRequestError, RequestInProgressError
from avatarium.keys.service import Principal
from avatarium.storage.db import Database

HEADER = "idempotency-key"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Replay:
    """A stored answer to send again."""

    status_code: int
    body: str


@dataclass(eq=False)
class Attempt:
    """A claimed key: finish it with :meth:`IdempotencyStore.complete` or ``abandon``, and
    call :meth:`stop_renewing` once the work is over (either way)."""

    record_id: int
    _timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    _renewal: asyncio.Task[None] | None = field(default=None, repr=False)
    _stopped: bool = False

    def stop_renewing(self) -> None:
        """The work is over: its lease is left to lapse (or was replaced by the answer)."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._renewal is not None and not self._renewal.done():
            self._renewal.cancel()


def body_fingerprint(body: dict[str, Any]) -> str:
    """Same JSON, same fingerprint, whatever the key order or spacing."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def key_from(headers: Any) -> str | None:
    """The request's Idempotency-Key, checked (1..255 characters)."""
    value = headers.get(HEADER)
    if value is None:
        return None
    if not 1 <= len(value) <= 255:
        raise InvalidParameterError(
            "Idempotency-Key",
            "too_long" if value else "empty",
            "The Idempotency-Key header must be 1 to 255 characters.",
            max_length=255,
        )
    return str(value)


class IdempotencyStore:
    """Claims, completes and forgets idempotent attempts."""

    def __init__(self, db: Database, clock: Clock, ttl_s: int, lease_s: float = 4.0) -> None:
        self._db = db
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_s)
        self._lease = timedelta(seconds=lease_s)

    async def claim(
        self, principal: Principal, key: str, endpoint: str, fingerprint: str
    ) -> Attempt | Replay:
        """Claim ``key`` for this request, or return the answer stored under it."""
        now = self._clock.now()

        def work(session: Session) -> Attempt | Replay:
            existing = session.execute(
                select(IdempotentResponse).where(
                    IdempotentResponse.account_id == principal.account_id,
                    IdempotentResponse.mode == principal.mode,
                    IdempotentResponse.idempotency_key == key,
                    IdempotentResponse.endpoint == endpoint,
                )
            ).scalar_one_or_none()
            if existing is not None:
                outcome = self._judge(existing, fingerprint, now)
                if outcome is not None:
                    return outcome
                session.delete(existing)  # expired or abandoned: start afresh
                session.flush()
            record = IdempotentResponse(
                account_id=principal.account_id,
                mode=principal.mode,
                idempotency_key=key,
                endpoint=endpoint,
                body_hash=fingerprint,
                created_at=now,
                lease_expires_at=now + self._lease,
            )
            session.add(record)
            session.flush()
            return Attempt(record.id)

        for _ in range(2):
            try:
                outcome = await self._db.write(work)
            except IntegrityError:
                # Another request claimed the key between our read and write: look again.
                continue
            if isinstance(outcome, Attempt):
                self._schedule_renewal(outcome)
            return outcome
        raise _in_progress(self._lease.total_seconds())

    def _schedule_renewal(self, attempt: Attempt) -> None:
        if attempt._stopped:
            return
        delay = self._lease.total_seconds() / 3
        attempt._timer = asyncio.get_running_loop().call_later(delay, self._start_renewal, attempt)

    def _start_renewal(self, attempt: Attempt) -> None:
        attempt._timer = None
        if not attempt._stopped:
            attempt._renewal = asyncio.ensure_future(self._renew(attempt))

    async def _renew(self, attempt: Attempt) -> None:
        expires = self._clock.now() + self._lease
        statement = (
            update(IdempotentResponse)
            .where(
                IdempotentResponse.id == attempt.record_id,
                IdempotentResponse.status_code.is_(None),
            )
            .values(lease_expires_at=expires)
        )
        try:
            await self._db.write(lambda session: session.execute(statement))
        except asyncio.CancelledError:
            raise
        except Exception:  # a missed renewal only shortens the lease; try again next time
            log.warning("could not renew an Idempotency-Key lease", exc_info=True)
        self._schedule_renewal(attempt)

    def _judge(
        self, existing: IdempotentResponse, fingerprint: str, now: datetime
    ) -> Replay | None:
        if now - existing.created_at > self._ttl:
            return None
        if existing.body_hash != fingerprint:
            raise InvalidRequestError(
                "This Idempotency-Key was used with a different request body.",
                details={"reason": "idempotency_key_reused", "field": "Idempotency-Key"},
            )
        if existing.status_code is None:
            lease_end = existing.lease_expires_at or existing.created_at + self._lease
            if lease_end <= now:
                return None  # its worker stopped renewing: it died, so the work is ours
            raise _in_progress((lease_end - now).total_seconds())
        return Replay(existing.status_code, existing.response_body or "")

    @staticmethod
    def complete(
        session: Session | Connection, attempt: Attempt, status_code: int, body: str
    ) -> None:
        """Store the answer, inside the caller's transaction."""
        session.execute(
            update(IdempotentResponse)
            .where(IdempotentResponse.id == attempt.record_id)
            .values(status_code=status_code, response_body=body)
        )

    async def abandon(self, attempt: Attempt) -> None:
        """Forget a failed attempt so the client can retry with the same key."""
        attempt.stop_renewing()
        statement = delete(IdempotentResponse).where(IdempotentResponse.id == attempt.record_id)
        await self._db.write(lambda session: session.execute(statement))


def _in_progress(wait_s: float) -> RequestInProgressError:
    """409, with how long until the claim's lease lapses if its worker has died."""
    return RequestInProgressError(
        "A request with this Idempotency-Key is still being processed.",
        headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
    )
