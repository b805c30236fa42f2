"""Fixtures: one app per storage backend (SQLite and PostgreSQL), shared by a session.

PostgreSQL comes from ``AVATARIUM_TEST_POSTGRES_URL`` (default: the local server's ``test``
database). Each run works in a fresh database of its own, dropped at the end. When
PostgreSQL is missing the PostgreSQL half is skipped locally, and fails under ``CI=true``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from avatarium.app import create_app
from avatarium.core.settings import Settings
from avatarium.providers.registry import ProviderRegistry
from tests.s3_server import S3Server, start_s3_server
from tests.server_process import Server
from tests.support import Api, OffsetClock

PG_ADMIN_URL = os.environ.get(
    "AVATARIUM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ["sqlite", "postgresql"]


def service_missing(what: str, error: BaseException) -> None:
    """Skip locally; under CI a missing service is a failure, never a silent skip."""
    message = f"{what} is not reachable: {error}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


async def create_postgres_database() -> str:
    """A fresh, empty PostgreSQL database; its async SQLAlchemy URL."""
    name = f"avatarium_test_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        service_missing("PostgreSQL", error)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"


async def drop_postgres_database(url: str) -> None:
    """Drop a database :func:`create_postgres_database` made."""
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database (async SQLAlchemy URL), dropped afterwards."""
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for this run."""
    async with postgres_database() as url:
        yield url


def make_settings(data_dir: Path, database_url: str | None = None, **extra: object) -> Settings:
    """Settings for a test app: quick, deterministic replies."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "secret_key": "test-secret-" + secrets.token_hex(8),
        "local_temperature": 0.0,
        "local_max_tokens": 24,
        "public_base_url": "http://testserver",
    }
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


async def start_api(
    backend: str, data_dir: Path, database_url: str | None, **extra: object
) -> AsyncIterator[Api]:
    settings = make_settings(data_dir, database_url, **extra)
    clock = OffsetClock()
    app = create_app(settings, clock=clock, providers=ProviderRegistry(settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(app=app, client=client, clock=clock, backend=backend)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """(name, database URL); the URL is None for the default SQLite file."""
    if request.param == "postgresql":
        return ("postgresql", request.getfixturevalue("postgres_url"))
    return ("sqlite", None)


@pytest.fixture(scope="session")
async def session_api(
    backend: tuple[str, str | None], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    name, url = backend
    async for api in start_api(name, tmp_path_factory.mktemp(f"data-{name}"), url):
        yield api


@pytest.fixture
def api(session_api: Api) -> Iterator[Api]:
    """The app for this backend; the clock is put back after each test."""
    yield session_api
    session_api.clock.offset = type(session_api.clock.offset)()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS S3 server for the run (each test makes its own bucket)."""
    try:
        server = start_s3_server(tmp_path_factory.mktemp("seaweedfs"))
    except (OSError, RuntimeError, AssertionError) as error:
        service_missing("The S3-compatible test server (SeaweedFS)", error)
    yield server
    server.stop()
