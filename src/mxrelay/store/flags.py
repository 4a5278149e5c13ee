"""Mailpit's read flag (`messages.seen`): set by reading a message, or by the API for many."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database


async def set_read(db: Database, ids: Sequence[str], read: bool) -> int:
    """Mark the messages `ids` read (or unread); the number of messages whose flag changed. A lost
    flag only shows a message unread again, so the write does not wait for the disk."""
    if not ids:
        return 0
    m = schema.messages

    def run(conn: Connection) -> int:
        statement = update(m).where(m.c.id.in_(list(ids)), m.c.seen.is_not(read)).values(seen=read)
        return int(conn.execute(statement).rowcount)

    return await db.write(run, durable=False)
