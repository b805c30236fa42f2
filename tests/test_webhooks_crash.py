"""Webhook delivery across processes: a SIGKILL between recording an event and delivering
it loses nothing, and two server processes sharing PostgreSQL never deliver one attempt
twice (counted at the receiver)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.fakes.receiver import start_receiver
from tests.test_jobs import db_rows
from tests.test_limits_process import start
from tests.test_limits_workers import cli
from tests.waiting import wait_until


def environment(tmp_path: Path, request: pytest.FixtureRequest, database: str) -> dict[str, str]:
    env = {
        **os.environ,
        "AVATARIUM_DATA_DIR": str(tmp_path),
        "AVATARIUM_JOB_LEASE_S": "2",
        "AVATARIUM_JOB_POLL_S": "0.2",
        "AVATARIUM_SECRET_KEY": "webhook-crash-secret",
        "AVATARIUM_WEBHOOK_ALLOW_PRIVATE": "true",
        "AVATARIUM_LOG_LEVEL": "warning",
    }
    env.pop("AVATARIUM_REDIS_URL", None)
    env.pop("AVATARIUM_DATABASE_URL", None)
    if database == "postgresql":
        env["AVATARIUM_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    cli(env, "migrate")
    return env


def live_key(env: dict[str, str]) -> dict[str, str]:
    key = json.loads(
        cli(env, "keys", "create", "--account", f"hooks-{os.getpid()}-{time.time_ns()}",
            "--mode", "live", "--tier", "enterprise", "--json")
    )["key"]  # fmt: skip
    return {"Authorization": f"Bearer {key}"}


def database_url(env: dict[str, str], tmp_path: Path) -> str:
    return env.get("AVATARIUM_DATABASE_URL") or f"sqlite:///{tmp_path / 'avatarium.db'}"


@pytest.mark.e2e
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_sigkill_between_recording_and_delivery_loses_nothing(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    receiver, received = start_receiver()
    env = environment(tmp_path, request, database)
    auth = live_key(env)
    # The first delivery is held open: the server is killed while it waits for the answer.
    received.scripts["/crm"].append("hold")
    first, base = start(env)
    try:
        hook = httpx.post(
            f"{base}/v1/webhooks", headers=auth,
            json={"url": f"{receiver.url}/crm", "events": ["conversation.started"]},
        ).json()  # fmt: skip
        created = httpx.post(f"{base}/v1/conversations", headers=auth,
                             json={"avatar_id": "aria-001", "tts_provider": "browser"})  # fmt: skip
        assert created.status_code == 200, created.text
        wait_until(lambda: received.at("/crm"), 20, "the first delivery to reach the receiver")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    url = database_url(env, tmp_path)
    assert db_rows(url, "SELECT count(*) FROM webhook_deliveries")[0][0] == 0  # none finished
    second, base = start(env)
    try:
        wait_until(lambda: len(received.at("/crm")) >= 2, 30, "the delivery after the restart")
        retried = received.at("/crm")[1]
        event = json.loads(retried.body)
        assert event["type"] == "conversation.started"
        assert event["data"]["conversation"]["id"] == created.json()["id"]
        assert retried.headers["webhook-id"] == received.at("/crm")[0].headers["webhook-id"]

        def logged() -> list[dict[str, object]]:
            rows: list[dict[str, object]] = httpx.get(
                f"{base}/v1/webhooks/{hook['id']}/deliveries", headers=auth
            ).json()["data"]
            return rows

        rows = wait_until(logged, 10, "the delivery in the log")
        # The killed attempt counts: this one is the second.
        assert [(r["attempt"], r["status_code"], r["outcome"]) for r in rows] == [
            (2, 200, "succeeded")
        ]
    finally:
        second.terminate()
        second.wait(timeout=20)
        receiver.stop()


@pytest.mark.e2e
def test_two_servers_sharing_postgresql_never_deliver_an_attempt_twice(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    receiver, received = start_receiver()
    env = environment(tmp_path, request, "postgresql")
    auth = live_key(env)
    servers = [start({**env, "AVATARIUM_DATA_DIR": str(tmp_path / name)}) for name in "ab"]
    try:
        bases = [base for _process, base in servers]
        hook = httpx.post(
            f"{bases[0]}/v1/webhooks", headers=auth,
            json={"url": f"{receiver.url}/count", "events": ["*"]},
        ).json()  # fmt: skip
        sent = 60
        for n in range(sent):  # alternate: each server's workers see every event as due
            answer = httpx.post(f"{bases[n % 2]}/v1/webhooks/{hook['id']}/test", headers=auth)
            assert answer.status_code == 200, answer.text
        wait_until(
            lambda: len({d.headers["webhook-id"] for d in received.at("/count")}) == sent,
            30, f"{sent} distinct events at the receiver",
        )  # fmt: skip
        time.sleep(1.0)  # any duplicate would arrive by now
        counts = Counter(d.headers["webhook-id"] for d in received.at("/count"))
        assert max(counts.values()) == 1, counts.most_common(3)
        rows = db_rows(
            env["AVATARIUM_DATABASE_URL"],
            "SELECT attempt, count(*) FROM webhook_deliveries WHERE webhook_id = :h "
            "GROUP BY attempt", h=hook["id"],
        )  # fmt: skip
        assert [tuple(r) for r in rows] == [(1, sent)]
    finally:
        for process, _base in servers:
            process.terminate()
            process.wait(timeout=20)
        receiver.stop()
