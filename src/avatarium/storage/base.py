"""The one declarative base, with a naming convention so migrations name constraints stably."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, MetaData, Table, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


E = TypeVar("E", bound=Base)


def column_values(instance: Base) -> dict[str, Any]:
    """An entity's column attributes as a dict, for bulk ``insert()`` statements."""
    mapper = inspect(type(instance))
    return {attr.key: getattr(instance, attr.key) for attr in mapper.column_attrs}


_ATTRIBUTE_OF: dict[type[Base], list[tuple[str, str]]] = {}


def from_row(entity: type[E], row: Any) -> E:
    """An entity built from a Core row of its table's columns (not attached to a session):
    for hot-path reads that skip the ORM's loading machinery."""
    pairs = _ATTRIBUTE_OF.get(entity)
    if pairs is None:
        mapper = inspect(entity)
        pairs = [(attr.columns[0].name, attr.key) for attr in mapper.column_attrs]
        _ATTRIBUTE_OF[entity] = pairs
    values = row._mapping
    return entity(**{key: values[name] for name, key in pairs})


def table_of(entity: type[Base]) -> Table:
    """The Core table behind an entity, for Core statements on hot paths."""
    table = entity.__table__
    assert isinstance(table, Table)
    return table
