"""Mailpit's read flag on SQLite and PostgreSQL."""

from __future__ import annotations

from mxrelay.store.backend import Database
from mxrelay.store.flags import set_read
from mxrelay.store.search import SearchQuery, search_messages
from tests.store.helpers import accept, record


async def seen(db: Database) -> dict[str, bool]:
    return {m.id: m.seen for m in await search_messages(db, SearchQuery())}


async def test_set_read_marks_and_unmarks_and_counts_changes(db: Database) -> None:
    first, second = record(), record()
    await accept(db, first, second)
    assert await seen(db) == {first.id: False, second.id: False}
    assert await set_read(db, [first.id, "01UNKNOWN"], True) == 1
    assert await seen(db) == {first.id: True, second.id: False}
    assert await set_read(db, [first.id], True) == 0  # already read: nothing changed
    assert await set_read(db, [first.id, second.id], False) == 1
    assert await set_read(db, [], True) == 0
    assert await seen(db) == {first.id: False, second.id: False}
