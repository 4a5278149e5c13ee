"""The operator's filters on the queue (`mxrelay queue list --sender … --older-than …`).

`QueueFilter` is what an operator asks for; `listing()` builds the one queue statement whose
conditions depend on it, in SQLAlchemy Core. Every fixed statement of the queue is a named query
of `sql/*.sql`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, select

from mxrelay.model import QueueState
from mxrelay.store import schema
from mxrelay.store.queue.entries import ENTRY_COLUMNS


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueFilter:
    """Operator filters for `mxrelay queue` (all optional; combined with AND)."""

    states: tuple[QueueState, ...] = ()
    sender: str | None = None
    recipient: str | None = None
    older_than: float | None = None
    """Seconds: only entries created at least this long ago."""
    newer_than: float | None = None
    message_ids: tuple[str, ...] = ()


def listing(where: QueueFilter, now: float, limit: int) -> Select[Any]:
    """The entries `where` matches, oldest first: `ENTRY_COLUMNS`, then the message's sender,
    subject and size."""
    q, m = schema.queue, schema.messages
    return (
        select(*(q.c[c] for c in ENTRY_COLUMNS), m.c.mail_from, m.c.subject, m.c.size)
        .join(m, m.c.id == q.c.message_id)
        .where(*conditions(where, now))
        .order_by(q.c.created_at, q.c.id)
        .limit(limit)
    )


def conditions(where: QueueFilter, now: float) -> list[ColumnElement[bool]]:
    q, m, r = schema.queue, schema.messages, schema.recipients
    found: list[ColumnElement[bool]] = []
    if where.states:
        found.append(q.c.state.in_([s.value for s in where.states]))
    if where.sender is not None:
        found.append(func.lower(m.c.mail_from).contains(where.sender.lower(), autoescape=True))
    if where.recipient is not None:
        found.append(
            exists().where(
                and_(
                    r.c.message_id == q.c.message_id,
                    r.c.variant == q.c.variant,
                    func.lower(r.c.address).contains(where.recipient.lower(), autoescape=True),
                )
            )
        )
    if where.older_than is not None:
        found.append(q.c.created_at <= now - where.older_than)
    if where.newer_than is not None:
        found.append(q.c.created_at >= now - where.newer_than)
    if where.message_ids:
        found.append(q.c.message_id.in_(where.message_ids))
    return found
