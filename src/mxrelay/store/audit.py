"""The audit log: who acted on the message log through the API, when, from where, on what, on how
many, and how it ended.

Written one row per action (`record_audit`, a durable write: an action that took effect is not
forgotten by a crash), read newest first in pages (`list_audit`), pruned by age with the rest of
the store (`retention.py`, `MXRELAY_STORE_AUDIT_RETENTION`). What the web records and when is
`web/audit.py`'s; this module only stores. Every text is made storable and cut to its column's
size here, so no caller can make a write fail by handing in a long target or a NUL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, select
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.bulk import storable

ACTOR_LENGTH = 255
CLIENT_LENGTH = 64
ACTION_LENGTH = 255
TARGET_LENGTH = 4096
"""Characters of a target kept: a few hundred message ids, or a long search."""
OUTCOME_LENGTH = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    at: float
    """When, in epoch seconds."""
    actor: str
    """The authenticated user name, or `anonymous` where the UI has no login of its own."""
    client: str
    """The client's address."""
    action: str
    """What was done: a word (`delete`, `release`, `send`, `tag`...) or, for a request no handler
    described, its method and path."""
    target: str = ""
    """On what: message ids, a search, a tag."""
    count: int | None = None
    """On how many (messages, recipients), when the handler knows."""
    outcome: str = "ok"
    """`ok`, `denied` (403), `refused` (another 4xx) or `error` (5xx)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: float | None = None
    """Entries at or after this time."""
    until: float | None = None
    """Entries before this time."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    entry: AuditEntry


@dataclass(frozen=True, slots=True)
class AuditPage:
    total: int
    """Entries matching the filter, all pages together."""
    records: tuple[AuditRecord, ...]


def _cut(text: str, length: int) -> str:
    """`text` as its column keeps it: storable (a NUL in a request's target, which PostgreSQL
    refuses, as U+FFFD: `bulk.storable`) and within `length` characters."""
    text = storable(text)
    return text if len(text) <= length else text[: length - 1] + "…"


def _row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at,
        "actor": _cut(entry.actor, ACTOR_LENGTH),
        "client_address": _cut(entry.client, CLIENT_LENGTH),
        "action": _cut(entry.action, ACTION_LENGTH),
        "target": _cut(entry.target, TARGET_LENGTH),
        "count": entry.count,
        "outcome": _cut(entry.outcome, OUTCOME_LENGTH),
    }


def _insert(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(schema.audit_log), row)


async def record_audit(db: Database, entry: AuditEntry) -> None:
    """Store one entry, durably."""
    await db.write(_insert, _row(entry))


def _where(filters: AuditFilter) -> ColumnElement[bool]:
    table = schema.audit_log.c
    conditions: list[ColumnElement[bool]] = []
    if filters.actor is not None:
        conditions.append(table.actor == filters.actor)
    if filters.action is not None:
        conditions.append(table.action == filters.action)
    if filters.outcome is not None:
        conditions.append(table.outcome == filters.outcome)
    if filters.since is not None:
        conditions.append(table.at >= filters.since)
    if filters.until is not None:
        conditions.append(table.at < filters.until)
    return and_(True, *conditions)


def _page(conn: Connection, start: int, limit: int, filters: AuditFilter) -> AuditPage:
    table = schema.audit_log
    where = _where(filters)
    total = conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
    rows = conn.execute(
        select(table)
        .where(where)
        .order_by(table.c.at.desc(), table.c.id.desc())
        .limit(limit)
        .offset(start)
    ).mappings()
    records = tuple(
        AuditRecord(
            int(row["id"]),
            AuditEntry(
                at=float(row["at"]),
                actor=row["actor"],
                client=row["client_address"],
                action=row["action"],
                target=row["target"],
                count=row["count"],
                outcome=row["outcome"],
            ),
        )
        for row in rows
    )
    return AuditPage(int(total), records)


async def list_audit(
    db: Database, start: int, limit: int, filters: AuditFilter | None = None
) -> AuditPage:
    """Entries newest first, `limit` of them from `start`, with the count of all that match."""
    return await db.read(_page, start, limit, filters or AuditFilter())
