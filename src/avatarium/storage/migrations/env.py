"""Alembic environment: runs on the connection the server hands over (see storage.db)."""

from __future__ import annotations

from alembic import context

from avatarium.storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through 'avatarium migrate'")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
