"""The real server process for end-to-end tests, started the way `make run` starts it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server process with its output collected."""

    def __init__(self, data_dir: Path, port: int, env: dict[str, str] | None = None) -> None:
        env = {
            **os.environ,
            "AVATARIUM_DATA_DIR": str(data_dir),
            "AVATARIUM_LOCAL_MAX_TOKENS": "40",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        env.pop("AVATARIUM_DATABASE_URL", None)
        self.base = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "avatarium.cli", "serve", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def first_key(self) -> str:
        """The test key the first start printed (its account is on the free tier)."""
        return next(w for w in self.output.split() if w.startswith("av_test_"))

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.output}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready:\n{self.output}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
