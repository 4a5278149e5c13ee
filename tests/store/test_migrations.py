"""The migrations build exactly `schema.py`, on SQLite and on PostgreSQL, and can be undone."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.db import Database
from mxrelay.store.migrate import current_revision, downgrade, head_revision, upgrade


def _is_schema_object(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
    if kind == "table" and name is not None:
        # the full-text table (and FTS5's shadow tables) are dialect-specific, made by the migration
        return not name.startswith("message_search") and name != "alembic_version"
    return True


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"include_object": _is_schema_object, "compare_type": True}
    )
    return list(compare_metadata(context, schema.metadata))


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_migrations_match_the_schema(db: Database) -> None:
    assert await db.read(current_revision) == head_revision()
    assert await db.read(_differences) == []
    assert "message_search" in await db.read(_tables)


async def test_downgrade_and_upgrade_again(db: Database) -> None:
    await db.write(downgrade, "base")
    assert await db.read(_tables) <= {"alembic_version"}
    await db.write(upgrade)
    assert await db.read(_differences) == []
