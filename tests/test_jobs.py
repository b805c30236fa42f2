"""Durable background jobs (``avatarium.jobs``): claims that never hand one job to two
workers, leases that a killed worker loses, retries, giving up — and a document whose
ingestion is killed with SIGKILL finishing after the restart. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from avatarium.jobs.queue import JobQueue, LeaseLostError, enqueue
from avatarium.jobs.runner import JobRunner, RunningJob
from avatarium.storage.db import Database
from tests.documents import docx_bytes
from tests.support import Api
from tests.test_limits_process import start
from tests.test_limits_workers import cli
from tests.waiting import wait_until


def kind() -> str:
    return f"test.{secrets.token_hex(4)}"  # the app's own worker never claims these


async def add_jobs(api: Api, job_kind: str, count: int, max_attempts: int = 3) -> None:
    def work(session: Any) -> None:
        for n in range(count):
            enqueue(session, api.clock, job_kind, {"n": n}, max_attempts=max_attempts)

    await api.state.db.write(work)


async def job_rows(api: Api, job_kind: str) -> list[Any]:
    return list(
        await api.state.db.read_core(
            lambda c: c.execute(
                text("SELECT status, attempts, last_error FROM jobs WHERE kind = :k"),
                {"k": job_kind},
            ).all()
        )
    )


async def test_concurrent_workers_never_claim_the_same_job(api: Api) -> None:
    job_kind = kind()
    await add_jobs(api, job_kind, 40)
    # Four workers, each with its own connection pool, as four processes would have.
    databases = [Database(api.state.db.url) for _ in range(3)]
    queues = [JobQueue(db, api.clock, lease_s=30) for db in [api.state.db, *databases]]
    claimed: list[tuple[str, str]] = []

    async def worker(queue: JobQueue, name: str) -> None:
        while (claim := await queue.claim(name, [job_kind])) is not None:
            claimed.append((claim.id, name))
            await asyncio.sleep(0)  # let the others in between claim and finish
            await queue.finish(claim)

    try:
        await asyncio.gather(*(worker(q, f"worker-{i}") for i, q in enumerate(queues)))
    finally:
        for db in databases:
            await db.dispose()
    ids = [job_id for job_id, _ in claimed]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert len({name for _, name in claimed}) > 1  # the work really was shared
    assert [row[0] for row in await job_rows(api, job_kind)] == ["done"] * 40


async def test_a_lapsed_lease_passes_the_job_on_and_voids_the_first_worker(api: Api) -> None:
    job_kind = kind()
    await add_jobs(api, job_kind, 1)
    queue = JobQueue(api.state.db, api.clock, lease_s=5)
    first = await queue.claim("first", [job_kind])
    assert first is not None and first.attempts == 1
    assert await queue.claim("second", [job_kind]) is None  # held
    assert await queue.renew(first)
    api.clock.advance(6)  # the first worker died: no renewal
    second = await queue.claim("second", [job_kind])
    assert second is not None and second.id == first.id and second.attempts == 2
    assert not await queue.renew(first)
    with pytest.raises(LeaseLostError):
        await queue.finish(first, lambda session: session.execute(text("SELECT 1")))
    await queue.finish(second)
    assert [tuple(r) for r in await job_rows(api, job_kind)] == [("done", 2, None)]


class Flaky:
    """A handler that fails ``failures`` times, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.runs = 0
        self.gave_up: str | None = None

    async def run(self, job: RunningJob) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise RuntimeError(f"boom {self.runs}")

    async def give_up(self, job: RunningJob, error: str) -> None:
        self.gave_up = error
        await job.fail(error)


async def test_a_failing_job_is_retried_with_backoff_then_given_up(api: Api) -> None:
    job_kind = kind()
    await add_jobs(api, job_kind, 1)
    handler = Flaky(failures=10)
    runner = JobRunner(JobQueue(api.state.db, api.clock, lease_s=30), {job_kind: handler},
                       poll_s=1)  # fmt: skip
    assert await runner.run_once()  # attempt 1 fails: due again in 2 s
    assert not await runner.run_once()
    assert (await job_rows(api, job_kind))[0][0] == "queued"
    api.clock.advance(2.1)
    assert await runner.run_once()  # attempt 2 fails: due again in 4 s
    api.clock.advance(2.1)
    assert not await runner.run_once()
    api.clock.advance(2.1)
    assert await runner.run_once()  # attempt 3, the last
    assert handler.runs == 3 and handler.gave_up == "RuntimeError: boom 3"
    assert [tuple(r) for r in await job_rows(api, job_kind)] == [
        ("failed", 3, "RuntimeError: boom 3")
    ]


