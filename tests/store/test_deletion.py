"""Deleting messages on SQLite and PostgreSQL: every row of a message goes in one transaction,
in batches; queued, deferred and held deliveries are cancelled; a message being delivered at that
moment is kept, its other deliveries cancelled."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from mxrelay.store import deletion
from mxrelay.store.backend import Database
from mxrelay.store.listing import list_page
from mxrelay.store.search import parse_search
from tests.store.helpers import T0, accept, message_bytes, record, transaction

NOW = T0.timestamp() + 3600
TABLES = [table.name for table, _ in deletion.ROWS_BY_MESSAGE] + ["message_search"]


async def stored(db: Database, count: int, subject: str = "Report") -> list[str]:
    records = [
        record(
            transaction(
                data=message_bytes(subject=f"{subject} {n}", body=f"body {n}"),
                received_at=T0 + timedelta(seconds=n),
            )
        )
        for n in range(count)
    ]
    await accept(db, *records)
    return [r.id for r in records]


async def rows(db: Database) -> dict[str, int]:
    def count(conn: Connection) -> dict[str, int]:
        return {
            t: int(conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()) for t in TABLES
        }

    return await db.read(count)


async def test_every_row_goes(db: Database) -> None:
    first, second = await stored(db, 2)
    await db.write(
        lambda conn: conn.execute(
            text(
                "INSERT INTO attempts (message_id, variant, attempt, started_at, duration, "
                "transport, owner, outcome, recipients) VALUES (:m, 0, 1, 0, 1, 'smtp', 'o', "
                "'deferred', '[]')"
            ),
            {"m": first},
        )
    )
    result = await deletion.delete_messages(db, [first, "01UNKNOWN", first], now=NOW)
    assert (result.count, result.ids, result.kept) == (1, (first,), ())
    left = await rows(db)
    assert (left["messages"], left["attempts"]) == (1, 0)
    assert all(count in (0, 1) for count in left.values())
    page = await list_page(db, parse_search("body"))
    assert [m.id for m in page.messages] == [second]
    assert (page.mailbox.total, page.mailbox.unread) == (1, 1)


async def test_all_and_matching_in_batches(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deletion, "BATCH", 3)
    ids = await stored(db, 7) + await stored(db, 2, subject="Other")
    matched = await deletion.delete_matching(db, parse_search("subject:report"), now=NOW)
    assert matched.count == 7
    assert set(matched.ids) == set(ids[:7])
    assert [m.id for m in (await list_page(db)).messages] == list(reversed(ids[7:]))
    everything = await deletion.delete_all(db, now=NOW)
    assert everything.count == 2
    assert set((await rows(db)).values()) == {0}
    assert (await list_page(db)).mailbox.total == 0


async def test_queued_deliveries_are_cancelled_and_a_delivery_under_way_keeps_its_message(
    db: Database,
) -> None:
    waiting, delivering, done = await stored(db, 3)

    def states(conn: Connection) -> None:
        conn.execute(
            text("UPDATE queue SET state = 'active', lease_owner = 'w' WHERE message_id = :m"),
            {"m": delivering},
        )
        conn.execute(
            text("UPDATE queue SET state = 'delivered' WHERE message_id = :m"), {"m": done}
        )

    await db.write(states)
    result = await deletion.delete_all(db, now=NOW)
    assert set(result.ids) == {waiting, done}
    assert result.kept == (delivering,)

    def queue(conn: Connection) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in conn.execute(text("SELECT message_id, state FROM queue"))]

    assert await db.read(queue) == [(delivering, "active")]
    assert [m.id for m in (await list_page(db)).messages] == [delivering]
    again = await deletion.delete_messages(db, [delivering], now=NOW)
    assert (again.count, again.kept) == (0, (delivering,))


async def test_a_message_with_a_cancelled_variant_beside_an_active_one(db: Database) -> None:
    [message] = await stored(db, 1)

    def second_variant(conn: Connection) -> None:
        conn.execute(
            text(
                "INSERT INTO queue (message_id, variant, state, created_at, queued_at, "
                "next_attempt_at, attempts, updated_at) "
                "VALUES (:m, 1, 'deferred', 0, 0, 0, 1, 0)"
            ),
            {"m": message},
        )
        conn.execute(
            text(
                "INSERT INTO recipients (message_id, variant, position, address, state, "
                "attempts, updated_at) VALUES (:m, 1, 0, 'x@example.org', 'deferred', 1, 0)"
            ),
            {"m": message},
        )
        conn.execute(text("UPDATE queue SET state = 'active' WHERE variant = 0"))

    await db.write(second_variant)
    result = await deletion.delete_messages(db, [message], now=NOW)
    assert result.kept == (message,)

    def read(conn: Connection) -> list[tuple[object, ...]]:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT q.variant, q.state, q.last_error, r.state, r.text FROM queue q "
                    "JOIN recipients r ON r.message_id = q.message_id AND r.variant = q.variant "
                    "ORDER BY q.variant"
                )
            )
        ]

    assert await db.read(read) == [
        (0, "active", None, "queued", None),
        (1, "dead", deletion.REASON, "failed", deletion.REASON),
    ]


async def test_an_id_with_a_nul_is_left_out(db: Database) -> None:
    first, second = await stored(db, 2)
    deleted = await deletion.delete_messages(db, ["a\x00b", first, "\x00"], now=NOW)
    assert (deleted.count, deleted.ids) == (1, (first,))
    assert [m.id for m in (await list_page(db)).messages] == [second]
