"""Concurrency slots with real server processes: a client that hangs up frees its slot at
once; a worker killed with SIGKILL frees its slots when their lease expires."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes import openai
from tests.fakes.server import SLOW_SECONDS, FakeServer, free_port
from tests.test_limits import REDIS_URL
from tests.test_limits_workers import cli
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
# Long enough that the restarted server answers before the dead worker's lease lapses: a
# start took 3.95 s on a 2-core machine running the suite's other worker beside it.
LEASE_S = 10.0


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer(openai.build).start()
    yield server
    server.stop()


def start(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "avatarium.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: httpx.get(f"{base}/health", timeout=1).status_code == 200,
        60,
        "the server to answer /health",
    )
    return process, base


def prepare(tmp_path: Path, fake: FakeServer) -> tuple[dict[str, str], str, str]:
    env = {
        **os.environ,
        "AVATARIUM_DATA_DIR": str(tmp_path),
        "AVATARIUM_REDIS_URL": REDIS_URL,
        "AVATARIUM_OPENAI_API_KEY": openai.API_KEY,
        "AVATARIUM_OPENAI_BASE_URL": f"{fake.url}/v1",
        "AVATARIUM_PROVIDER_TIMEOUT_S": "10",
        "AVATARIUM_LIMITER_LEASE_TTL_S": str(LEASE_S),
        "AVATARIUM_SECRET_KEY": "process-test-secret",
        "AVATARIUM_LOG_LEVEL": "warning",
    }
    env.pop("AVATARIUM_DATABASE_URL", None)
    key = json.loads(
        cli(env, "keys", "create", "--account", "solo", "--mode", "live", "--tier", "pro", "--json")
    )["key"]
    cli(env, "accounts", "set-limits", "solo", "--concurrent", "1")
    return env, key, "solo"


def conversation(base: str, key: str) -> str:
    created = httpx.post(
        f"{base}/v1/conversations",
        headers={"Authorization": f"Bearer {key}"},
        json={"avatar_id": "aria-001", "ai_provider": "openai", "tts_provider": "browser"},
    )
    created.raise_for_status()
    return str(created.json()["id"])


def test_a_client_that_hangs_up_frees_its_slot_at_once(tmp_path: Path, fake: FakeServer) -> None:
    env, key, _ = prepare(tmp_path, fake)
    server, base = start(env)
    try:
        conversation_id = conversation(base, key)
        fake.state.faults.append("slow")  # the provider takes 3 s
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{base}/v1/conversations/{conversation_id}/messages",
                headers={"Authorization": f"Bearer {key}"},
                json={"content": "hello?"},
                timeout=0.5,
            )
        hung_up = time.monotonic()
        response = None
        while time.monotonic() - hung_up < SLOW_SECONDS - 1:
            response = httpx.get(
                f"{base}/v1/conversations", headers={"Authorization": f"Bearer {key}"}
            )
            if response.status_code == 200:
                break
            time.sleep(0.05)
        assert response is not None and response.status_code == 200  # long before 3 s
        time.sleep(SLOW_SECONDS)  # the provider answers now; nobody listens
        stored = httpx.get(
            f"{base}/v1/conversations/{conversation_id}", headers={"Authorization": f"Bearer {key}"}
        ).json()
        assert stored["message_count"] == 0
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_a_killed_worker_frees_its_slot_when_the_lease_expires(
    tmp_path: Path, fake: FakeServer
) -> None:
    env, key, _ = prepare(tmp_path, fake)
    first, base = start(env)
    conversation_id = conversation(base, key)
    fake.state.faults.append("slow")

    def send() -> None:
        with contextlib.suppress(httpx.HTTPError):  # its server is about to be killed
            httpx.post(
                f"{base}/v1/conversations/{conversation_id}/messages",
                headers={"Authorization": f"Bearer {key}"},
                json={"content": "hi"},
                timeout=10,
            )

    sending = threading.Thread(target=send)
    sending.daemon = True
    sending.start()
    # The request holds its slot and waits on the provider.
    wait_until(lambda: fake.state.requests, 10, "the send to reach the provider")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    killed = time.monotonic()
    second, base = start(env)
    try:
        statuses = []
        while time.monotonic() - killed < LEASE_S + 3:
            status = httpx.get(
                f"{base}/v1/conversations", headers={"Authorization": f"Bearer {key}"}
            ).status_code
            statuses.append((round(time.monotonic() - killed, 2), status))
            if status == 200:
                break
            time.sleep(0.1)
        assert statuses[0][1] == 429, statuses  # the dead worker's slot is still held
        assert statuses[-1][1] == 200, statuses
        assert statuses[-1][0] <= LEASE_S + 1.0, statuses  # freed within the lease expiry
    finally:
        second.terminate()
        second.wait(timeout=20)
