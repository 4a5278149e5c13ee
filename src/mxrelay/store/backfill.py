"""Filling in what the message list needs for messages stored before it existed: their address
lists with names (`messages.addresses`), inline parts and searchable fields (`message_fields`).

Until a row is filled in, the list shows what its older columns know (`AddressLists.fallback`)
and the header filters do not find it. `backfill_fields` fills in `batch` of them (newest first:
what a reader looks at first) from the stored bytes, or from the older columns once the body has
been pruned; the relay calls it in the background until nothing is left (`runtime/queued.py`), in
short transactions, with the parsing done off the event loop; on PostgreSQL it also splits the
row's full-text words as ingest now does (`search_sql.text_words`). The recipients a transaction had
refused were not linked to its message before, so `refused:` does not find these rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database, Dialect
from mxrelay.store.fields import AddressLists, FieldRow, with_envelope
from mxrelay.store.ingest import decompress, summarise
from mxrelay.store.message_log import envelopes_of, searchable_words

BATCH = 200
"""Messages filled in per transaction."""


@dataclass(frozen=True, slots=True)
class Unfilled:
    id: str
    mail_from: str
    header_from: str
    header_to: str
    subject: str
    message_id_header: str
    encoding: str | None
    raw: bytes | None
    envelope: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Filled:
    id: str
    addresses: str
    inline: int
    fields: dict[str, str]


async def backfill_fields(db: Database, batch: int = BATCH) -> int:
    """Fill in up to `batch` messages; how many were (0: none is left)."""
    rows = await db.read(_unfilled, batch)
    if not rows:
        return 0
    filled = await asyncio.to_thread(lambda: [fill(row) for row in rows])
    await db.write(_store, filled)
    return len(filled)


def _unfilled(conn: Connection, batch: int) -> list[Unfilled]:
    m, b = schema.messages, schema.message_bodies
    rows = conn.execute(
        select(
            m.c.id,
            m.c.mail_from,
            m.c.header_from,
            m.c.header_to,
            m.c.subject,
            m.c.message_id_header,
            b.c.encoding,
            b.c.raw,
        )
        .outerjoin(b, b.c.message_id == m.c.id)
        .where(m.c.addresses.is_(None))
        .order_by(m.c.id.desc())
        .limit(batch)
    ).all()
    envelopes = envelopes_of(conn, [row.id for row in rows])
    return [Unfilled(*row[:6], row.encoding, row.raw, envelopes.get(row.id, ())) for row in rows]


def fill(row: Unfilled) -> Filled:
    """What a row lacks, from its bytes when it still has them (CPU work: off the loop)."""
    inline = 0
    if row.raw is not None and row.encoding is not None:
        summary = summarise(decompress(row.encoding, row.raw))
        lists, inline = with_envelope(summary.addresses, row.envelope), summary.inline
    else:
        lists = AddressLists.fallback(row.header_from, row.header_to, row.envelope)
    fields = FieldRow(row.id, lists, row.mail_from, row.subject, row.message_id_header)
    return Filled(row.id, lists.json(), inline, fields.row())


_SEARCH_ROWS = text(
    "SELECT message_id, subject, addresses, body FROM message_search WHERE message_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_SEARCH_WORDS = text(
    "UPDATE message_search SET subject = :subject, addresses = :addresses, body = :body "
    "WHERE message_id = :message_id"
)


def _store(conn: Connection, filled: Sequence[Filled]) -> None:
    m, f = schema.messages, schema.message_fields
    if conn.dialect.name == Dialect.POSTGRESQL:
        # Written before full-text rows were split into words (`search_sql.text_words`).
        found = conn.execute(_SEARCH_ROWS, {"ids": [item.id for item in filled]}).mappings()
        words = [searchable_words(dict(row)) for row in found]
        if words:
            conn.execute(_SEARCH_WORDS, words)
    for item in filled:
        conn.execute(
            update(m)
            .where(m.c.id == item.id, m.c.addresses.is_(None))
            .values(addresses=item.addresses, inline_parts=item.inline)
        )
    dialect = postgresql if conn.dialect.name == Dialect.POSTGRESQL else sqlite
    fields = [item.fields for item in filled]
    conn.execute(dialect.insert(f).on_conflict_do_nothing(index_elements=[f.c.message_id]), fields)
