"""The message list's page: keyset paging by message id over the search's own page finding (so
a deep page costs what the first one does), and what the list shows of each message (its
summary's fields, its recipients' delivery states, its transforms, its tags), read with the log's version in one read
transaction; and the version alone, which tells a page whether it need be read again."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.console.common import PAGE_LIMIT, json_strings
from mxrelay.store.listing import indexed_for, mailbox_counts, page_ids
from mxrelay.store.schema import ID_LENGTH
from mxrelay.store.search import SearchQuery
from mxrelay.store.tags import tags_of


@dataclass(frozen=True, slots=True)
class PageKey:
    """Where the next page starts: after the message `after` (the last one shown), with older
    ones. The list is in id order (a ULID: the time it arrived, then a random part), so a page
    is an index range however deep it is, and no message is skipped or shown twice."""

    after: str

    def token(self) -> str:
        return self.after

    @classmethod
    def parse(cls, token: str) -> PageKey | None:
        """The key a `token()` wrote, or None for anything else (a page link is user input)."""
        return cls(token) if _ID.fullmatch(token) else None


_ID = re.compile(f"[0-9A-Za-z]{{1,{ID_LENGTH}}}")


@dataclass(frozen=True, slots=True)
class ListedMessage:
    """A message as the list shows it."""

    id: str
    received_at: float
    mail_from: str
    subject: str
    header_from: str
    header_to: str
    size: int
    attachments: int
    snippet: str
    seen: bool
    states: tuple[tuple[str, int], ...]
    """(delivery state, recipients in it), most recipients first."""
    transforms: tuple[str, ...]
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MessagePage:
    messages: tuple[ListedMessage, ...]
    next_key: PageKey | None
    """The key of the next (older) page; None on the last page."""
    version: str
    """The log's version the page was read at (`_log_version`)."""
    total: int | None
    """Every message in the log, on the first page of the whole log (from the kept counts);
    None for a search or a later page."""


async def message_page(
    db: Database,
    query: SearchQuery,
    *,
    key: PageKey | None,
    limit: int,
) -> MessagePage:
    """Up to `limit` messages matching `query`, newest first, starting at `key` (a search
    first waits until every message committed is in the search index)."""
    limit = max(1, min(limit, PAGE_LIMIT))
    await indexed_for(db, query)
    return await db.read(_message_page, query, key, limit)


def _message_page(
    conn: Connection, query: SearchQuery, key: PageKey | None, limit: int
) -> MessagePage:
    version = _log_version(conn)
    below = key.after if key is not None else None
    found = _listed(conn, page_ids(conn, query, limit=limit + 1, below=below))
    shown = found[:limit]
    total = mailbox_counts(conn).total if key is None and query.everything else None
    next_key = PageKey(shown[-1].id) if len(found) > limit else None
    return MessagePage(tuple(shown), next_key, version, total)


m, r = schema.messages, schema.recipients
_ROWS = select(
    m.c.id,
    m.c.received_at,
    m.c.mail_from,
    m.c.subject,
    m.c.header_from,
    m.c.header_to,
    m.c.size,
    m.c.attachments,
    m.c.snippet,
    m.c.seen,
    m.c.transforms,
).where(m.c.id.in_(bindparam("ids", expanding=True)))
_STATES = (
    select(r.c.message_id, r.c.state, func.count())
    .where(r.c.message_id.in_(bindparam("ids", expanding=True)))
    .group_by(r.c.message_id, r.c.state)
)
"""Statements built once (SQLAlchemy finds their compiled form by identity)."""


def _listed(conn: Connection, ids: Sequence[str]) -> list[ListedMessage]:
    """What the list shows of these messages, in the order given (deleted ones left out)."""
    if not ids:
        return []
    states: dict[str, dict[str, int]] = {}
    for message_id, state, n in conn.execute(_STATES, {"ids": list(ids)}):
        states.setdefault(message_id, {})[state] = int(n)
    rows = {row.id: row for row in conn.execute(_ROWS, {"ids": list(ids)})}
    tagged = tags_of(conn, ids)
    found = []
    for ident in dict.fromkeys(ids):
        row = rows.get(ident)
        if row is None:
            continue
        by_state = states.get(ident, {})
        found.append(
            ListedMessage(
                id=row.id,
                received_at=row.received_at,
                mail_from=row.mail_from,
                subject=row.subject,
                header_from=row.header_from,
                header_to=row.header_to,
                size=row.size,
                attachments=row.attachments,
                snippet=row.snippet,
                seen=bool(row.seen),
                states=tuple(sorted(by_state.items(), key=lambda item: (-item[1], item[0]))),
                transforms=tuple(json_strings(row.transforms)),
                tags=tuple(tagged.get(ident, ())),
            )
        )
    return found


async def log_version(db: Database) -> str:
    """The log's version alone: whether a page drawn at a version need be drawn again."""
    return await db.read(_log_version)


def _log_version(conn: Connection) -> str:
    """A token that changes when a message arrives, a delivery attempt is logged or an action
    changes messages in place (read, tagged, deleted, held: the change outbox): three lookups at
    the end of primary-key indexes, so a page that polls learns cheaply that nothing changed."""
    a, c = schema.attempts, schema.log_changes
    newest = conn.execute(select(func.max(m.c.id))).scalar()
    attempt = conn.execute(select(func.max(a.c.id))).scalar()
    change = conn.execute(select(func.max(c.c.id))).scalar()
    return f"{newest or ''}.{attempt or 0}.{change or 0}"
