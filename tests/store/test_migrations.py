"""The migrations build exactly `schema.py`, on SQLite and on PostgreSQL, and can be undone; two
processes migrating one fresh PostgreSQL database at once do it one after the other."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.migrate import current_revision, downgrade, head_revision, upgrade
from mxrelay.store.open import OpenMode, open_store
from tests.support.postgres import PostgresServer

ROUNDS = 3
DIALECT_TABLES = ("message_search", "message_fields_search")
DIALECT_INDEXES = frozenset({"ix_message_fields_trgm"})


def _is_schema_object(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
    if kind == "table" and name is not None:
        # the full-text tables (and FTS5's shadow tables) are dialect-specific, made by the
        # migrations
        return not name.startswith(DIALECT_TABLES) and name != "alembic_version"
    if kind == "index" and name is not None:
        return name not in DIALECT_INDEXES
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


@pytest.mark.postgres
async def test_processes_starting_together_on_a_fresh_database_migrate_it_once(
    postgres_server: PostgresServer,
) -> None:
    """Replicas starting together on an empty PostgreSQL: each `mxrelay db upgrade` (what
    `serve` does first) waits for the other's migration instead of dying on a duplicate table.
    Several rounds, as the two may not overlap every time."""
    for round_ in range(ROUNDS):
        name = f"mxrelay_fresh_{os.getpid()}_{round_}"
        await asyncio.to_thread(postgres_server.sql, f"CREATE DATABASE {name}")
        try:
            env = {"PATH": os.environ["PATH"], "MXRELAY_DATABASE_URL": postgres_server.url(name)}
            upgrades = [
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "mxrelay", "db", "upgrade",
                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                )
                for _ in range(2)
            ]  # fmt: skip
            async with asyncio.timeout(120):
                outcomes = [await upgrade.communicate() for upgrade in upgrades]
            for upgrade, (_, stderr) in zip(upgrades, outcomes, strict=True):
                assert upgrade.returncode == 0, stderr.decode()
            async with open_store(postgres_server.url(name), OpenMode.QUEUE) as db:
                assert await db.read(current_revision) == head_revision()
        finally:
            await asyncio.to_thread(
                postgres_server.sql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )


async def test_upgrading_a_store_with_messages_keeps_their_counts_and_tags(db: Database) -> None:
    """0002 → 0003 on rows already there: the counts start from them, the tags (once keyed by
    name) are carried over to tags by id, case-insensitively, and the new columns are empty
    until the backfill reads the messages."""
    await db.write(downgrade, "0002")

    def older(conn: Connection) -> None:
        for ident, seen in (("01OLD1", True), ("01OLD2", False), ("01OLD3", False)):
            conn.execute(
                text(
                    "INSERT INTO messages (id, received_at, client_address, client_port, helo, "
                    "esmtp, mail_from, mail_params, smtputf8, body_8bitmime, size, sha256, "
                    "subject, header_from, header_to, message_id_header, snippet, attachments, "
                    "recipient_count, transforms, received_header, transaction_id, seen) VALUES "
                    "(:id, 0, '', 0, '', false, '', '[]', false, false, 1, '', '', '', '', '', '', "
                    "0, 0, '[]', '', '', :seen)"
                ),
                {"id": ident, "seen": seen},
            )
        conn.execute(
            text(
                "INSERT INTO message_tags (message_id, tag) VALUES "
                "('01OLD1', 'Urgent'), ('01OLD2', 'urgent'), ('01OLD2', 'Other')"
            )
        )

    await db.write(older)
    await db.write(upgrade)

    def read(conn: Connection) -> tuple[Any, ...]:
        counts = conn.execute(text("SELECT SUM(total), SUM(unread) FROM message_counts")).one()
        tags = conn.execute(text("SELECT name, key FROM tags ORDER BY key")).all()
        links = conn.execute(
            text(
                "SELECT mt.message_id, t.name FROM message_tags mt JOIN tags t "
                "ON t.id = mt.tag_id ORDER BY mt.message_id, t.key"
            )
        ).all()
        unfilled = conn.execute(text("SELECT COUNT(*) FROM messages WHERE addresses IS NULL"))
        return tuple(counts), [tuple(t) for t in tags], [tuple(r) for r in links], unfilled.scalar()

    counts, tag_rows, links, unfilled = await db.read(read)
    assert counts == (3, 2)
    assert tag_rows == [("Other", "other"), ("Urgent", "urgent")]
    assert links == [("01OLD1", "Urgent"), ("01OLD2", "Other"), ("01OLD2", "Urgent")]
    assert unfilled == 3
