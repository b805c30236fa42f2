"""Database access: units of work run against one engine; migrations; timing.

Services hand the database a plain function of a SQLAlchemy ``Session`` (a unit of work),
and ``read``/``write`` run it; the hot path's units take a bare ``Connection`` instead
(``read_core``/``write_core``), since they run only prebuilt Core statements:

* SQLite uses the synchronous driver. Reads in WAL mode never wait for writers and take
  microseconds of CPU that the GIL would serialise anyway, so they run inline on the event
  loop. Writes try inline too, with a zero lock timeout and no auto-checkpoint (which would
  fsync); when another writer holds the lock, the unit runs again on one dedicated writer
  thread, which waits for the lock there and periodically truncates the WAL. An async driver
  would pay several thread hops per statement instead.
* PostgreSQL runs the same function through ``AsyncSession.run_sync`` on asyncpg.

Connection failures surface as ``ServiceUnavailableError`` (``service_unavailable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from avatarium.core.errors import ServiceUnavailableError
from avatarium.core.timing import current_timings
from avatarium.core.wire import wire_json

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
CHECKPOINT_EVERY = 200  # inline commits between two WAL checkpoints
WAL_TRUNCATE_BYTES = 64 * 1024 * 1024
_UNAVAILABLE = (OperationalError, InterfaceError, OSError, TimeoutError)
T = TypeVar("T")
Work = Callable[[Session], T]
CoreWork = Callable[[Connection], T]


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _UNAVAILABLE)


def _is_busy(exc: OperationalError) -> bool:
    message = str(exc.orig).lower()
    return "locked" in message or "busy" in message


def _sync_sqlite_url(url: str) -> str:
    """``sqlite+aiosqlite:///x`` -> ``sqlite:///x`` (units of work use the sync driver)."""
    scheme, _, rest = url.partition("://")
    return f"sqlite://{rest}" if scheme.startswith("sqlite") else url


