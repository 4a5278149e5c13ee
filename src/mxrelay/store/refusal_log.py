"""The refused-recipient log, read: a search (address, domain, reason, time) and per-domain counts.

Refusals are written at RCPT time by the SMTP side (`message_log.insert_refusals`) and pruned with
the log (`retention.py`). Reads here are bounded: a page of at most `PAGE_LIMIT` rows, newest
first (the `refused_at` index), and domain counts over at most `COUNT_WINDOW` seconds, at most
`DOMAIN_LIMIT` domains, largest first. The domain is the part after the last `@`, lower case,
computed in SQL on both dialects. `%` and `_` in an address filter are characters to find.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, desc, func, literal_column, select
from sqlalchemy.engine import Connection, RowMapping

from mxrelay.store import schema
from mxrelay.store.backend import Database, Dialect

PAGE_LIMIT = 500
START_LIMIT = 100_000
"""Rows a search may skip: deeper pages are narrowed by time instead."""
DOMAIN_LIMIT = 500
COUNT_WINDOW = 7 * 86_400.0
"""The longest span domain counts are taken over."""


@dataclass(frozen=True, slots=True)
class RefusalView:
    key: int
    refused_at: float
    client_address: str
    helo: str
    username: str | None
    mail_from: str
    recipient: str
    code: int
    enhanced: str
    text: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RefusalQuery:
    address: str | None = None
    """The recipient contains this (case-insensitive)."""
    domain: str | None = None
    """The recipient's domain is this (case-insensitive)."""
    reason: str | None = None
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True, slots=True)
class DomainCount:
    domain: str
    count: int
    last: float


REFUSAL_COLUMNS = (
    "id",
    "refused_at",
    "client_address",
    "helo",
    "username",
    "mail_from",
    "recipient",
    "code",
    "enhanced",
    "text",
    "reason",
)


def refusal_view(row: RowMapping) -> RefusalView:
    values = {name: row[name] for name in REFUSAL_COLUMNS}
    values["key"] = values.pop("id")
    return RefusalView(**values)


def refusal_select() -> Select[Any]:
    table = schema.refusals
    return select(*(table.c[name] for name in REFUSAL_COLUMNS))


def domain_of(dialect: Dialect) -> ColumnElement[str]:
    """The recipient's domain: what follows its last `@`, lower case."""
    if dialect is Dialect.POSTGRESQL:
        return func.lower(func.substring(schema.refusals.c.recipient, "@([^@]*)$"))
    # SQLite has no regular expressions: rtrim() takes off every trailing character that is not
    # an `@`, which leaves the address up to its last `@`; the domain is what follows it.
    up_to_at: ColumnElement[str] = literal_column("rtrim(recipient, replace(recipient, '@', ''))")
    return func.lower(func.substr(schema.refusals.c.recipient, func.length(up_to_at) + 1))


def _conditions(dialect: Dialect, query: RefusalQuery) -> list[ColumnElement[bool]]:
    table = schema.refusals
    found: list[ColumnElement[bool]] = []
    if query.address:
        found.append(func.lower(table.c.recipient).contains(query.address.lower(), autoescape=True))
    if query.domain:
        domain = query.domain.lower().lstrip("@")
        found.append(func.lower(table.c.recipient).endswith("@" + domain, autoescape=True))
        found.append(domain_of(dialect) == domain)
    if query.reason:
        found.append(table.c.reason == query.reason)
    if query.since is not None:
        found.append(table.c.refused_at >= query.since)
    if query.until is not None:
        found.append(table.c.refused_at < query.until)
    return found


async def search_refusals(
    db: Database, query: RefusalQuery, *, limit: int = 50, start: int = 0
) -> list[RefusalView]:
    """A page of refusals matching `query`, newest first."""
    table = schema.refusals
    statement = (
        refusal_select()
        .where(*_conditions(db.dialect, query))
        .order_by(desc(table.c.refused_at), desc(table.c.id))
        .limit(min(max(limit, 1), PAGE_LIMIT))
        .offset(min(max(start, 0), START_LIMIT))
    )

    def run(conn: Connection) -> list[RefusalView]:
        return [refusal_view(row) for row in conn.execute(statement).mappings()]

    return await db.read(run)


async def domain_counts(
    db: Database, *, since: float, until: float, limit: int = 100
) -> tuple[int, list[DomainCount]]:
    """Refusals between `since` and `until` (at most `COUNT_WINDOW` apart): their number, and
    the domains refused most, each with its count and its latest refusal."""
    table = schema.refusals
    since = max(since, until - COUNT_WINDOW)
    window = (table.c.refused_at >= since, table.c.refused_at < until)
    domain = domain_of(db.dialect).label("domain")
    count = func.count().label("count")
    statement = (
        select(domain, count, func.max(table.c.refused_at).label("last"))
        .where(*window)
        .group_by(domain)
        .order_by(desc(count), domain)
        .limit(min(max(limit, 1), DOMAIN_LIMIT))
    )
    total = select(func.count()).select_from(table).where(*window)

    def run(conn: Connection) -> tuple[int, list[DomainCount]]:
        counts = [
            DomainCount(row["domain"] or "", int(row["count"]), float(row["last"]))
            for row in conn.execute(statement).mappings()
        ]
        return int(conn.execute(total).scalar_one()), counts

    return await db.read(run)
