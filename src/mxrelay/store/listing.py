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

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, bindparam, case, func, select, text
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database, Dialect
from mxrelay.store.fields import AddressLists
from mxrelay.store.search_sql import (
    Probe,
    Source,
    compile_search,
    id_bound,
    narrows_by_id,
    single_source,
    trigram_probe,
)
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


_COUNTS = select(
    func.coalesce(func.sum(schema.message_counts.c.total), 0),
    func.coalesce(func.sum(schema.message_counts.c.unread), 0),
)
_ENVELOPES = (
    select(schema.recipients.c.message_id, schema.recipients.c.address)
    .where(schema.recipients.c.message_id.in_(bindparam("ids", expanding=True)))
    .order_by(
        schema.recipients.c.message_id, schema.recipients.c.variant, schema.recipients.c.position
    )
)
"""Statements built once: SQLAlchemy then finds their compiled form by identity, not by
building and hashing a new statement on every listing."""


def mailbox_counts(conn: Connection) -> Counts:
    total, unread = conn.execute(_COUNTS).one()
    return Counts(int(total), int(unread))


def matching(
    conn: Connection,
    query: SearchQuery,
    before: float | None = None,
    probe: Probe | None = None,
) -> Select[str]:
    """The ids of the messages `query` matches (received before `before`), newest first, as a
    statement for `conn` (whose index it may look at to plan: `search_sql.trigram_probe`)."""
    probe = probe or trigram_probe(conn)
    conditions = compile_search(query, Dialect(conn.dialect.name), probe)
    statement = select(m.c.id).where(*conditions)
    if before is not None:
        statement = statement.where(m.c.id < id_bound(before))
    return statement.order_by(m.c.id.desc())


def _counts(
    conn: Connection, query: SearchQuery, before: float | None, probe: Probe | None = None
) -> Counts:
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
    conditions = compile_search(query, Dialect(conn.dialect.name), probe or trigram_probe(conn))
    unread = func.sum(case((m.c.seen, 0), else_=1))
    statement = select(func.count(), func.coalesce(unread, 0)).select_from(m).where(*conditions)
    if before is not None:
        statement = statement.where(m.c.id < id_bound(before))
    if conn.dialect.name == Dialect.SQLITE and narrows_by_id(query):
        total, unread_count = _through_index(conn, statement, COUNTING_INDEX)
    else:
        total, unread_count = conn.execute(statement).one()
    return Counts(int(total), int(unread_count))


COUNTING_INDEX = "ix_messages_seen"
"""(id, seen): a search's matches found by id are counted, and their unread ones, from this
index alone. SQLite's planner takes the primary key's index for `id IN (...)` instead (it has no
statistics to tell them apart) and then reads every matching row, so the count names it."""
_OUTER_FROM = re.compile(r"\bFROM messages\b")


def _through_index(conn: Connection, statement: Select[Any], index: str) -> tuple[Any, ...]:
    """`statement`'s one row (on `messages`), run with SQLite's `INDEXED BY index` on its outer
    table: its compiled text gets the clause after the first `FROM messages` (the outer one:
    subqueries come later, in WHERE); the parameters stay bound."""
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    sql = _OUTER_FROM.sub(f"FROM messages INDEXED BY {index}", compiled.string, count=1)
    names = compiled.positiontup or ()
    values = tuple(compiled.params[name] for name in names)
    return tuple(conn.exec_driver_sql(sql, values).one())


