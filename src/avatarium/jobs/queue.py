"""Durable jobs on the application's own database: enqueue inside the caller's transaction,
claim with a renewable lease, finish in one transaction with the job's result.

Why a table of our own and not a queue library: see docs/architecture.md ("Background
jobs"). In short, the libraries that claim jobs safely across workers are PostgreSQL-only
(procrastinate, pgqueuer) or need a broker the embedded setup does not have (dramatiq, rq,
arq, huey's Redis store); none covers SQLite and PostgreSQL with one behaviour.

Claims never hand one job to two workers: on PostgreSQL the candidate row is locked with
``FOR UPDATE SKIP LOCKED`` inside the claiming ``UPDATE``; on SQLite the whole statement runs
under the database's single write lock. A lease (``locked_until``) that is not renewed runs
out, so a job whose worker was killed is claimed again after restart, by any worker.
Finishing is guarded by the lease: a worker that lost its job cannot also commit its result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from avatarium.core.clock import Clock
from avatarium.core.ids import new_id
from avatarium.jobs.models import Job
from avatarium.storage.base import table_of
from avatarium.storage.db import Database

T = TypeVar("T")
_JOBS = table_of(Job)
_INSERT_JOB = insert(_JOBS)
ERROR_CHARS = 2_000


class LeaseLostError(Exception):
    """The job's lease ran out and another worker claimed it: this worker's result is void."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A job a worker holds: what to do, and the lease that proves it may finish it."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    worker: str


def enqueue(
    session: Session, clock: Clock, kind: str, payload: dict[str, Any], *, max_attempts: int
) -> str:
    """Add a job inside the caller's transaction, so the job exists exactly when the work
    that asked for it was committed."""
    return enqueue_in(session.connection(), clock.now(), kind, payload, max_attempts=max_attempts)


def enqueue_in(
    connection: Connection,
    now: datetime,
    kind: str,
    payload: dict[str, Any],
    *,
    max_attempts: int,
    run_after: datetime | None = None,
) -> str:
    """:func:`enqueue` on a Core connection (hot paths that do not use the ORM)."""
    job_id = new_id("job")
    connection.execute(
        _INSERT_JOB,
        {"id": job_id, "kind": kind, "payload": payload, "status": "queued", "attempts": 0,
         "max_attempts": max_attempts, "run_after": run_after or now, "locked_by": None,
         "locked_until": None, "last_error": None, "created_at": now, "updated_at": now},
    )  # fmt: skip
    return job_id


class JobQueue:
    """Claims, lease renewals and endings of jobs."""

    def __init__(self, db: Database, clock: Clock, *, lease_s: float) -> None:
        self.db = db
        self.clock = clock
        self.lease_s = lease_s

    async def claim(self, worker: str, kinds: Sequence[str]) -> Claim | None:
        """The oldest job of one of ``kinds`` that is due, or whose lease ran out, now held
        by ``worker``."""
        now = self.clock.now()
        due = and_(
            _JOBS.c.kind.in_(list(kinds)),
            or_(
                and_(_JOBS.c.status == "queued", _JOBS.c.run_after <= now),
                and_(_JOBS.c.status == "running", _JOBS.c.locked_until < now),
            ),
        )
        candidate = (
            select(_JOBS.c.id).where(due).order_by(_JOBS.c.run_after, _JOBS.c.created_at).limit(1)
        )
        if not self.db.is_sqlite:
            candidate = candidate.with_for_update(skip_locked=True)
        statement = (
            update(_JOBS)
            .where(_JOBS.c.id == candidate.scalar_subquery())
            .values(
                status="running",
                locked_by=worker,
                locked_until=now + timedelta(seconds=self.lease_s),
                attempts=_JOBS.c.attempts + 1,
                updated_at=now,
            )
            .returning(
                _JOBS.c.id, _JOBS.c.kind, _JOBS.c.payload, _JOBS.c.attempts, _JOBS.c.max_attempts
            )
        )

        def work(connection: Connection) -> Claim | None:
            row = connection.execute(statement).first()
            if row is None:
                return None
            return Claim(str(row[0]), str(row[1]), dict(row[2]), int(row[3]), int(row[4]), worker)

        return await self.db.write_core(work)

    def _held(self, claim: Claim) -> Any:
        return and_(
            _JOBS.c.id == claim.id, _JOBS.c.locked_by == claim.worker, _JOBS.c.status == "running"
        )

    async def renew(self, claim: Claim) -> bool:
        """Extend the lease; False when the job is no longer this worker's."""
        now = self.clock.now()
        statement = (
            update(_JOBS)
            .where(self._held(claim))
            .values(locked_until=now + timedelta(seconds=self.lease_s), updated_at=now)
        )
        return bool(await self.db.write_core(lambda c: c.execute(statement).rowcount == 1))

    async def finish(
        self,
        claim: Claim,
        work: Callable[[Session], T] | None = None,
        *,
        status: str = "done",
        error: str | None = None,
    ) -> T | None:
        """Run ``work`` and end the job (``done`` or ``failed``) in one transaction; raises
        :class:`LeaseLostError` (and commits nothing) if the job is no longer this worker's."""

        def run(session: Session) -> T | None:
            ended = session.execute(
                update(_JOBS)
                .where(self._held(claim))
                .values(
                    status=status,
                    locked_by=None,
                    locked_until=None,
                    last_error=error[:ERROR_CHARS] if error else None,
                    updated_at=self.clock.now(),
                )
            )
            if ended.rowcount != 1:  # type: ignore[attr-defined]
                raise LeaseLostError(claim.id)
            return work(session) if work is not None else None

        return await self.db.write(run)

    async def reschedule(
        self, claim: Claim, work: Callable[[Session], T], *, delay_s: float, error: str
    ) -> T:
        """Run ``work`` and give the job back to the queue, due again in ``delay_s``, in one
        transaction; raises :class:`LeaseLostError` (committing nothing) like ``finish``."""

        def run(session: Session) -> T:
            requeued = session.execute(self._requeue(claim, error, delay_s))
            if requeued.rowcount != 1:  # type: ignore[attr-defined]
                raise LeaseLostError(claim.id)
            return work(session)

        return await self.db.write(run)

    def _requeue(self, claim: Claim, error: str, delay_s: float) -> Any:
        now = self.clock.now()
        return (
            update(_JOBS)
            .where(self._held(claim))
            .values(
                status="queued",
                locked_by=None,
                locked_until=None,
                run_after=now + timedelta(seconds=delay_s),
                last_error=error[:ERROR_CHARS],
                updated_at=now,
            )
        )

    async def retry(self, claim: Claim, error: str, delay_s: float) -> bool:
        """Give the job back to the queue, due again in ``delay_s``."""
        statement = self._requeue(claim, error, delay_s)
        return bool(await self.db.write_core(lambda c: c.execute(statement).rowcount == 1))

    async def counts(self) -> dict[str, int]:
        """How many jobs are in each status (for operators and tests)."""
        statement = select(_JOBS.c.status, func.count()).group_by(_JOBS.c.status)
        rows = await self.db.read_core(lambda c: c.execute(statement).all())
        return {str(status): int(count) for status, count in rows}
