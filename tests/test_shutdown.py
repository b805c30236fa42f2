"""SIGTERM: the server stops accepting connections, lets a streamed reply that is under way
finish (its ``done`` event arrives and the reply is stored), then exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.server_process import free_port
from tests.test_jobs import db_rows
from tests.test_limits_workers import cli
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def start_server(tmp_path: Path, account: str) -> tuple[subprocess.Popen[bytes], str, str]:
    """A server process with a slow-enough embedded model, its base URL and a key."""
    env = {**os.environ, "AVATARIUM_DATA_DIR": str(tmp_path), "AVATARIUM_LOG_LEVEL": "warning",
           "AVATARIUM_LOCAL_MAX_TOKENS": "96", "AVATARIUM_SHUTDOWN_GRACE_S": "30"}  # fmt: skip
    env.pop("AVATARIUM_DATABASE_URL", None)
    env.pop("AVATARIUM_REDIS_URL", None)
    key = json.loads(
        cli(env, "keys", "create", "--account", account, "--tier", "enterprise", "--json")
    )["key"]
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "avatarium.cli", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{base}/health/live").status_code == 200, 60, "the server")
    except BaseException:
        process.kill()
        raise
    return process, base, key


def test_sigterm_lets_a_streamed_reply_finish(tmp_path: Path) -> None:
    process, base, key = start_server(tmp_path, "shutdown")
    auth = {"Authorization": f"Bearer {key}"}
    try:
        conversation = httpx.post(
            f"{base}/v1/conversations", headers=auth, json={"avatar_id": "aria-001"}
        ).json()
        events: list[str] = []
        body = {"content": "Tell me a long story about a lighthouse keeper.", "stream": True}
        with httpx.stream(
            "POST", f"{base}/v1/conversations/{conversation['id']}/messages",
            headers=auth, json=body, timeout=60,
        ) as response:  # fmt: skip
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
                    if len(events) == 1:  # the reply is under way: ask the server to stop
                        process.send_signal(signal.SIGTERM)
        assert events[-1] == "done", events
        assert "error" not in events
        # The server stopped taking connections, and exits once the stream is over (uvicorn
        # re-raises the signal it caught once it has shut down, as a killed process would).
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/health/live", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
    # The reply was stored, with the user's message.
    roles = db_rows(
        f"sqlite:///{tmp_path / 'avatarium.db'}",
        "SELECT role FROM messages WHERE conversation_id = :c ORDER BY seq",
        c=conversation["id"],
    )
    assert [row[0] for row in roles][-2:] == ["user", "assistant"]


def test_sigterm_lets_a_websocket_turn_finish_then_closes_with_1012(tmp_path: Path) -> None:
    import websockets.sync.client as ws_client
    from websockets.exceptions import ConnectionClosed

    process, base, key = start_server(tmp_path, "sockets")
    port = base.rsplit(":", 1)[1]
    try:
        conversation = httpx.post(
            f"{base}/v1/conversations", headers={"Authorization": f"Bearer {key}"},
            json={"avatar_id": "aria-001"},
        ).json()  # fmt: skip
        url = f"ws://127.0.0.1:{port}/v1/conversations/{conversation['id']}/ws"
        kinds: list[str] = []
        with ws_client.connect(
            url, additional_headers={"Authorization": f"Bearer {key}"}, open_timeout=10
        ) as socket:
            assert json.loads(socket.recv(timeout=10))["type"] == "ready"
            socket.send(json.dumps({"type": "message", "content": "Tell me about the sea."}))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    frame = json.loads(socket.recv(timeout=30))
                    kinds.append(frame["type"])
                    if len(kinds) == 1:
                        process.send_signal(signal.SIGTERM)  # mid-turn
        assert "done" in kinds and "error" not in kinds, sorted(set(kinds))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