_SUMMARIES = (
    select(*SUMMARY_COLUMNS)
    .where(m.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(m.c.id.desc())
)


def summaries(conn: Connection, ids: Sequence[str]) -> list[MessageSummary]:
    """The summaries of these messages, newest first: one statement for the rows, one for
    their tags."""
    if not ids:
        return []
    rows = conn.execute(_SUMMARIES, {"ids": list(ids)}).all()
    if not rows:
        return []
    tags = tags_of(conn, [row.id for row in rows])
    unfilled = [row.id for row in rows if row.addresses is None]
    envelopes = _envelopes(conn, unfilled) if unfilled else {}
    found = []
    for row in rows:
        ident = row.id
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
    found: dict[str, list[str]] = {}
    for message_id, address in conn.execute(_ENVELOPES, {"ids": list(ids)}):
        found.setdefault(message_id, []).append(address)
    return found


def _page(
    conn: Connection, query: SearchQuery, start: int, limit: int, before: float | None
) -> Page:
    probe = trigram_probe(conn)
    mailbox = mailbox_counts(conn)
    ids, counted = _ids(conn, query, start, limit, before, probe, counting=True)
    if counted is None:
        # Mailpit's list counts the whole mailbox, `before` or not.
        counted = mailbox if query.everything else _counts(conn, query, before, probe)
    return Page(tuple(summaries(conn, ids)), mailbox, counted, tuple(all_tags(conn)))


def page_ids(
    conn: Connection,
    query: SearchQuery,
    *,
    start: int = 0,
    limit: int = 50,
    before: float | None = None,
    below: str | None = None,
) -> list[str]:
    """The ids of the page `list_page` would show, newest first, found the same way but
    without counting the matches (a broad search's count reads every match); `below`, a message
    id, leaves out that message and every newer one (a keyset page: an index range, however
    deep)."""
    probe = trigram_probe(conn)
    return _ids(conn, query, start, limit, before, probe, counting=False, below=below)[0]


def _ids(
    conn: Connection,
    query: SearchQuery,
    start: int,
    limit: int,
    before: float | None,
    probe: Probe | None,
    *,
    counting: bool,
    below: str | None = None,
) -> tuple[list[str], Counts | None]:
    """A page's ids, and the matches' counts when a one-term search's source gave them."""
    source = None
    if not query.everything:
        source = single_source(query, Dialect(conn.dialect.name), probe)
    if source is not None:
        found = _from_source(
            conn, query, source, start, limit, before, counting=counting, below=below
        )
        if found is not None:
            return found
    page = matching(conn, query, before, probe)
    if below is not None:
        page = page.where(m.c.id < below)
    return list(conn.execute(page.limit(limit).offset(start)).scalars()), None


SOURCE_LIMIT = 100_000
"""Ids of a one-term search read into memory at most to page them (a search matching more is
paged by the database: `_page`)."""


def _from_source(
    conn: Connection,
    query: SearchQuery,
    source: Source,
    start: int,
    limit: int,
    before: float | None,
    *,
    counting: bool = True,
    below: str | None = None,
) -> tuple[list[str], Counts | None] | None:
    """A one-term search (`single_source`), its matches found once: an index in id order gives
    the page directly (`status:`, `tag:`: the newest ids first, as many as the page needs) and
    the count is one statement; other sources (full text, header fields) are read once, the page
    sorted from them here and the count taken on just those ids (`_counts_of`). None when a
    source has more than SOURCE_LIMIT ids (the general way then)."""
    bound = None if before is None else id_bound(before)
    if below is not None and (bound is None or below < bound):
        bound = below
    if source.ordered and isinstance(source.ids, Select):
        column = source.ids.selected_columns[0]
        newest = source.ids if bound is None else source.ids.where(column < bound)
        page = newest.with_only_columns(column).distinct().order_by(column.desc())
        ids = list(conn.execute(page.limit(limit).offset(start)).scalars())
        return ids, _counts(conn, query, before) if counting else None
    found: set[str] = set()
    for (ident,) in conn.execute(source.ids).yield_per(1000):
        if bound is None or ident < bound:
            found.add(str(ident))
            if len(found) > SOURCE_LIMIT:
                return None
    ordered = sorted(found, reverse=True)
    return ordered[start : start + limit], _counts_of(conn, ordered) if counting else None


def _counts_of(conn: Connection, ids: Sequence[str]) -> Counts:
    """How many of these ids are messages, and unread ones: each looked up in the index of
    (id, read flag), the ids handed over as one JSON array (SQLite) or array (PostgreSQL)."""
    if not ids:
        return Counts()
    if conn.dialect.name == Dialect.SQLITE:
        sql = (
            f"SELECT count(*), coalesce(sum(seen = 0), 0) FROM messages INDEXED BY {COUNTING_INDEX} "
            "WHERE id IN (SELECT value FROM json_each(?))"
        )
        total, unread = conn.exec_driver_sql(sql, (json.dumps(list(ids)),)).one()
    else:
        total, unread = conn.execute(_COUNT_ANY, {"ids": list(ids)}).one()
    return Counts(int(total), int(unread))


_COUNT_ANY = text(
    "SELECT count(*), coalesce(sum(CASE WHEN seen THEN 0 ELSE 1 END), 0) FROM messages "
    "WHERE id = ANY(:ids)"
)


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
    await indexed_for(db, query)
    return await db.read(_page, query, start, limit, before)


async def count_matching(db: Database, query: SearchQuery) -> Counts:
    await indexed_for(db, query)
    return await db.read(_counts, query, None)


async def matching_ids(db: Database, query: SearchQuery) -> list[str]:
    """Every message `query` matches, newest first: what a change to a search's matches works
    through (in batches of these ids), finding them once rather than once per batch."""
    await indexed_for(db, query)
    return await db.read(lambda conn: list(conn.execute(matching(conn, query)).scalars()))


async def newest_matching(db: Database, query: SearchQuery) -> str | None:
    def first(conn: Connection) -> str | None:
        row = conn.execute(matching(conn, query).limit(1)).first()
        return None if row is None else str(row[0])

    await indexed_for(db, query)
    return await db.read(first)


async def indexed_for(db: Database, query: SearchQuery) -> None:
    """A search reads the search index: it waits until every message committed is in it."""
    if not query.everything:
        await db.indexed()