async def test_a_job_that_recovers_is_done(api: Api) -> None:
    job_kind = kind()
    await add_jobs(api, job_kind, 1)
    handler = Flaky(failures=1)
    runner = JobRunner(JobQueue(api.state.db, api.clock, lease_s=30), {job_kind: handler},
                       poll_s=1)  # fmt: skip
    assert await runner.run_once()
    api.clock.advance(2.1)
    assert await runner.run_once()
    assert handler.gave_up is None
    assert [tuple(r)[:2] for r in await job_rows(api, job_kind)] == [("done", 2)]


async def test_a_job_whose_worker_keeps_dying_is_given_up(api: Api) -> None:
    job_kind = kind()
    await add_jobs(api, job_kind, 1, max_attempts=2)
    queue = JobQueue(api.state.db, api.clock, lease_s=5)
    for _ in range(2):  # two workers claim it and die without a word
        assert await queue.claim("doomed", [job_kind]) is not None
        api.clock.advance(6)
    handler = Flaky(failures=0)
    assert await JobRunner(queue, {job_kind: handler}, poll_s=1).run_once()
    assert handler.runs == 0 and handler.gave_up is not None
    assert "stopped unexpectedly" in handler.gave_up
    assert (await job_rows(api, job_kind))[0][0] == "failed"


def db_rows(url: str, sql: str, **params: Any) -> list[Any]:
    async def run() -> list[Any]:
        db = Database(url)
        try:
            return list(await db.read_core(lambda c: c.execute(text(sql), params).all()))
        finally:
            await db.dispose()

    return asyncio.run(run())


@pytest.mark.e2e
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_an_ingestion_killed_midway_finishes_after_a_restart(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = {
        **os.environ,
        "AVATARIUM_DATA_DIR": str(tmp_path),
        "AVATARIUM_JOB_LEASE_S": "2",
        "AVATARIUM_SECRET_KEY": "jobs-crash-secret",
        "AVATARIUM_LOG_LEVEL": "warning",
    }
    env.pop("AVATARIUM_REDIS_URL", None)
    env.pop("AVATARIUM_DATABASE_URL", None)
    url = f"sqlite:///{tmp_path / 'avatarium.db'}"
    if database == "postgresql":
        url = env["AVATARIUM_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    cli(env, "migrate")
    key = json.loads(
        cli(env, "keys", "create", "--account", f"jobs-{os.getpid()}-{time.time_ns()}",
            "--mode", "live", "--tier", "enterprise", "--json")
    )["key"]  # fmt: skip
    auth = {"Authorization": f"Bearer {key}"}
    # About 40 chunks: several seconds of embedding, so the kill lands in the middle.
    paragraph = "The Brannock depot stores spare lamps, cables and tools for the night crew. " * 9
    document = docx_bytes([(f"Depot section {n}", [paragraph]) for n in range(40)])
    first, base = start(env)
    try:
        avatar = {"name": "Depot", "tts_provider": "browser"}
        avatar_id = httpx.post(f"{base}/v1/avatars", headers=auth, json=avatar).json()["id"]
        added = httpx.post(
            f"{base}/v1/avatars/{avatar_id}/knowledge", headers=auth, data={"type": "document"},
            files={"file": ("depot.docx", document, "application/octet-stream")},
        )  # fmt: skip
        assert added.status_code == 200, added.text
        knowledge_id = added.json()["id"]
        wait_until(
            lambda: db_rows(url, "SELECT status FROM jobs WHERE status = 'running'"),
            30, "the ingestion job to start",
        )  # fmt: skip
        time.sleep(1.5)  # into the embedding
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    item = db_rows(url, "SELECT status, chunks FROM knowledge WHERE id = :k", k=knowledge_id)
    assert [tuple(r) for r in item] == [("processing", 0)], item
    chunks = "SELECT count(*) FROM knowledge_chunks WHERE knowledge_id = :k"
    assert db_rows(url, chunks, k=knowledge_id)[0][0] == 0
    second, base = start(env)
    try:

        def ready() -> dict[str, Any] | None:
            body: dict[str, Any] = httpx.get(
                f"{base}/v1/avatars/{avatar_id}/knowledge/{knowledge_id}", headers=auth
            ).json()
            return body if body["status"] != "processing" else None

        body = wait_until(ready, 120, "the ingestion to finish after the restart", interval=0.3)
        assert body["status"] == "ready" and body["chunks"] >= 30, body
        positions = db_rows(
            url, "SELECT position FROM knowledge_chunks WHERE knowledge_id = :k", k=knowledge_id
        )
        assert sorted(p[0] for p in positions) == list(range(body["chunks"]))  # one copy
        jobs = db_rows(url, "SELECT status, attempts, payload FROM jobs")
        mine = [tuple(r[:2]) for r in jobs if knowledge_id in str(r[2])]
        assert mine == [("done", 2)]  # killed once, finished by the next process
    finally:
        second.terminate()
        second.wait(timeout=20)
