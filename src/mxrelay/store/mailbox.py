"""What Mailpit's `/api/v1/info` and message view say about the log as a whole and a message's
tags: counts of messages and unread ones, messages per tag, the database's size."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from mxrelay.store.backend import Database, Dialect
from mxrelay.store.listing import mailbox_counts
from mxrelay.store.tags import tag_counts, tags_of


@dataclass(frozen=True, slots=True)
class MailboxStats:
    messages: int
    unread: int
    tags: dict[str, int]
    """Messages per tag name, names in order."""
    size: int
    """Bytes the database takes (SQLite: its pages; PostgreSQL: `pg_database_size`)."""


async def mailbox_stats(db: Database) -> MailboxStats:
    """The counts kept beside the log (`message_counts`, kept by the store's triggers) rather
    than counted: `/info` stays as fast at a million messages as at ten."""
    size_query = (
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
        if db.dialect is Dialect.SQLITE
        else "SELECT pg_database_size(current_database())"
    )

    def run(conn: Connection) -> MailboxStats:
        counts = mailbox_counts(conn)
        size = conn.execute(text(size_query)).scalar_one()
        return MailboxStats(counts.total, counts.unread, {}, int(size or 0))

    stats = await db.read(run)
    tagged = {count.name: count.messages for count in await tag_counts(db)}
    return MailboxStats(stats.messages, stats.unread, tagged, stats.size)


async def message_tags(db: Database, message_id: str) -> list[str]:
    """The tags of one message, by name."""
    return await db.read(lambda conn: tags_of(conn, [message_id]).get(message_id, []))
