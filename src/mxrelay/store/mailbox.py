"""What Mailpit's `/api/v1/info` and message view say about the log as a whole and a message's
tags: counts of messages and unread ones, messages per tag, the database's size."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database, Dialect


@dataclass(frozen=True, slots=True)
class MailboxStats:
    messages: int
    unread: int
    tags: dict[str, int]
    """Messages per tag name, names in order."""
    size: int
    """Bytes the database takes (SQLite: its pages; PostgreSQL: `pg_database_size`)."""


async def mailbox_stats(db: Database) -> MailboxStats:
    m, t = schema.messages, schema.message_tags
    size_query = (
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
        if db.dialect is Dialect.SQLITE
        else "SELECT pg_database_size(current_database())"
    )

    def run(conn: Connection) -> MailboxStats:
        total, unread = conn.execute(
            select(func.count(), func.count().filter(m.c.seen.is_(False))).select_from(m)
        ).one()
        tags = conn.execute(select(t.c.tag, func.count()).group_by(t.c.tag).order_by(t.c.tag)).all()
        size = conn.execute(text(size_query)).scalar_one()
        return MailboxStats(
            int(total), int(unread), {str(tag): int(n) for tag, n in tags}, int(size or 0)
        )

    return await db.read(run)


async def message_tags(db: Database, message_id: str) -> list[str]:
    """The tags of one message, by name."""
    t = schema.message_tags
    statement = select(t.c.tag).where(t.c.message_id == message_id).order_by(t.c.tag)
    return await db.read(lambda conn: [str(tag) for tag in conn.execute(statement).scalars()])
