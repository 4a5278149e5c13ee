"""Read flags (Mailpit's `Read`): for some messages, for a search's matches, or for all of them.

A change to many messages is made in batches of `BATCH`, each its own short transaction, so that
on SQLite the relay's own commits (accepted mail) never wait long behind it. The mailbox's unread
count follows by itself (the triggers of `message_counts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.bulk import stored_as_is
from mxrelay.store.listing import EVERYTHING, matching, matching_ids
from mxrelay.store.search_terms import SearchQuery

BATCH = 2000
"""Messages marked per transaction."""
IDS_KEPT = 1000
"""Changed ids a result lists (for the change events); the count covers them all."""

m = schema.messages


@dataclass(frozen=True, slots=True)
class Changed:
    count: int = 0
    """Messages whose flag changed."""
    ids: tuple[str, ...] = ()
    """The first IDS_KEPT of them."""

    def plus(self, ids: Sequence[str]) -> Changed:
        room = max(IDS_KEPT - len(self.ids), 0)
        return Changed(self.count + len(ids), (*self.ids, *ids[:room]))


async def set_read(db: Database, ids: Sequence[str], read: bool) -> int:
    """Mark these messages read (or unread); how many changed. Unknown ids are ignored."""
    return (await mark(db, ids, read)).count


async def mark(db: Database, ids: Sequence[str], read: bool, *, durable: bool = True) -> Changed:
    """Mark these messages; `durable=False` does not wait for the disk (what reading a message
    does by the way: a crash that loses it shows the message unread again). An id no message can
    have (`bulk.stored_as_is`) is left out."""
    changed = Changed()
    unique = [ident for ident in dict.fromkeys(ids) if stored_as_is(ident)]
    for start in range(0, len(unique), BATCH):
        chunk = unique[start : start + BATCH]
        changed = changed.plus(await db.write(_mark, chunk, read, durable=durable))
    return changed


def _mark(conn: Connection, ids: list[str], read: bool) -> list[str]:
    statement = (
        update(m).where(m.c.id.in_(ids), m.c.seen != read).values(seen=read).returning(m.c.id)
    )
    return list(conn.execute(statement).scalars())


async def mark_all(db: Database, read: bool) -> Changed:
    """Every message, in batches along the primary key (newest first)."""
    return await mark_matching(db, EVERYTHING, read)


async def mark_matching(db: Database, query: SearchQuery, read: bool) -> Changed:
    """The messages `query` matches, in batches, newest first: found once (`matching_ids`),
    or, for every message, a batch at a time along the primary key."""
    if not query.everything:
        return await mark(db, await matching_ids(db, query), read)
    changed = Changed()
    cursor: str | None = None
    while True:
        ids = await db.write(_mark_next, query, cursor, read)
        changed = changed.plus(ids)
        if len(ids) < BATCH:
            return changed
        cursor = ids[-1]


def _mark_next(conn: Connection, query: SearchQuery, cursor: str | None, read: bool) -> list[str]:
    """The next batch of matches still to change (older than `cursor`), changed."""
    statement = matching(conn, query).where(m.c.seen != read)
    if cursor is not None:
        statement = statement.where(m.c.id < cursor)
    ids = list(conn.execute(statement.limit(BATCH)).scalars())
    if ids:
        conn.execute(update(m).where(m.c.id.in_(ids)).values(seen=read))
    return ids
