"""Many rows per statement, on both dialects: the rows written are the rows read back, and
inserted rows come back in the order given, past one statement's parameter limit too. On SQLite
a table's rows go in a few multi-row statements of power-of-two sizes (`pieces`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database, Dialect
from mxrelay.store.bulk import (
    SQLITE_MAX_PARAMETERS,
    Update,
    execute_many,
    insert_many,
    insert_returning,
    insert_tables,
    pieces,
    postgres_write,
    stored_as_is,
)
from mxrelay.store.open import open_store


def queue_row(n: int) -> dict[str, object]:
    return {
        "message_id": f"m{n:04d}",
        "variant": n % 3,
        "state": "queued",
        "created_at": 1.5 * n,
        "queued_at": 1.5 * n,
        "next_attempt_at": 2.0 * n,
        "attempts": 0,
        "lease_owner": None,
        "lease_expires_at": None,
        "hold_kind": None,
        "hold_reason": None,
        "last_error": None,
        "updated_at": 1.5 * n,
    }


async def test_rows_come_back_in_the_order_given(db: Database) -> None:
    count = SQLITE_MAX_PARAMETERS // len(queue_row(0)) * 2 + 5  # several statements on SQLite
    rows = [queue_row(n) for n in reversed(range(count))]

    def write(conn: Connection) -> list[tuple[object, ...]]:
        return insert_returning(
            conn, schema.queue, rows, ("id", "message_id", "variant"), key=("message_id", "variant")
        )

    returned = await db.write(write)
    assert [(r[1], r[2]) for r in returned] == [(r["message_id"], r["variant"]) for r in rows]
    assert len({r[0] for r in returned}) == count  # a fresh id each

    def read(conn: Connection) -> dict[object, tuple[str, float]]:
        q = schema.queue
        result = conn.execute(select(q.c.id, q.c.message_id, q.c.next_attempt_at))
        return {row[0]: (row[1], row[2]) for row in result}

    stored = await db.read(read)
    assert all(stored[r[0]][0] == r[1] for r in returned)
    assert stored[returned[0][0]][1] == 2.0 * (count - 1)


async def test_inserts_and_named_statements(db: Database) -> None:
    tags = [{"key": f"k{n}", "name": "t"} for n in range(3)]
    rename = text("UPDATE tags SET name = :name WHERE key = :key")

    def write(conn: Connection) -> None:
        insert_many(conn, schema.tags, tags)
        insert_many(conn, schema.tags, [])
        execute_many(conn, rename, [{"key": "k1", "name": "renamed"}])
        execute_many(conn, rename, [])

    await db.write(write)

    def read(conn: Connection) -> list[tuple[str, str]]:
        t = schema.tags
        rows = conn.execute(select(t.c.key, t.c.name).order_by(t.c.key))
        return [(row[0], row[1]) for row in rows]

    assert await db.read(read) == [("k0", "t"), ("k1", "renamed"), ("k2", "t")]


async def test_several_tables_in_one_statement(db: Database) -> None:
    """On PostgreSQL the rows of every table go in one statement (one round trip); a table
    without rows is left out, and the rows of `before` are written with the returning ones."""
    tags = [{"key": f"k{n}", "name": f"tag {n}"} for n in range(3)]
    executed: list[str] = []

    def write(conn: Connection) -> list[tuple[object, ...]]:
        event.listen(conn, "before_cursor_execute", lambda *args: executed.append(args[2]))
        insert_tables(conn, [(schema.tags, tags[:2]), (schema.attempts, []), (schema.queue, [])])
        return insert_returning(
            conn,
            schema.queue,
            [queue_row(1), queue_row(2)],
            ("id", "message_id"),
            key=("message_id",),
            before=[(schema.tags, tags[2:])],
        )

    returned = await db.write(write)
    assert [r[1] for r in returned] == ["m0001", "m0002"]
    if db.dialect is Dialect.POSTGRESQL:
        assert len(executed) == 2

    def read(conn: Connection) -> tuple[list[str], int]:
        t, q = schema.tags, schema.queue
        keys = list(conn.execute(select(t.c.key).order_by(t.c.key)).scalars())
        return keys, len(conn.execute(select(q.c.id)).all())

    assert await db.read(read) == (["k0", "k1", "k2"], 2)


async def test_nulls_and_every_column_type(db: Database) -> None:
    """Each column's values travel as one typed array on PostgreSQL: NULLs (a column of them
    only, too), booleans, integers, floats and bytes come back as written."""
    body = {
        "message_id": "m1",
        "received_at": 1.25,
        "encoding": "zlib",
        "stored_size": 3,
        "raw": b"\x00\xff\x01",
    }
    recipients = [
        {
            "message_id": "m1",
            "variant": 0,
            "position": n,
            "address": f"r{n}@example.com",
            "state": "queued",
            "attempts": 0,
            "code": None,
            "enhanced": None,
            "text": "nul \x00" if n else None,
            "updated_at": 2.5,
        }
        for n in range(2)
    ]

    def write(conn: Connection) -> None:
        insert_tables(conn, [(schema.message_bodies, [body]), (schema.recipients, recipients)])

    await db.write(write)

    def read(conn: Connection) -> tuple[object, ...]:
        b, r = schema.message_bodies, schema.recipients
        raw = conn.execute(select(b.c.raw, b.c.received_at, b.c.stored_size)).one()
        rows = conn.execute(select(r.c.position, r.c.code, r.c.text).order_by(r.c.position))
        return tuple(raw), [tuple(row) for row in rows]

    assert await db.read(read) == (
        (b"\x00\xff\x01", 1.25, 3),
        [(0, None, None), (1, None, "nul \ufffd")],
    )


@pytest.mark.parametrize(
    ("count", "most", "sizes"),
    [
        (0, 64, []),
        (1, 64, [1]),
        (7, 64, [4, 2, 1]),
        (20, 64, [16, 4]),
        (100, 32, [32, 32, 32, 4]),
        (100, 50, [32, 32, 32, 4]),  # the largest piece is a power of two too
        (3, 0, [1, 1, 1]),  # a row has more columns than a statement takes parameters
    ],
)
def test_pieces_are_powers_of_two_largest_first(count: int, most: int, sizes: list[int]) -> None:
    got = list(pieces(count, most))
    assert [size for _, size in got] == sizes
    assert [start for start, _ in got] == [sum(sizes[:n]) for n in range(len(sizes))]


async def test_sqlite_writes_a_tables_rows_in_a_few_statements(tmp_path: Path) -> None:
    """Seven rows take three INSERTs (4, 2 and 1 rows), not seven: the store's writer thread
    takes the interpreter lock back once per statement, and the texts stay few enough for
    pysqlite's statement cache."""
    tags = [{"key": f"k{n}", "name": f"tag {n}"} for n in range(7)]
    statements: list[str] = []

    def write(conn: Connection) -> None:
        driver = conn.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        driver.set_trace_callback(statements.append)
        try:
            insert_many(conn, schema.tags, tags)
        finally:
            driver.set_trace_callback(None)

    async with open_store(f"sqlite:///{tmp_path / 'store.db'}") as db:
        await db.write(write)

        def read(conn: Connection) -> list[str]:
            return list(
                conn.execute(select(schema.tags.c.key).order_by(schema.tags.c.key)).scalars()
            )

        assert await db.read(read) == [f"k{n}" for n in range(7)]
    inserts = [sql for sql in statements if sql.startswith("INSERT INTO tags")]
    assert [sql.count("(") - 1 for sql in inserts] == [4, 2, 1]


