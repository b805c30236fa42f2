"""The Alembic migrations and the models describe the same schema, on both databases: a
fresh database migrated to head has exactly the tables, columns, indexes and foreign keys
the models declare (a model change without its migration fails here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from avatarium.storage.db import Database
from avatarium.storage.models import Base
from tests.conftest import postgres_database

# Full-text search lives in what each database offers (an FTS5 table on SQLite, an
# expression index on PostgreSQL), created by the knowledge migration's own SQL; the models
# do not describe it.
FULL_TEXT = ("knowledge_chunks_fts",)


def _ours(obj: Any, name: str | None, kind: str, _reflected: bool, _compare_to: Any) -> bool:
    return not any(part in (name or "") for part in FULL_TEXT)


def _differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "compare_server_default": False, "include_object": _ours},
    )
    return list(compare_metadata(context, Base.metadata))


async def _check(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
        differences = await db.read_core(_differences)
    finally:
        await db.dispose()
    assert differences == [], "models and migrations differ:\n" + "\n".join(map(str, differences))


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_migrations_match_the_models(database: str, tmp_path: Path) -> None:
    if database == "sqlite":
        await _check(f"sqlite:///{tmp_path / 'drift.db'}")
    else:
        async with postgres_database() as url:
            await _check(url)
