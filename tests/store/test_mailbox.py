"""Counts for Mailpit's /info and a message's tags, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import insert

from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.flags import set_read
from mxrelay.store.mailbox import mailbox_stats, message_tags
from tests.store.helpers import accept, record


async def test_counts_tags_and_size(db: Database) -> None:
    empty = await mailbox_stats(db)
    assert (empty.messages, empty.unread, empty.tags) == (0, 0, {})
    assert empty.size > 0
    first, second, third = record(), record(), record()
    await accept(db, first, second, third)
    await set_read(db, [second.id], True)
    rows = [
        {"message_id": first.id, "tag": "invoice"},
        {"message_id": first.id, "tag": "Alpha tag"},
        {"message_id": third.id, "tag": "invoice"},
    ]
    await db.write(lambda conn: conn.execute(insert(schema.message_tags), rows))
    stats = await mailbox_stats(db)
    assert (stats.messages, stats.unread) == (3, 2)
    assert stats.tags == {"Alpha tag": 1, "invoice": 2}
    assert list(stats.tags) == ["Alpha tag", "invoice"]
    assert await message_tags(db, first.id) == ["Alpha tag", "invoice"]
    assert await message_tags(db, second.id) == []
