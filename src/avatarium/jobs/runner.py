"""The worker loop: claims jobs, runs their handlers with the lease kept alive, retries
what failed by accident, and gives up (telling the handler) after the last attempt."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session

from avatarium.core.ids import random_base62
from avatarium.jobs.queue import Claim, JobQueue, LeaseLostError

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_BASE_S = 2.0


class RunningJob:
    """What a handler sees of its job: the payload, and the one way to commit its result."""

    def __init__(self, queue: JobQueue, claim: Claim) -> None:
        self._queue = queue
        self.claim = claim
        self.finished = False

    @property
    def payload(self) -> dict[str, object]:
        return self.claim.payload

    async def finish(self, work: Callable[[Session], T] | None = None) -> T | None:
        """Commit ``work`` and mark the job done, atomically."""
        result = await self._queue.finish(self.claim, work)
        self.finished = True
        return result

    async def fail(self, error: str, work: Callable[[Session], T] | None = None) -> T | None:
        """Commit ``work`` and mark the job failed with ``error``, atomically."""
        result = await self._queue.finish(self.claim, work, status="failed", error=error)
        self.finished = True
        return result

    async def again_in(self, delay_s: float, error: str, work: Callable[[Session], T]) -> T:
        """Commit ``work`` and run the job again in ``delay_s``, atomically (a handler that
        keeps its own retry schedule)."""
        result = await self._queue.reschedule(self.claim, work, delay_s=delay_s, error=error)
        self.finished = True
        return result


class JobHandler(Protocol):
    """The work behind one job kind."""

    async def run(self, job: RunningJob) -> None:
        """Do the work and commit it with ``job.finish`` (or ``job.fail`` for a problem
        the input has: retrying would not help). Raising means "try again later"."""

    async def give_up(self, job: RunningJob, error: str) -> None:
        """The last attempt failed: record why, with ``job.fail``."""


def worker_name() -> str:
    """Unique per process: host, pid and a random tail (pids repeat across restarts)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{random_base62(6)}"


class JobRunner:
    """Runs jobs of the kinds it has handlers for, up to ``concurrency`` at a time."""

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, JobHandler],
        *,
        poll_s: float,
        concurrency: int = 1,
        name: str = "jobs",
    ) -> None:
        self.queue = queue
        self.handlers = dict(handlers)
        self.poll_s = poll_s
        self.concurrency = concurrency
        self.name = name
        self.worker = worker_name()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[bool]] = set()

    def wake(self) -> None:
        """A job was just enqueued here: look now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"avatarium-{self.name}")

    async def aclose(self) -> None:
        """Stop after the current jobs' current steps (an unfinished job runs again later:
        its lease runs out)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _loop(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        while True:
            await slots.acquire()
            self._wake.clear()  # before looking: a wake while we look is not lost
            try:
                claim = await self.queue.claim(self.worker, list(self.handlers))
            except asyncio.CancelledError:
                slots.release()
                raise
            except Exception:  # the database was away: keep the loop, try again later
                log.exception("job loop error")
                claim = None
            if claim is None:
                slots.release()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                continue
            task = asyncio.create_task(self._run_claimed(claim))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda _task: slots.release())

    async def _run_claimed(self, claim: Claim) -> bool:
        try:
            return await self._run(claim)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: unexpected error", claim.id)
            return True

    async def run_once(self) -> bool:
        """Claim and run one job; False when none was due."""
        claim = await self.queue.claim(self.worker, list(self.handlers))
        if claim is None:
            return False
        return await self._run(claim)

    async def _run(self, claim: Claim) -> bool:
        job = RunningJob(self.queue, claim)
        handler = self.handlers[claim.kind]
        if claim.attempts > claim.max_attempts:
            # Claimed again after its lease ran out, more times than it may run: its worker
            # died each time (killed, or out of memory), so this input is not tried again.
            await self._give_up(handler, job, "processing stopped unexpectedly, several times")
            return True
        keeper = asyncio.create_task(self._keep_lease(claim))
        try:
            await handler.run(job)
            if not job.finished:
                await job.finish()
        except LeaseLostError:
            log.warning("job %s: lease lost; another worker has it", claim.id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if claim.attempts >= claim.max_attempts:
                log.exception("job %s (%s) failed for good", claim.id, claim.kind)
                await self._give_up(handler, job, reason)
            else:
                delay = RETRY_BASE_S * 2 ** (claim.attempts - 1)
                log.warning("job %s (%s) failed, retrying in %.0f s: %s",
                            claim.id, claim.kind, delay, reason)  # fmt: skip
                await self.queue.retry(claim, reason, delay)
        finally:
            keeper.cancel()
        return True

    async def _give_up(self, handler: JobHandler, job: RunningJob, reason: str) -> None:
        try:
            await handler.give_up(job, reason)
            if not job.finished:
                await job.fail(reason)
        except LeaseLostError:
            log.warning("job %s: lease lost while giving up", job.claim.id)

    async def _keep_lease(self, claim: Claim) -> None:
        while True:
            await asyncio.sleep(self.queue.lease_s / 3)
            try:
                if not await self.queue.renew(claim):
                    log.warning("job %s: lease could not be renewed", claim.id)
                    return
            except Exception:
                log.exception("job %s: lease renewal failed", claim.id)
