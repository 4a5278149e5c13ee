"""Operator actions on the queue, on SQLite and PostgreSQL: hold, delete, retry, find."""

from __future__ import annotations

from mxrelay.model import QueueState
from mxrelay.store.backend import Database
from mxrelay.store.queue import Queue
from mxrelay.store.queue.admin import QueueAdmin, QueueFilter
from tests.store.helpers import T0, accept, record, transaction

NOW = T0.timestamp()
LEASE = 60.0


async def test_operator_actions(db: Database) -> None:
    queue, admin = Queue(db), QueueAdmin(db)
    await accept(db, record(), record())
    rows = await admin.list_entries(QueueFilter(), now=NOW)
    first, second = (row.entry for row in rows)
    assert await admin.hold([first], NOW) == 1
    assert [e.id for e in await queue.claim("w", 5, NOW, LEASE)] == [second.id]
    assert await admin.hold([first], NOW) == 0  # already held
    assert await admin.delete([first], NOW) == 1
    deleted = await admin.get(first.key)
    assert deleted is not None
    assert (deleted.state, deleted.last_error) == (QueueState.DEAD, "deleted by an operator")
    assert await admin.retry([deleted], NOW + 100) == 1
    revived = await admin.get(first.key)
    assert revived is not None
    assert (revived.state, revived.queued_at) == (QueueState.QUEUED, NOW + 100)  # fresh lifetime
    loaded = await queue.load_many([revived])
    assert loaded[revived.id].recipients == ("bob@example.org",)


async def test_an_entry_is_found_by_its_name(db: Database) -> None:
    admin = QueueAdmin(db)
    txn = transaction(recipients=("a@example.org", "b@example.org"))
    rec = record(txn)
    await accept(db, rec)
    entry = await admin.get(rec.id)
    assert entry is not None
    assert entry.key == f"{rec.id}.0"
    assert await admin.get(f"{rec.id}.0") == entry
    assert await admin.get(f"{rec.id}.1") is None
    assert await admin.get("01NOSUCHMESSAGE") is None
    [row] = await admin.list_entries(QueueFilter(), now=NOW)
    assert row.entry == entry
    assert row.recipients == (("a@example.org", "queued"), ("b@example.org", "queued"))
    assert (row.mail_from, row.subject) == ("alice@example.net", "Hello")
