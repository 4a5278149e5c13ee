"""Counts for Mailpit's /info and a message's tags, on SQLite and PostgreSQL."""

from __future__ import annotations

from mxrelay.store.backend import Database
from mxrelay.store.flags import set_read
from mxrelay.store.mailbox import mailbox_stats, message_tags
from mxrelay.store.tags import set_tags
from tests.store.helpers import accept, record


async def test_counts_tags_and_size(db: Database) -> None:
    empty = await mailbox_stats(db)
    assert (empty.messages, empty.unread, empty.tags) == (0, 0, {})
    assert empty.size > 0
    first, second, third = record(), record(), record()
    await accept(db, first, second, third)
    await set_read(db, [second.id], True)
    await set_tags(db, [first.id], ["invoice", "Alpha tag"])
    await set_tags(db, [third.id], ["invoice"])
    stats = await mailbox_stats(db)
    assert (stats.messages, stats.unread) == (3, 2)
    assert stats.tags == {"Alpha tag": 1, "invoice": 2}
    assert list(stats.tags) == ["Alpha tag", "invoice"]
    assert await message_tags(db, first.id) == ["Alpha tag", "invoice"]
    assert await message_tags(db, second.id) == []
