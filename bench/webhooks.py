"""Webhooks and analytics at scale.

- Event-to-delivery latency: a server process records ``conversation.started`` at 100
  events/s (one conversation created every 10 ms); a loopback receiver notes when each event
  arrives. Measured from the moment the create returned (the event was committed) to its
  arrival, p50/p99.
- Analytics overview with 1,000,000 stored messages (100,000 conversations over 90 days), on
  SQLite and, when reachable, PostgreSQL: p50/p99 of the 90-day overview.
- Export rate: the same messages as CSV over HTTP, in messages/s, with the server's resident
  memory sampled while it streams (flat memory: the peak stays near the start).

Run: ``make bench`` (all parts) or ``cd bench && python webhooks.py [delivery|analytics]``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import cli, pct, serve, unlimited_key  # noqa: E402

from avatarium.analytics.rollup import rebuild  # noqa: E402
from avatarium.analytics.service import AnalyticsService, DayRange  # noqa: E402
from avatarium.keys.service import Principal  # noqa: E402
from avatarium.storage.db import Database  # noqa: E402

PG_URL = os.environ.get("AVATARIUM_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def line(label: str, value: str) -> None:
    print(f"  {label:<58} {value}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """A loopback receiver noting when each event id arrived."""

    def __init__(self) -> None:
        arrivals: dict[str, float] = {}
        self.arrivals = arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                arrivals[self.headers["webhook-id"]] = time.perf_counter()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def delivery_latency(rate: int = 100, seconds: int = 10) -> None:
    print(f"Webhook event-to-delivery latency at {rate} events/s (loopback receiver, SQLite)")
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "AVATARIUM_DATA_DIR": data_dir, "AVATARIUM_LOG_LEVEL": "warning",
               "AVATARIUM_WEBHOOK_ALLOW_PRIVATE": "true"}  # fmt: skip
        key = unlimited_key(env, "bench-hooks")
        port = free_port()
        process = serve(env, port)
        base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
        try:
            with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
                client.post("/v1/webhooks", json={"url": receiver.url,
                                                  "events": ["conversation.started"]})  # fmt: skip
                committed: dict[str, float] = {}
                body = {"avatar_id": "aria-001", "tts_provider": "browser"}
                start = time.perf_counter()
                for n in range(rate * seconds):
                    due = start + n / rate
                    if (wait := due - time.perf_counter()) > 0:
                        time.sleep(wait)
                    answer = client.post("/v1/conversations", json=body)
                    committed[answer.json()["id"]] = time.perf_counter()
                achieved = len(committed) / (time.perf_counter() - start)
            deadline = time.monotonic() + 30
            while len(receiver.arrivals) < len(committed) and time.monotonic() < deadline:
                time.sleep(0.1)
            # Match arrivals to causes through the event ids the server logged.
            latencies = _latencies(data_dir, committed, receiver.arrivals)
        finally:
            process.terminate()
            process.wait(timeout=20)
            receiver.server.shutdown()
    line("events sent / delivered", f"{len(committed)} / {len(receiver.arrivals)}")
    line("rate achieved", f"{achieved:.0f} events/s")
    line("commit to arrival p50 / p99",
         f"{pct(latencies, 50):.1f} / {pct(latencies, 99):.1f} ms")  # fmt: skip


def _latencies(
    data_dir: str, committed: dict[str, float], arrivals: dict[str, float]
) -> list[float]:
    from sqlalchemy import text

    async def rows() -> list[Any]:
        db = Database(f"sqlite:///{data_dir}/avatarium.db")
        try:
            return list(
                await db.read_core(
                    lambda c: c.execute(text("SELECT id, data FROM webhook_events")).all()
                )
            )
        finally:
            await db.dispose()

    out = []
    for event_id, data in asyncio.run(rows()):
        payload = json.loads(data) if isinstance(data, str) else data
        conversation = payload["conversation"]["id"]
        if event_id in arrivals and conversation in committed:
            out.append((arrivals[event_id] - committed[conversation]) * 1000)
    return out


async def _fill(db: Database, account_id: str, conversations: int, per: int) -> None:
    """``conversations`` conversations of ``per`` messages each over the last 90 days,
    written with bulk inserts (the API would take hours to make a million replies)."""
    from sqlalchemy import insert

    from avatarium.conversations.models import Conversation, Message
    from avatarium.storage.base import table_of

    now = datetime.now(UTC)
    rng = random.Random(7)
    avatars = [f"avatar-{n}" for n in range(20)]
    batch_c: list[dict[str, Any]] = []
    batch_m: list[dict[str, Any]] = []

    async def flush() -> None:
        def work(connection: Any) -> None:
            connection.execute(insert(table_of(Conversation)), batch_c)
            connection.execute(insert(table_of(Message)), batch_m)

        await db.write_core(work)
        batch_c.clear()
        batch_m.clear()

    for n in range(conversations):
        started = now - timedelta(seconds=rng.uniform(0, 89 * 86_400))
        conversation_id = f"conv_bench{n:012d}"
        batch_c.append({
            "id": conversation_id, "account_id": account_id, "mode": "live",
            "avatar_id": rng.choice(avatars), "status": "active", "ai_provider": "local",
            "tts_provider": "espeak", "voice_id": None, "model": None, "system_prompt": "",
            "metadata": {}, "byok_secret": None, "message_count": per, "ai_tokens": 40 * per,
            "tts_characters": 0, "stt_ms": 0, "stt_provider": None, "language": None,
            "escalated": rng.random() < 0.05, "escalation_reason": None, "failed_answers": 0,
            "first_message_at": started, "last_message_at": started + timedelta(seconds=per * 9),
            "created_at": started, "updated_at": started, "ended_at": None,
        })  # fmt: skip
        for seq in range(per):
            batch_m.append({
                "id": f"msg_bench{n:010d}{seq:03d}", "conversation_id": conversation_id,
                "seq": seq, "role": "user" if seq % 2 == 0 else "assistant",
                "content": "How long does the battery last on a full charge?",
                "reply_to": None, "audio_id": None, "speech": None, "ai_provider": None,
                "tts_provider": None, "ai_tokens": 0 if seq % 2 == 0 else 80,
                "tts_characters": 0, "stt_ms": 0, "input": None, "interrupted": False,
                "sources": None, "safety": None,
                "latency_ms": None if seq % 2 == 0 else rng.randint(200, 2_500),
                "created_at": started + timedelta(seconds=seq * 9),
            })  # fmt: skip
        if len(batch_c) == 2_000:
            await flush()
            print(f"\r  filling: {n + 1:,} conversations", end="", flush=True, file=sys.stderr)
    if batch_c:
        await flush()
    print("\r" + " " * 40 + "\r", end="", file=sys.stderr)


async def _analytics_on(url: str, label: str, conversations: int, per: int) -> str | None:
    """Fill a database, time the overview; the data directory for the export part."""
    from avatarium.accounts.service import AccountService
    from avatarium.core.clock import SystemClock

    db = Database(url)
    await db.migrate()
    account = await AccountService(db, SystemClock()).ensure(
        f"bench-{time.time_ns()}", "enterprise"
    )
    started = time.perf_counter()
    await _fill(db, account.id, conversations, per)
    filled = time.perf_counter() - started
    started = time.perf_counter()
    await db.write_core(rebuild)
    rebuilt = time.perf_counter() - started
    line(f"{label}: {conversations * per:,} messages stored in", f"{filled:.0f} s")
    line(f"{label}: avatarium analytics rebuild", f"{rebuilt:.1f} s")

    class Names:  # the overview looks up avatar names; these avatars have none
        async def names(self, _principal: Any, _ids: list[str]) -> dict[str, str]:
            return {}

    service = AnalyticsService(db, SystemClock(), Names())  # type: ignore[arg-type]
    principal = Principal(
        key_id="bench",
        account_id=account.id,
        account_name=account.name,
        tier="enterprise",
        mode="live",
        scope="read",
    )
    today = date.today()
    days = DayRange(today - timedelta(days=89), today + timedelta(days=1))
    body = await service.overview(principal, days)
    assert body["messages"] == conversations * per, body["messages"]
    times = []
    for _ in range(30):
        began = time.perf_counter()
        await service.overview(principal, days)
        times.append((time.perf_counter() - began) * 1000)
    line(f"{label}: overview (90 days) p50 / p99",
         f"{pct(times, 50):.1f} / {pct(times, 99):.1f} ms (target <= 200)")  # fmt: skip
    await db.dispose()
    return account.id


def analytics(conversations: int = 100_000, per: int = 10) -> None:
    print(f"Analytics with {conversations * per:,} stored messages")
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "AVATARIUM_DATA_DIR": data_dir, "AVATARIUM_LOG_LEVEL": "warning"}
        cli(env, "migrate")
        url = f"sqlite:///{data_dir}/avatarium.db"
        asyncio.run(_analytics_on(url, "SQLite", conversations, per))
        _export_rate(env, data_dir, conversations * per)
    try:
        pg = _fresh_postgres()
    except Exception as error:
        line("PostgreSQL", f"skipped ({error})")
        return
    try:
        asyncio.run(_analytics_on(pg, "PostgreSQL", conversations, per))
    finally:
        _drop_postgres(pg)


def _export_rate(env: dict[str, str], data_dir: str, messages: int) -> None:
    """The export over HTTP from a server process on the filled SQLite file."""

    name = asyncio.run(
        _scalar(
            data_dir,
            "SELECT a.name FROM accounts a JOIN conversations c ON c.account_id = a.id LIMIT 1",
        )
    )
    key = unlimited_key(env, name)
    port = free_port()
    process = serve(env, port)
    marks: list[tuple[int, int]] = []  # (rows so far, server RSS in kB)
    try:
        before = _rss(process.pid)
        began = time.perf_counter()
        rows = 0
        next_mark = messages // 10
        with httpx.stream(
            "GET", f"http://127.0.0.1:{port}/v1/conversations?format=csv",
            headers={"Authorization": f"Bearer {key}"}, timeout=600,
        ) as response:  # fmt: skip
            for chunk in response.iter_bytes():
                rows += chunk.count(b"\n")  # a row ends with CRLF; contents hold no new line
                if rows >= next_mark:
                    marks.append((rows, _rss(process.pid)))
                    next_mark += messages // 10
        elapsed = time.perf_counter() - began
    finally:
        process.terminate()
        process.wait(timeout=20)
    rows -= 1  # the header
    line("SQLite: CSV export over HTTP", f"{rows:,} rows in {elapsed:.1f} s = "
         f"{rows / elapsed:,.0f} messages/s")  # fmt: skip
    line("SQLite: server memory before the export", f"{before / 1024:.0f} MB")
    line("SQLite: server memory at each tenth of the rows",
         " ".join(f"{rss / 1024:.0f}" for _rows, rss in marks) + " MB")  # fmt: skip
    assert rows == messages, (rows, messages)


async def _scalar(data_dir: str, sql: str) -> str:
    from sqlalchemy import text

    db = Database(f"sqlite:///{data_dir}/avatarium.db")
    try:
        row = await db.read_core(lambda c: c.execute(text(sql)).one())
        return str(row[0])
    finally:
        await db.dispose()


def _rss(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1])
    return 0


def _admin(sql: str) -> None:
    """One statement on the PostgreSQL server's maintenance connection."""
    import asyncpg

    async def run() -> None:
        admin = await asyncpg.connect(PG_URL, timeout=5)
        try:
            await admin.execute(sql)
        finally:
            await admin.close()

    asyncio.run(run())


def _fresh_postgres() -> str:
    name = f"avatarium_bench_{os.getpid()}"
    _admin(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


def _drop_postgres(url: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def bench_webhooks() -> None:
    delivery_latency()
    print()
    analytics()


if __name__ == "__main__":
    part = sys.argv[1] if len(sys.argv) > 1 else "all"
    if part in ("all", "delivery"):
        delivery_latency()
    if part in ("all", "analytics"):
        messages = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
        analytics(messages // 10, 10)
