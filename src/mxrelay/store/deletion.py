"""Deleting messages from the log: some, a search's matches, or all of them (Mailpit's `DELETE`
routes), every row of a message in one transaction, `BATCH` messages per transaction.

A message still waiting for delivery is deleted as `postsuper -d` deletes a queued message: its
queue entries are cancelled first (set `dead`, "deleted by an operator", in the same transaction),
so no worker claims it, and then it goes. A message one of whose entries a worker is delivering at
that moment (`active`) cannot be called back: it is kept, its other entries cancelled and their
recipients failed, and its delivery ends and is logged as usual; deleting it again afterwards
removes it. On PostgreSQL the cancelling update locks the entries it changes, so a replica
claiming at the same moment either got the entry first (it is then active, and the message kept)
or skips it.

Batches keep SQLite's write lock short: the relay's own commits (accepted mail) wait for at most
one batch. Tags no message carries any more are removed with the last message that had them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Table, delete, select, text, update
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database, Dialect
from mxrelay.store.bulk import stored_as_is
from mxrelay.store.listing import EVERYTHING, matching, matching_ids
from mxrelay.store.search_terms import SearchQuery
from mxrelay.store.tags import message_tag_ids, prune_unused

BATCH = 200
"""Messages deleted per transaction: each takes its rows in ten tables and its full-text rows."""
IDS_KEPT = 1000
"""Deleted ids a result lists (for the change events); the count covers them all."""
REASON = "deleted by an operator"
PENDING = ("queued", "deferred", "held")

ROWS_BY_MESSAGE: tuple[tuple[Table, str], ...] = (
    (schema.message_fields, "message_id"),
    (schema.message_bodies, "message_id"),
    (schema.variants, "message_id"),
    (schema.recipients, "message_id"),
    (schema.queue, "message_id"),
    (schema.attempts, "message_id"),
    (schema.message_tags, "message_id"),
    (schema.messages, "id"),
)
"""Every table with rows of a message, the message itself last."""


@dataclass(frozen=True, slots=True)
class Deleted:
    count: int = 0
    ids: tuple[str, ...] = ()
    """The first IDS_KEPT messages deleted."""
    kept: tuple[str, ...] = ()
    """Messages left because a delivery of theirs was under way (the first IDS_KEPT)."""

    def plus(self, deleted: Sequence[str], kept: Sequence[str]) -> Deleted:
        room = max(IDS_KEPT - len(self.ids), 0)
        spare = max(IDS_KEPT - len(self.kept), 0)
        return Deleted(
            self.count + len(deleted), (*self.ids, *deleted[:room]), (*self.kept, *kept[:spare])
        )


async def delete_messages(db: Database, ids: Sequence[str], *, now: float) -> Deleted:
    """Delete these messages (unknown ids are ignored, and ids no message can have are not
    looked up: `bulk.stored_as_is`), their search rows included: those still being written
    behind the commit are written first."""
    await db.indexed()
    result = Deleted()
    unique = [ident for ident in dict.fromkeys(ids) if stored_as_is(ident)]
    for start in range(0, len(unique), BATCH):
        deleted, kept = await db.write(_delete, unique[start : start + BATCH], now)
        result = result.plus(deleted, kept)
    return result


async def delete_all(db: Database, *, now: float) -> Deleted:
    return await delete_matching(db, EVERYTHING, now=now)


async def delete_matching(db: Database, query: SearchQuery, *, now: float) -> Deleted:
    """Delete the messages `query` matches, newest first, a batch at a time: found once
    (`matching_ids`), or, for every message, a batch at a time along the primary key (each batch
    looks for messages older than the last one seen, so kept ones are not looked at again)."""
    if not query.everything:
        return await delete_messages(db, await matching_ids(db, query), now=now)
    await db.indexed()
    result = Deleted()
    cursor: str | None = None
    while True:
        found, deleted, kept = await db.write(_delete_next, query, cursor, now)
        result = result.plus(deleted, kept)
        if len(found) < BATCH:
            return result
        cursor = found[-1]


def _delete_next(
    conn: Connection, query: SearchQuery, cursor: str | None, now: float
) -> tuple[list[str], list[str], list[str]]:
    statement = matching(conn, query)
    if cursor is not None:
        statement = statement.where(schema.messages.c.id < cursor)
    found = list(conn.execute(statement.limit(BATCH)).scalars())
    deleted, kept = _delete(conn, found, now)
    return found, deleted, kept


def _delete(conn: Connection, ids: list[str], now: float) -> tuple[list[str], list[str]]:
    """Delete these messages in the caller's transaction; (deleted, kept) ids."""
    if not ids:
        return [], []
    q, r, m = schema.queue, schema.recipients, schema.messages
    conn.execute(
        update(q)
        .where(q.c.message_id.in_(ids), q.c.state.in_(PENDING))
        .values(
            state="dead",
            last_error=REASON,
            lease_owner=None,
            lease_expires_at=None,
            hold_kind=None,
            hold_reason=None,
            updated_at=now,
        )
    )
    active = select(q.c.message_id).where(q.c.message_id.in_(ids), q.c.state == "active")
    kept = sorted(set(conn.execute(active).scalars()))
    if kept:
        cancelled = select(q.c.variant).where(
            q.c.message_id == r.c.message_id, q.c.state == "dead", q.c.last_error == REASON
        )
        conn.execute(
            update(r)
            .where(r.c.message_id.in_(kept), r.c.state.in_(PENDING), r.c.variant.in_(cancelled))
            .values(state="failed", text=REASON, updated_at=now)
        )
    present = set(conn.execute(select(m.c.id).where(m.c.id.in_(ids))).scalars())
    gone = [ident for ident in ids if ident in present and ident not in set(kept)]
    if gone:
        tag_ids = message_tag_ids(conn, gone)
        _forget_text(conn, gone)
        for table, column in ROWS_BY_MESSAGE:
            conn.execute(delete(table).where(table.c[column].in_(gone)))
        prune_unused(conn, tag_ids)
    return gone, kept


def _forget_text(conn: Connection, ids: list[str]) -> None:
    """The full-text rows: on SQLite an FTS5 table, found through its indexed `message_id`."""
    if conn.dialect.name == Dialect.POSTGRESQL:
        conn.execute(text("DELETE FROM message_search WHERE message_id = ANY(:ids)"), {"ids": ids})
        return
    conn.execute(
        text("DELETE FROM message_search WHERE message_search MATCH :match"),
        [{"match": 'message_id:"' + ident.replace('"', '""') + '"'} for ident in ids],
    )
