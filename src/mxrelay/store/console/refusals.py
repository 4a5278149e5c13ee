"""The refusal log, newest first and keyset-paged, and the refused domains of a period."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.console.common import PAGE_LIMIT


@dataclass(frozen=True, slots=True)
class RefusalView:
    refused_at: float
    client_address: str
    helo: str
    mail_from: str
    recipient: str
    code: int
    enhanced: str
    text: str
    reason: str


def refusal_columns() -> Any:
    f = schema.refusals
    return select(
        f.c.refused_at,
        f.c.client_address,
        f.c.helo,
        f.c.mail_from,
        f.c.recipient,
        f.c.code,
        f.c.enhanced,
        f.c.text,
        f.c.reason,
    )


@dataclass(frozen=True, slots=True)
class RefusalPage:
    refusals: tuple[RefusalView, ...]
    next_before: tuple[float, int] | None
    """(refused_at, id) of the last row, where the next page starts; None on the last page."""


async def refusal_page(
    db: Database,
    *,
    contains: str | None = None,
    before: tuple[float, int] | None = None,
    limit: int = 50,
) -> RefusalPage:
    """Refusals newest first, optionally whose recipient contains `contains`, keyset-paged on
    (time, id)."""
    limit = max(1, min(limit, PAGE_LIMIT))
    return await db.read(_refusal_page, contains, before, limit)


def _refusal_page(
    conn: Connection, contains: str | None, before: tuple[float, int] | None, limit: int
) -> RefusalPage:
    f = schema.refusals
    statement = refusal_columns().add_columns(f.c.id)
    if contains:
        statement = statement.where(
            func.lower(f.c.recipient).contains(contains.lower()[:512], autoescape=True)
        )
    if before is not None:
        at, row_id = before
        statement = statement.where(
            (f.c.refused_at < at) | and_(f.c.refused_at == at, f.c.id < row_id)
        )
    rows = conn.execute(
        statement.order_by(f.c.refused_at.desc(), f.c.id.desc()).limit(limit + 1)
    ).all()
    shown = rows[:limit]
    refusals = tuple(RefusalView(*row[:-1]) for row in shown)
    after = (float(shown[-1][0]), int(shown[-1][-1])) if len(rows) > limit else None
    return RefusalPage(refusals, after)


@dataclass(frozen=True, slots=True)
class DomainCount:
    domain: str
    refusals: int
    reasons: tuple[tuple[str, int], ...]


async def refusals_by_domain(db: Database, *, since: float, limit: int = 50) -> list[DomainCount]:
    """Recipient domains refused since `since`, most refused first, with their reasons."""
    return await db.read(_refusals_by_domain, since, max(1, min(limit, PAGE_LIMIT)))


DOMAIN_SCAN_LIMIT = 100_000
"""Refusals read for the per-domain counts (the newest ones, if the day had more)."""


def _refusals_by_domain(conn: Connection, since: float, limit: int) -> list[DomainCount]:
    f = schema.refusals
    counts: dict[str, dict[str, int]] = {}
    rows = conn.execute(
        select(f.c.recipient, f.c.reason)
        .where(f.c.refused_at >= since)
        .order_by(f.c.refused_at.desc())
        .limit(DOMAIN_SCAN_LIMIT)
    )
    for recipient, reason in rows:
        domain = str(recipient).rpartition("@")[2].lower().strip("<>") or "(none)"
        by_reason = counts.setdefault(domain, {})
        by_reason[reason] = by_reason.get(reason, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return [
        DomainCount(
            domain,
            sum(reasons.values()),
            tuple(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        )
        for domain, reasons in ranked[:limit]
    ]