@pytest.mark.postgres
async def test_updates_and_inserts_in_one_statement_on_postgresql(postgres_url: str) -> None:
    """`postgres_write`: each row changes the rows its `match` columns find, where the guard lets
    it; the inserts go in the same statement, and parts without rows are left out."""
    async with open_store(postgres_url) as db:
        await db.write(insert_many, schema.queue, [queue_row(n) for n in range(3)])
        first, second, third = await db.read(
            lambda c: list(c.execute(select(schema.queue.c.id).order_by("id")).scalars())
        )
        executed: list[str] = []
        changes = [
            {"id": first, "attempts": 5, "last_error": "450 busy\x00"},
            {"id": second, "attempts": 7, "last_error": None},
        ]

        def write(conn: Connection) -> None:
            event.listen(conn, "before_cursor_execute", lambda *args: executed.append(args[2]))
            postgres_write(conn, [], [Update(schema.queue, [], ("id",), "attempts = 0")])
            postgres_write(
                conn,
                [(schema.tags, [{"key": "k", "name": "t"}]), (schema.attempts, [])],
                [
                    Update(
                        schema.queue,
                        changes,
                        ("id",),
                        "attempts = t.attempts + v.attempts, last_error = v.last_error",
                        where="t.message_id <> 'm0001'",
                    )
                ],
            )

        await db.write(write)
        assert len(executed) == 1

        def read(conn: Connection) -> tuple[list[tuple[object, ...]], list[str]]:
            q = schema.queue
            rows = conn.execute(select(q.c.id, q.c.attempts, q.c.last_error).order_by(q.c.id))
            keys = conn.execute(select(schema.tags.c.key)).scalars()
            return [tuple(row) for row in rows], list(keys)

        rows, keys = await db.read(read)
    assert rows == [(first, 5, "450 busy\ufffd"), (second, 0, None), (third, 0, None)]
    assert keys == ["k"]


@pytest.mark.parametrize(
    ("value", "as_is"),
    [("01J000", True), ("ünïcode ✓", True), ("", True), ("a\x00b", False), ("\ud800", False)],
)
def test_stored_as_is_says_whether_a_lookup_can_find_the_value(value: str, as_is: bool) -> None:
    assert stored_as_is(value) is as_is
