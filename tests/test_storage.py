"""The SQLite unit-of-work paths: inline writes, and the writer thread when busy."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

import avatarium.storage.db as db_module
from avatarium.storage.db import Database


async def test_a_busy_database_never_blocks_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    db = Database(f"sqlite:///{path}")
    await db.migrate()
    await db.write(lambda s: s.execute(text("CREATE TABLE t (v INTEGER)")))
    blocker = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    threading.Timer(0.4, lambda: blocker.execute("COMMIT")).start()
    started = time.monotonic()
    write = asyncio.create_task(db.write(lambda s: s.execute(text("INSERT INTO t VALUES (1)"))))
    ticks = 0
    while not write.done():  # the loop keeps running while the write waits for the lock
        await asyncio.sleep(0.02)
        ticks += 1
    await write
    assert time.monotonic() - started >= 0.35
    assert ticks >= 10
    count = await db.read(lambda s: s.execute(text("SELECT count(*) FROM t")).scalar())
    assert count == 1
    blocker.close()
    await db.dispose()


async def test_inline_writes_checkpoint_on_the_writer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "WAL_TRUNCATE_BYTES", 1_000_000)
    path = tmp_path / "wal.db"
    db = Database(f"sqlite:///{path}")
    await db.migrate()
    await db.write(lambda s: s.execute(text("CREATE TABLE t (v TEXT)")))
    for _ in range(900):
        await db.write(lambda s: s.execute(text("INSERT INTO t VALUES (:v)"), {"v": "x" * 2000}))
    await db._in_thread(lambda: None)  # barrier: queued checkpoints have run
    wal = path.with_name("wal.db-wal").stat().st_size
    await db.dispose()
    # 900 commits write at least 900 pages (3.6 MB); the writer thread's checkpoints keep
    # the WAL from growing much past the truncation threshold.
    assert wal < 2_500_000, wal
