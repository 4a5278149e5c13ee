"""Listing and searching the message log (for the web UI and the API).

Newest first, paged with limit/offset, filtered by words (the full-text index over subject,
addresses and text body: FTS5 on SQLite, `tsvector` on PostgreSQL), envelope sender, recipient,
recipient delivery state and received time. Every filter is served by an index; the words go to the
database as bound parameters, never spliced into SQL; `%` and `_` in a sender or recipient filter
are characters to find, not LIKE wildcards (`autoescape`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select, text
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database, Dialect

_WORD = re.compile(r"[\w@.+-]+", re.UNICODE)


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchQuery:
    text: str | None = None
    """Words that must all occur (subject, addresses or body text)."""
    sender: str | None = None
    """Envelope sender contains this (case-insensitive)."""
    recipient: str | None = None
    """Some recipient address contains this (case-insensitive)."""
    state: str | None = None
    """Some recipient is in this delivery state (queued, deferred, held, delivered, failed)."""
    before: float | None = None
    after: float | None = None


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


def parse_search(query: str) -> SearchQuery:
    """`from:` (envelope sender), `to:` (a recipient), `status:` (a recipient's delivery state),
    `before:`/`after:` (Unix time); other words must all occur in subject, addresses or text."""
    fields: dict[str, Any] = {}
    words: list[str] = []
    for token in query.split():
        key, sep, value = token.partition(":")
        key = key.lower()
        if sep and value and key in ("from", "to", "status"):
            fields[{"from": "sender", "to": "recipient", "status": "state"}[key]] = value
        elif sep and value and key in ("before", "after"):
            try:
                fields[key] = float(value)
            except ValueError:
                words.append(token)
        else:
            words.append(token)
    return SearchQuery(text=" ".join(words) or None, **fields)


def fts5_query(words: str) -> str:
    """An FTS5 query matching all `words` in the searchable columns (each word quoted)."""
    terms = " AND ".join('"' + w.replace('"', '""') + '"' for w in _WORD.findall(words))
    return f"{{subject addresses body}} : ({terms})" if terms else ""


def _conditions(
    db: Database, query: SearchQuery
) -> tuple[list[ColumnElement[bool]], dict[str, Any]]:
    m, r = schema.messages, schema.recipients
    conditions: list[ColumnElement[bool]] = []
    params: dict[str, Any] = {}
    if query.text and _WORD.search(query.text):
        if db.dialect is Dialect.SQLITE:
            matching = text("SELECT message_id FROM message_search WHERE message_search MATCH :fts")
            params["fts"] = fts5_query(query.text)
        else:
            matching = text(
                "SELECT message_id FROM message_search "
                "WHERE document @@ plainto_tsquery('simple', :fts)"
            )
            params["fts"] = " ".join(_WORD.findall(query.text))
        conditions.append(m.c.id.in_(matching.columns(message_id=schema.messages.c.id.type)))
    if query.sender:
        conditions.append(func.lower(m.c.mail_from).contains(query.sender.lower(), autoescape=True))
    if query.recipient or query.state:
        recipient_conditions = [r.c.message_id == m.c.id]
        if query.recipient:
            recipient_conditions.append(
                func.lower(r.c.address).contains(query.recipient.lower(), autoescape=True)
            )
        if query.state:
            recipient_conditions.append(r.c.state == query.state)
        conditions.append(exists().where(and_(*recipient_conditions)))
    if query.before is not None:
        conditions.append(m.c.received_at < query.before)
    if query.after is not None:
        conditions.append(m.c.received_at >= query.after)
    return conditions, params


async def search_messages(
    db: Database, query: SearchQuery, *, limit: int = 50, offset: int = 0
) -> list[MessageSummary]:
    m = schema.messages
    conditions, params = _conditions(db, query)
    statement = (
        select(
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
        )
        .where(*conditions)
        .order_by(m.c.received_at.desc(), m.c.id.desc())
        .limit(limit)
        .offset(offset)
    )

    def run(conn: Connection) -> list[MessageSummary]:
        return [MessageSummary(**dict(row._mapping)) for row in conn.execute(statement, params)]

    return await db.read(run)


async def count_messages(db: Database, query: SearchQuery) -> int:
    conditions, params = _conditions(db, query)
    statement = select(func.count()).select_from(schema.messages).where(*conditions)
    return await db.read(lambda conn: int(conn.execute(statement, params).scalar_one()))
