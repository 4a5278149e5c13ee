"""Read flags on SQLite and PostgreSQL: for some messages, a search's matches or all of them, in
batches, with the mailbox's unread count following in the same transactions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mxrelay.store import flags
from mxrelay.store.backend import Database
from mxrelay.store.listing import list_page
from mxrelay.store.search import parse_search
from tests.store.helpers import T0, accept, message_bytes, record, transaction


async def stored(db: Database, subjects: list[str]) -> list[str]:
    records = [
        record(
            transaction(data=message_bytes(subject=subject), received_at=T0 + timedelta(seconds=n))
        )
        for n, subject in enumerate(subjects)
    ]
    await accept(db, *records)
    return [r.id for r in records]


async def unread(db: Database) -> tuple[int, int, list[str]]:
    page = await list_page(db, parse_search("is:unread"), limit=500)
    return page.mailbox.total, page.mailbox.unread, [m.id for m in page.messages]


async def test_some_messages(db: Database) -> None:
    first, second, third = await stored(db, ["one", "two", "three"])
    assert await flags.set_read(db, [first, second, "01UNKNOWN", first], True) == 2
    assert await unread(db) == (3, 1, [third])
    assert await flags.set_read(db, [first, second], True) == 0  # already read: no change
    assert await flags.set_read(db, [second], False) == 1
    assert await unread(db) == (3, 2, [third, second])
    assert await flags.set_read(db, [], True) == 0


async def test_matching_and_all(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flags, "BATCH", 3)  # several batches, and a last one that is full
    ids = await stored(db, [f"report {n}" for n in range(6)] + ["other"])
    changed = await flags.mark_matching(db, parse_search("report"), True)
    assert changed.count == 6
    assert set(changed.ids) == set(ids[:6])
    assert await unread(db) == (7, 1, [ids[6]])
    assert (await flags.mark_all(db, False)).count == 6
    assert await unread(db) == (7, 7, list(reversed(ids)))
    everything = await flags.mark_all(db, True)
    assert (everything.count, len(everything.ids)) == (7, 7)
    assert await unread(db) == (7, 0, [])
    assert (await flags.mark_all(db, True)).count == 0


async def test_changed_ids_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flags, "IDS_KEPT", 2)
    changed = flags.Changed().plus(["a", "b", "c"]).plus(["d"])
    assert (changed.count, changed.ids) == (4, ("a", "b"))


async def test_an_id_with_a_nul_is_left_out(db: Database) -> None:
    first, second = await stored(db, ["one", "two"])
    assert await flags.set_read(db, ["a\x00b", first, "\x00"], True) == 1
    assert await unread(db) == (2, 1, [second])
