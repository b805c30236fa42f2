"""Logs: one line per event on stderr, as JSON or text, the web server's own lines included,
each with time, level and logger, and the request id of the request it belongs to; the
first-start key banner stays on stdout as text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.server_process import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def run_server(tmp_path: Path, fmt: str) -> tuple[str, list[str]]:
    """Start a server, make two requests, stop it: (stdout, stderr lines)."""
    env = {**os.environ, "AVATARIUM_DATA_DIR": str(tmp_path), "AVATARIUM_LOG_FORMAT": fmt}
    env.pop("AVATARIUM_DATABASE_URL", None)
    env.pop("AVATARIUM_REDIS_URL", None)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "avatarium.cli", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{base}/health/live").status_code == 200, 60, "the server")
        httpx.get(f"{base}/health", headers={"X-Request-Id": "log-check-1"})
        httpx.get(f"{base}/v1/audio/aud_x.mp3?expires=1&sig=secret-signature")
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    return out, [line for line in err.splitlines() if line.strip()]


def test_json_logs_are_one_object_per_line_with_the_request_id(tmp_path: Path) -> None:
    out, lines = run_server(tmp_path, "json")
    assert "av_test_" in out  # the banner: text, on stdout
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert records, "no log lines"
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    mine = [r for r in access if r.get("request_id") == "log-check-1"]
    assert mine and "/health" in mine[0]["message"], access
    assert any(r["logger"] == "uvicorn.error" for r in records)  # the server's own lines
    assert "secret-signature" not in "\n".join(lines)  # URL credentials masked
    assert all("request_id" not in r for r in records if r["logger"] == "uvicorn.error")


def test_text_logs_carry_time_level_logger_and_request_id(tmp_path: Path) -> None:
    _out, lines = run_server(tmp_path, "text")
    mine = [line for line in lines if "[log-check-1]" in line]
    assert mine, lines
    date, level, logger = mine[0].split(" ")[:3]
    assert date[:2] == "20" and "T" in date
    assert level == "INFO" and logger == "uvicorn.access"
    assert "secret-signature" not in "\n".join(lines)


def test_a_bad_log_format_is_one_readable_line(tmp_path: Path) -> None:
    env = {**os.environ, "AVATARIUM_DATA_DIR": str(tmp_path), "AVATARIUM_LOG_FORMAT": "xml"}
    done = subprocess.run(
        [sys.executable, "-m", "avatarium.cli", "migrate"], env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert "invalid configuration" in done.stderr and "log_format" in done.stderr
