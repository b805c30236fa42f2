"""A send killed mid-flight does not block its retry: the Idempotency-Key claim's lease
lapses once the dead worker stops renewing it, so the client's retry (same key) goes through
within seconds of the restart and the turn is stored exactly once. Real server processes,
SIGKILL, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.fakes import openai
from tests.fakes.server import FakeServer
from tests.test_limits_process import fake, start
from tests.test_limits_workers import cli
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
LEASE_S = 2.0
__all__ = ["fake"]  # the fixture, shared with the other process tests


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_retry_after_a_crash_is_stored_exactly_once(
    database: str, tmp_path: Path, fake: FakeServer, request: pytest.FixtureRequest
) -> None:
    env = {
        **os.environ,
        "AVATARIUM_DATA_DIR": str(tmp_path),
        "AVATARIUM_OPENAI_API_KEY": openai.API_KEY,
        "AVATARIUM_OPENAI_BASE_URL": f"{fake.url}/v1",
        "AVATARIUM_PROVIDER_TIMEOUT_S": "10",
        "AVATARIUM_IDEMPOTENCY_LEASE_S": str(LEASE_S),
        "AVATARIUM_SECRET_KEY": "crash-test-secret",
        "AVATARIUM_LOG_LEVEL": "warning",
    }
    env.pop("AVATARIUM_REDIS_URL", None)
    env.pop("AVATARIUM_DATABASE_URL", None)
    if database == "postgresql":
        env["AVATARIUM_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    cli(env, "migrate")
    key = json.loads(
        cli(env, "keys", "create", "--account", f"crash-{os.getpid()}-{time.time_ns()}",
            "--mode", "live", "--tier", "pro", "--json")
    )["key"]  # fmt: skip
    auth = {"Authorization": f"Bearer {key}", "Idempotency-Key": "retry-me-once"}
    first, base = start(env)
    try:
        created = httpx.post(
            f"{base}/v1/conversations",
            headers={"Authorization": f"Bearer {key}"},
            json={"avatar_id": "aria-001", "ai_provider": "openai", "tts_provider": "browser"},
        )
        conversation_id = created.json()["id"]
        path = f"/v1/conversations/{conversation_id}/messages"
        fake.state.faults.append("slow")  # the provider takes 3 s: the send is in flight

        def doomed_send() -> None:
            with contextlib.suppress(httpx.HTTPError):  # its server is about to be killed
                httpx.post(f"{base}{path}", headers=auth, json={"content": "hi"}, timeout=10)

        threading.Thread(target=doomed_send, daemon=True).start()
        wait_until(lambda: fake.state.requests, 10, "the send to reach the provider")
        time.sleep(LEASE_S)  # long enough that the lease has been renewed at least once
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    second, base = start(env)
    restarted = time.monotonic()
    try:
        answers: list[tuple[float, int]] = []

        def retry() -> httpx.Response | None:
            response = httpx.post(f"{base}{path}", headers=auth, json={"content": "hi"})
            answers.append((round(time.monotonic() - restarted, 2), response.status_code))
            if response.status_code == 409:
                assert response.json()["error"]["code"] == "request_in_progress"
                assert 1 <= int(response.headers["retry-after"]) <= LEASE_S + 1
                return None
            return response

        reply = wait_until(retry, 5, "the retry to go through", interval=0.2)
        assert reply.status_code == 200, (reply.text, answers)
        assert answers[-1][0] <= 5.0, answers
        stored = httpx.get(f"{base}{path}", headers={"Authorization": f"Bearer {key}"}).json()[
            "data"
        ]
        assert [m["role"] for m in stored] == ["user", "assistant"], stored
        assert stored[1]["id"] == reply.json()["id"]
        # And the key now replays that one stored answer.
        again = httpx.post(f"{base}{path}", headers=auth, json={"content": "hi"})
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json()["id"] == reply.json()["id"]
    finally:
        second.terminate()
        second.wait(timeout=20)
