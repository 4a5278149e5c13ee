"""Rows stored before the message list's columns: shown from what the older columns know, then
filled in by the backfill from the stored bytes (or the older columns once the body is gone), a
batch at a time, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.engine import Connection

from mxrelay.store.backend import Database
from mxrelay.store.backfill import backfill_fields
from mxrelay.store.listing import list_page
from mxrelay.store.search import parse_search
from tests.store.helpers import T0, accept, record, transaction

RAW = (
    b"From: Billing Team <billing@example.org>\r\nTo: Alex <alex@example.net>\r\n"
    b"Cc: Carol <carol@example.com>\r\nSubject: Invoice\r\n\r\nSee billing@example.org\r\n"
)


async def as_before_the_upgrade(db: Database, pruned: str) -> None:
    """What a store upgraded to these columns holds: nothing in them, and (PostgreSQL) full-text
    rows whose addresses are not split into words."""

    def older(conn: Connection) -> None:
        conn.execute(text("UPDATE messages SET addresses = NULL, inline_parts = NULL"))
        conn.execute(text("DELETE FROM message_fields"))
        conn.execute(text("DELETE FROM message_bodies WHERE message_id = :m"), {"m": pruned})
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("UPDATE message_search SET addresses = 'billing@example.org', body = ''")
            )

    await db.write(older)


async def test_older_rows_are_shown_then_filled_in(db: Database) -> None:
    kept = record(transaction(data=RAW, recipients=("alex@example.net", "blind@example.org")))
    pruned = record(
        transaction(data=RAW, recipients=("alex@example.net",), received_at=T0 + timedelta(1))
    )
    await accept(db, kept, pruned)
    await as_before_the_upgrade(db, pruned.id)

    page = await list_page(db)
    lists = {m.id: m.addresses for m in page.messages}
    assert lists[kept.id].sender == ("", "billing@example.org")
    assert lists[kept.id].to == (("", "alex@example.net"),)
    assert lists[kept.id].cc == ()
    assert lists[kept.id].bcc == (("", "blind@example.org"),)
    assert (await list_page(db, parse_search("cc:carol"))).messages == ()

    assert await backfill_fields(db, batch=1) == 1  # the newest first
    assert await backfill_fields(db, batch=10) == 1
    assert await backfill_fields(db) == 0

    page = await list_page(db)
    lists = {m.id: m.addresses for m in page.messages}
    assert lists[kept.id].sender == ("Billing Team", "billing@example.org")
    assert lists[kept.id].cc == (("Carol", "carol@example.com"),)
    assert lists[kept.id].bcc == (("", "blind@example.org"),)
    assert lists[pruned.id].to == (("", "alex@example.net"),)  # no body left to read names from
    assert lists[pruned.id].cc == ()
    found = await list_page(db, parse_search("cc:carol"))
    assert [m.id for m in found.messages] == [kept.id]
    assert {m.id for m in (await list_page(db, parse_search("from:billing"))).messages} == {
        kept.id,
        pruned.id,
    }
    assert {m.id for m in (await list_page(db, parse_search("example"))).messages} == {
        kept.id,
        pruned.id,
    }
    assert page.mailbox.total == 2
