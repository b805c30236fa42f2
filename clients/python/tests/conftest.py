"""A real server process for the client's tests, with an OpenAI-compatible vendor fake behind
it (the server's own test fakes), and helpers: keys from the CLI, a TCP proxy that counts
attempts and can lose an answer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))  # the server's vendor fakes live in its tests package

from tests.fakes import openai  # noqa: E402
from tests.fakes.server import FakeServer  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    env: dict[str, str]
    vendor: FakeServer

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "avatarium.cli", *args],
            env=self.env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    def key(self, account: str, *, mode: str = "test", tier: str = "enterprise") -> str:
        out = self.cli("keys", "create", "--account", account, "--mode", mode, "--tier", tier,
                       "--json")  # fmt: skip
        key: str = json.loads(out)["key"]
        return key


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    vendor = FakeServer(openai.build).start()
    data_dir = tempfile.mkdtemp(prefix="avatarium-client-")
    port = free_port()
    env = {
        **os.environ,
        "AVATARIUM_DATA_DIR": data_dir,
        "AVATARIUM_LOCAL_MAX_TOKENS": "24",
        "AVATARIUM_OPENAI_API_KEY": openai.API_KEY,
        "AVATARIUM_OPENAI_BASE_URL": f"{vendor.url}/v1",
        # The server gives up at once, so the client's own retries are what is tested.
        "AVATARIUM_PROVIDER_MAX_RETRIES": "0",
        "AVATARIUM_LOG_LEVEL": "warning",
    }
    env.pop("AVATARIUM_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "avatarium.cli", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("the server did not start")
        time.sleep(0.2)
    yield Server(url, env, vendor)
    process.terminate()
    process.wait(timeout=20)
    vendor.stop()


@pytest.fixture
def vendor(server: Server) -> Iterator[FakeServer]:
    server.vendor.state.reset()
    yield server.vendor
    server.vendor.state.reset()


def _read_message(conn: socket.socket, buffer: bytearray) -> bytes | None:
    """One HTTP/1.1 message (headers, then a Content-Length body) from ``conn``."""
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None
        buffer += data
    head_end = buffer.index(b"\r\n\r\n") + 4
    length = 0
    for line in bytes(buffer[:head_end]).split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(buffer) < head_end + length:
        data = conn.recv(65536)
        if not data:
            return None
        buffer += data
    message = bytes(buffer[: head_end + length])
    del buffer[: head_end + length]
    return message


class Proxy:
    """A TCP proxy in front of the server: it records each request line (so tests can count
    attempts) and can lose the answer to a request after the server has processed it."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.requests: list[str] = []
        self.lose: Callable[[str], bool] | None = None  # once: drop this request's answer
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self._upstream)
        from_client, from_upstream = bytearray(), bytearray()
        try:
            while (request := _read_message(client, from_client)) is not None:
                line = request.split(b"\r\n", 1)[0].decode()
                self.requests.append(line)
                upstream.sendall(request)
                answer = _read_message(upstream, from_upstream)
                if answer is None:
                    return
                if self.lose is not None and self.lose(line):
                    self.lose = None
                    return  # the server did the work; the client never hears of it
                client.sendall(answer)
        finally:
            client.close()
            upstream.close()

    def count(self, fragment: str) -> int:
        return sum(1 for line in self.requests if fragment in line)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def proxy(server: Server) -> Iterator[Proxy]:
    proxy = Proxy(server.url)
    yield proxy
    proxy.close()
