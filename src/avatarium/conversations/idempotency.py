"""``Idempotency-Key`` handling: replay a stored answer, refuse a reused key with another
body, refuse a concurrent duplicate. Successful answers are stored in the same transaction
as the work they describe, so a replay can never disagree with what was stored. Failed
attempts are forgotten, so a client's retry after a 5xx really retries."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from avatarium.conversations.models import IdempotentResponse
from avatarium.core.clock import Clock
from avatarium.core.errors import InvalidParameterError, InvalidRequestError, RequestInProgressError
from avatarium.keys.service import Principal
from avatarium.storage.db import Database

HEADER = "idempotency-key"
# An attempt still "in progress" after this long belongs to a worker that died.
ABANDONED_AFTER = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Replay:
    """A stored answer to send again."""

    status_code: int
    body: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """A claimed key: finish it with :meth:`IdempotencyStore.complete` or ``abandon``."""

    record_id: int


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

    def __init__(self, db: Database, clock: Clock, ttl_s: int) -> None:
        self._db = db
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_s)

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
            )
            session.add(record)
            session.flush()
            return Attempt(record.id)

        for _ in range(2):
            try:
                return await self._db.write(work)
            except IntegrityError:
                # Another request claimed the key between our read and write: look again.
                continue
        raise RequestInProgressError(
            "A request with this Idempotency-Key is still being processed."
        )

    def _judge(self, existing: IdempotentResponse, fingerprint: str, now: Any) -> Replay | None:
        if now - existing.created_at > self._ttl:
            return None
        if existing.body_hash != fingerprint:
            raise InvalidRequestError(
                "This Idempotency-Key was used with a different request body.",
                details={"reason": "idempotency_key_reused", "field": "Idempotency-Key"},
            )
        if existing.status_code is None:
            if now - existing.created_at > ABANDONED_AFTER:
                return None
            raise RequestInProgressError(
                "A request with this Idempotency-Key is still being processed."
            )
        return Replay(existing.status_code, existing.response_body or "")

    @staticmethod
    def complete(session: Session, attempt: Attempt, status_code: int, body: str) -> None:
        """Store the answer, inside the caller's transaction."""
        session.execute(
            update(IdempotentResponse)
            .where(IdempotentResponse.id == attempt.record_id)
            .values(status_code=status_code, response_body=body)
        )

    async def abandon(self, attempt: Attempt) -> None:
        """Forget a failed attempt so the client can retry with the same key."""
        statement = delete(IdempotentResponse).where(IdempotentResponse.id == attempt.record_id)
        await self._db.write(lambda session: session.execute(statement))