def _time_queries(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn: Connection, *_args: Any) -> None:
        conn.info.setdefault("query_start", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _stop(conn: Connection, *_args: Any) -> None:
        started = conn.info["query_start"].pop()
        timings = current_timings.get()
        if timings is not None:
            timings.add("db", (time.perf_counter() - started) * 1000.0)


def _create_private(url: str) -> None:
    """Create a SQLite database file readable by its owner only (0600) before SQLite does
    (it would follow the umask, usually world-readable). SQLite gives its -wal and -shm
    files the same permissions as the database file."""
    path = make_url(url).database
    if not path or path == ":memory:" or os.path.exists(path):
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Database:
    """One engine and the two ways to run a unit of work on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._async_engine: AsyncEngine | None = None
        self._executor: ThreadPoolExecutor | None = None
        if self.is_sqlite:
            _create_private(url)
            self._engine = create_engine(
                _sync_sqlite_url(url),
                connect_args={"timeout": 30, "check_same_thread": False},
                json_serializer=wire_json,
            )
            self._install_sqlite_pragmas(self._engine)
            self._sessions = sessionmaker(self._engine, expire_on_commit=False)
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avatarium-db")
            self._inline_reads: bool | None = None  # decided once the journal mode is known
            # Writes first try inline, never waiting for a lock (timeout 0) and never
            # checkpointing (that fsyncs); when the database is busy they go to the thread.
            self._inline_engine = create_engine(
                _sync_sqlite_url(url),
                connect_args={"timeout": 0, "check_same_thread": False},
                json_serializer=wire_json,
            )
            self._install_sqlite_pragmas(self._inline_engine, autocheckpoint=False)
            _time_queries(self._inline_engine)
            self._inline_sessions = sessionmaker(self._inline_engine, expire_on_commit=False)
            self._inline_commits = 0
        else:
            self._async_engine = create_async_engine(
                url,
                connect_args={"timeout": 5},
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=20,
            )
            self._engine = self._async_engine.sync_engine
            self._async_sessions = async_sessionmaker(self._async_engine, expire_on_commit=False)
        _time_queries(self._engine)

    @staticmethod
    def _install_sqlite_pragmas(engine: Engine, *, autocheckpoint: bool = True) -> None:
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            if not autocheckpoint:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        assert self._executor is not None
        context = contextvars.copy_context()  # so query timings reach the request's Timings
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(context.run, fn))

    async def read(self, work: Work[T]) -> T:
        """Run ``work`` in a session; nothing is committed."""
        return await self._run(work, write=False, core=False)

    async def write(self, work: Work[T]) -> T:
        """Run ``work`` in a transaction: committed on return, rolled back if it raises."""
        return await self._run(work, write=True, core=False)

    async def read_core(self, work: CoreWork[T]) -> T:
        """``read`` on a bare ``Connection``: for the hot path's prebuilt Core statements,
        which a ``Session`` would route through the ORM's machinery (about 50 µs a
        statement, and as much again to open the unit) for nothing."""
        return await self._run(work, write=False, core=True)

    async def write_core(self, work: CoreWork[T]) -> T:
        """``write`` on a bare ``Connection`` (see :meth:`read_core`)."""
        return await self._run(work, write=True, core=True)

    def _unit(
        self, engine: Engine, sessions: sessionmaker[Session], *, write: bool, core: bool
    ) -> Any:
        if core:
            return engine.begin() if write else engine.connect()
        return sessions.begin() if write else sessions()

    def _async_unit(self, *, write: bool, core: bool) -> Any:
        assert self._async_engine is not None
        if core:
            return self._async_engine.begin() if write else self._async_engine.connect()
        return self._async_sessions.begin() if write else self._async_sessions()

    async def _run(self, work: Callable[[Any], T], *, write: bool, core: bool) -> T:
        try:
            if self._async_engine is None:

                def run() -> T:
                    with self._unit(self._engine, self._sessions, write=write, core=core) as unit:
                        return work(unit)

                if self._inline_reads is None:
                    self._inline_reads = await self._in_thread(self._uses_wal)
                if not write:
                    return run() if self._inline_reads else await self._in_thread(run)
                if self._inline_reads:
                    inline = self._unit(
                        self._inline_engine, self._inline_sessions, write=True, core=core
                    )
                    try:
                        with inline as unit:
                            result = work(unit)
                    except OperationalError as exc:
                        if not _is_busy(exc):
                            raise
                        # Another writer holds the lock: wait for it on the writer thread,
                        # not here on the event loop. The unit of work simply runs again.
                    else:
                        self._after_inline_commit()
                        return result
                return await self._in_thread(run)
            async with self._async_unit(write=write, core=core) as unit:
                result_: T = await unit.run_sync(work)
                return result_
        except Exception as exc:
            if _is_unavailable(exc):
                raise ServiceUnavailableError("The database is unavailable.") from exc
            raise

    def _after_inline_commit(self) -> None:
        # Inline connections never checkpoint (a checkpoint fsyncs); the writer thread does,
        # every so often, so the WAL file stays small.
        self._inline_commits += 1
        if self._inline_commits % CHECKPOINT_EVERY == 0:
            assert self._executor is not None
            self._executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        # PASSIVE copies pages back without making anyone wait; the WAL then restarts from
        # its start whenever a writer finds it fully copied. Only a WAL that has grown past
        # WAL_TRUNCATE_BYTES anyway (sustained load never left it a quiet moment) is
        # truncated, which makes writers wait a moment (inline writers, finding the lock
        # taken, queue behind it here on the writer thread).
        wal = Path(f"{self._engine.url.database}-wal")
        mode = "TRUNCATE" if wal.exists() and wal.stat().st_size > WAL_TRUNCATE_BYTES else "PASSIVE"
        with contextlib.suppress(Exception), self._engine.connect() as conn:
            conn.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})")

    def _uses_wal(self) -> bool:
        # Without WAL (some network filesystems refuse it) a read can wait on a writer's
        # lock, which must never happen on the event loop.
        with self._engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        return str(mode).lower() == "wal"

    async def ping(self) -> bool:
        """Whether the database answers a trivial query within five seconds."""
        try:
            await asyncio.wait_for(self.read(lambda s: s.execute(text("SELECT 1"))), timeout=5)
            return True
        except Exception:
            return False

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        if self._async_engine is None:

            def run() -> None:
                with self._engine.begin() as conn:
                    _upgrade(conn)

            await self._in_thread(run)
            return
        async with self._async_engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def dispose(self) -> None:
        if self._async_engine is not None:
            await self._async_engine.dispose()
        else:
            await self._in_thread(self._engine.dispose)
            self._inline_engine.dispose()
            assert self._executor is not None
            self._executor.shutdown(wait=False)


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
