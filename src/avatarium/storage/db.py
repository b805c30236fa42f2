"""Database access: one async engine per app, unit-of-work helpers, migrations, timing.

SQLite (WAL) and PostgreSQL differ only in the URL. Connection failures surface as
``ServiceUnavailableError`` so clients see ``service_unavailable`` rather than a 500.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from avatarium.core.errors import ServiceUnavailableError
from avatarium.core.timing import current_timings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_UNAVAILABLE = (OperationalError, InterfaceError, OSError, TimeoutError)


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _UNAVAILABLE)


class Database:
    """An async engine, a session factory and the operations the app needs of them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        connect_args: dict[str, Any] = {}
        engine_args: dict[str, Any] = {}
        if self.is_sqlite:
            connect_args["timeout"] = 30
        else:
            connect_args["timeout"] = 5
            engine_args.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        self.engine: AsyncEngine = create_async_engine(
            url, connect_args=connect_args, **engine_args
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite allows one writer; serialising our own writes avoids "database is locked"
        # errors from deferred transactions upgrading to write locks at the same time.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._install_hooks()

    def _install_hooks(self) -> None:
        sync_engine = self.engine.sync_engine

        if self.is_sqlite:

            @event.listens_for(sync_engine, "connect")
            def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()

        @event.listens_for(sync_engine, "before_cursor_execute")
        def _start(conn: Connection, *_args: Any) -> None:
            conn.info.setdefault("query_start", []).append(time.perf_counter())

        @event.listens_for(sync_engine, "after_cursor_execute")
        def _stop(conn: Connection, *_args: Any) -> None:
            started = conn.info["query_start"].pop()
            timings = current_timings.get()
            if timings is not None:
                timings.add("db", (time.perf_counter() - started) * 1000.0)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; nothing is committed."""
        try:
            async with self._sessions() as session:
                yield session
        except Exception as exc:
            if _is_unavailable(exc):
                raise ServiceUnavailableError("The database is unavailable.") from exc
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A transaction: committed when the block ends, rolled back on any exception."""
        try:
            if self._write_lock is not None:
                async with self._write_lock, self._sessions.begin() as session:
                    yield session
            else:
                async with self._sessions.begin() as session:
                    yield session
        except Exception as exc:
            if _is_unavailable(exc):
                raise ServiceUnavailableError("The database is unavailable.") from exc
            raise

    async def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            async with self.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=5)
            return True
        except Exception:
            return False

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
