"""The message list: a page of summaries, newest first, with the counts Mailpit's list carries.

Newest first is by message id: a ULID, whose first 48 bits are the millisecond the message
arrived, so the primary key orders the list and a `before` time is a key range (`id_bound`):
the first page, and every page reached through `before`, reads as many index entries as it shows.
A page reached through `start` skips that many entries of the same index, without reading rows.

The mailbox's total and unread counts come from `message_counts`, kept by triggers in every
transaction that adds, removes or marks a message (`COUNT(*)` would read the whole table for
every listing: at a million messages, tens of milliseconds on each request). A search counts its
own matches, which its conditions find through indexes (`search_sql.py`); a search of nothing but
`is:read`/`is:unread` is answered from the counts too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Select, case, func, select
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database, Dialect
from mxrelay.store.fields import AddressLists
from mxrelay.store.search_sql import compile_search, id_bound
from mxrelay.store.search_terms import Filter, SearchQuery
from mxrelay.store.tags import all_tags, tags_of

m = schema.messages
EVERYTHING = SearchQuery()

SUMMARY_COLUMNS = (
    m.c.id,
    m.c.received_at,
    m.c.mail_from,
    m.c.subject,
    m.c.header_from,
    m.c.header_to,
    m.c.message_id_header,
    m.c.username,
    m.c.size,
    m.c.attachments,
    m.c.snippet,
    m.c.seen,
    m.c.addresses,
)


@dataclass(frozen=True, slots=True)
class MessageSummary:
    id: str
    received_at: float
    mail_from: str
    subject: str
    header_from: str
    header_to: str
    message_id_header: str
    username: str | None
    size: int
    attachments: int
    snippet: str
    seen: bool
    addresses: AddressLists = field(default_factory=AddressLists)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Counts:
    total: int = 0
    unread: int = 0


@dataclass(frozen=True, slots=True)
class Page:
    messages: tuple[MessageSummary, ...]
    mailbox: Counts
    """Every message in the store."""
    matching: Counts
    """The messages the query matches (before `before`, for a search)."""
    tags: tuple[str, ...]
    """Every tag in use."""


def mailbox_counts(conn: Connection) -> Counts:
    c = schema.message_counts
    total, unread = conn.execute(
        select(func.coalesce(func.sum(c.c.total), 0), func.coalesce(func.sum(c.c.unread), 0))
    ).one()
    return Counts(int(total), int(unread))


def matching(query: SearchQuery, dialect: Dialect, before: float | None = None) -> Select[str]:
    """The ids of the messages `query` matches (received before `before`), newest first."""
    statement = select(m.c.id).where(*compile_search(query, dialect))
    if before is not None:
        statement = statement.where(m.c.id < id_bound(before))
    return statement.order_by(m.c.id.desc())


def _counts(conn: Connection, query: SearchQuery, before: float | None) -> Counts:
    mailbox = mailbox_counts(conn)
    if before is None and all(t.kind in (Filter.READ, Filter.UNREAD) for t in query.terms):
        wants = {(t.kind is Filter.READ) != t.negated for t in query.terms}
        if not wants:
            return mailbox
        if wants == {True}:
            return Counts(mailbox.total - mailbox.unread, 0)
        if wants == {False}:
            return Counts(mailbox.unread, mailbox.unread)
        return Counts()
    dialect = Dialect(conn.dialect.name)
    unread = func.sum(case((m.c.seen, 0), else_=1))
    statement = select(func.count(), func.coalesce(unread, 0)).where(
        *compile_search(query, dialect)
    )
    if before is not None:
        statement = statement.where(m.c.id < id_bound(before))
    total, unread_count = conn.execute(statement).one()
    return Counts(int(total), int(unread_count))


def summaries(conn: Connection, ids: Sequence[str]) -> list[MessageSummary]:
    """The summaries of these messages, in this order (ids not found are left out)."""
    if not ids:
        return []
    rows = {row.id: row for row in conn.execute(select(*SUMMARY_COLUMNS).where(m.c.id.in_(ids)))}
    tags = tags_of(conn, list(rows))
    unfilled = [row.id for row in rows.values() if row.addresses is None]
    envelopes = _envelopes(conn, unfilled) if unfilled else {}
    found = []
    for ident in ids:
        row = rows.get(ident)
        if row is None:
            continue
        if row.addresses is None:
            lists = AddressLists.fallback(row.header_from, row.header_to, envelopes.get(ident, []))
        else:
            lists = AddressLists.from_json(row.addresses)
        found.append(
            MessageSummary(
                id=row.id,
                received_at=row.received_at,
                mail_from=row.mail_from,
                subject=row.subject,
                header_from=row.header_from,
                header_to=row.header_to,
                message_id_header=row.message_id_header,
                username=row.username,
                size=row.size,
                attachments=row.attachments,
                snippet=row.snippet,
                seen=bool(row.seen),
                addresses=lists,
                tags=tuple(tags.get(ident, ())),
            )
        )
    return found


def _envelopes(conn: Connection, ids: Sequence[str]) -> dict[str, list[str]]:
    r = schema.recipients
    rows = conn.execute(
        select(r.c.message_id, r.c.address)
        .where(r.c.message_id.in_(list(ids)))
        .order_by(r.c.message_id, r.c.variant, r.c.position)
    )
    found: dict[str, list[str]] = {}
    for message_id, address in rows:
        found.setdefault(message_id, []).append(address)
    return found


def _page(
    conn: Connection, query: SearchQuery, start: int, limit: int, before: float | None
) -> Page:
    dialect = Dialect(conn.dialect.name)
    page = matching(query, dialect, before).limit(limit).offset(start)
    ids = list(conn.execute(page).scalars())
    mailbox = mailbox_counts(conn)
    # Mailpit's list counts the whole mailbox, `before` or not.
    counted = mailbox if query.everything else _counts(conn, query, before)
    return Page(tuple(summaries(conn, ids)), mailbox, counted, tuple(all_tags(conn)))


async def list_page(
    db: Database,
    query: SearchQuery = EVERYTHING,
    *,
    start: int = 0,
    limit: int = 50,
    before: float | None = None,
) -> Page:
    """A page of the messages `query` matches, newest first, with the counts; one read
    transaction, so the counts and the page agree."""
    return await db.read(_page, query, start, limit, before)


async def count_matching(db: Database, query: SearchQuery) -> Counts:
    return await db.read(_counts, query, None)


async def newest_matching(db: Database, query: SearchQuery) -> str | None:
    def first(conn: Connection) -> str | None:
        row = conn.execute(matching(query, Dialect(conn.dialect.name)).limit(1)).first()
        return None if row is None else str(row[0])

    return await db.read(first)
