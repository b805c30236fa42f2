"""What the benchmarks share: percentiles, the CLI, and starting a server process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def cli(env: dict[str, str], *args: str) -> str:
    """Run ``avatarium ARGS`` and return what it printed."""
    return subprocess.run(
        [sys.executable, "-m", "avatarium.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def serve(env: dict[str, str], port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    """A server process, returned once /health answers (and every worker had time)."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "avatarium.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                if workers > 1:
                    time.sleep(2)
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the server did not start")


def instant_env(data_dir: str, fake_url: str, **extra: str) -> dict[str, str]:
    """A server environment whose OpenAI (and Anthropic) is the instant loopback vendor."""
    return {
        **os.environ,
        "AVATARIUM_DATA_DIR": data_dir,
        "AVATARIUM_LOG_LEVEL": "warning",
        "AVATARIUM_OPENAI_API_KEY": "sk-bench",
        "AVATARIUM_OPENAI_BASE_URL": f"{fake_url}/v1",
        "AVATARIUM_ANTHROPIC_API_KEY": "sk-ant-bench",
        "AVATARIUM_ANTHROPIC_BASE_URL": fake_url,
        **extra,
    }


def unlimited_key(env: dict[str, str], account: str) -> str:
    """A live enterprise key whose limits no benchmark load reaches."""
    key = json.loads(
        cli(env, "keys", "create", "--account", account, "--tier", "enterprise",
            "--mode", "live", "--json")
    )["key"]  # fmt: skip
    cli(env, "accounts", "set-limits", account, "--rpm", "10000000", "--concurrent", "1000")
    return str(key)


@contextlib.contextmanager
def embedded_server(port: int, **settings: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A server process on the embedded defaults (but ``settings``: environment variables)
    in a fresh data directory, and an enterprise-tier test key for it; stopped on exit."""
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "AVATARIUM_DATA_DIR": data_dir, "AVATARIUM_LOG_LEVEL": "warning"}
        env.update(settings)
        key = json.loads(
            cli(env, "keys", "create", "--account", "bench", "--tier", "enterprise", "--json")
        )["key"]
        process = serve(env, port)
        try:
            yield key, process
        finally:
            process.terminate()
            process.wait(timeout=20)
