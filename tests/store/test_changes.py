"""The change outbox: an announced change is read back as written, old ones are dropped by the
next announcement, and a deletion of many messages becomes one `prune`."""

from __future__ import annotations

from sqlalchemy import func, select

from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.changes import EACH_LIMIT, KEEP_SECONDS, ChangeKind, announce, announce_each
from mxrelay.store.feed import EventFeed


async def count(db: Database) -> int:
    statement = select(func.count()).select_from(schema.log_changes)
    return int(await db.read(lambda conn: conn.execute(statement).scalar_one()))


async def test_announced_changes_are_read_in_order(db: Database) -> None:
    feed = EventFeed(db)
    await feed.start()
    await announce(db, ChangeKind.UPDATE, {"ID": "01A", "Read": True})
    await announce_each(db, ChangeKind.DELETE, [{"ID": "01B"}, {"ID": "01C"}])
    await announce(db, ChangeKind.TRUNCATE)
    changes = (await feed.poll()).changes
    assert [(c.kind, c.data) for c in changes] == [
        (ChangeKind.UPDATE, {"ID": "01A", "Read": True}),
        (ChangeKind.DELETE, {"ID": "01B"}),
        (ChangeKind.DELETE, {"ID": "01C"}),
        (ChangeKind.TRUNCATE, None),
    ]


async def test_old_changes_leave_with_the_next_announcement(db: Database) -> None:
    await announce(db, ChangeKind.PRUNE, clock=lambda: 1000.0)
    await announce(db, ChangeKind.PRUNE, clock=lambda: 1000.0 + KEEP_SECONDS - 1)
    assert await count(db) == 2
    await announce(db, ChangeKind.PRUNE, clock=lambda: 1000.0 + KEEP_SECONDS + 1)
    assert await count(db) == 2


async def test_many_deletions_are_one_prune(db: Database) -> None:
    feed = EventFeed(db)
    await feed.start()
    await announce_each(db, ChangeKind.DELETE, [{"ID": str(i)} for i in range(EACH_LIMIT + 1)])
    assert [(c.kind, c.data) for c in (await feed.poll()).changes] == [(ChangeKind.PRUNE, None)]
