"""The change outbox: what an API action did to the log, for the live events of every replica.

New messages, delivery attempts and refusals are events already: their rows are the record, and
the event pollers read them by key (`feed.py`), so the accept path writes nothing for events. What
an action changes in place (a message deleted, marked read, tagged, the log emptied, a queue
entry held) leaves no new row, so the action writes one here with `announce`, and every replica's
poller turns it into a websocket frame (`{"Type": kind, "Data": data}`). On PostgreSQL the insert
also wakes the pollers (a `NOTIFY` from the migration's trigger).

The outbox is not a history: rows older than `KEEP_SECONDS` are deleted by the next announcement,
so the table holds minutes of changes whatever the traffic, and a poller that was away longer
than that has missed them (it starts again from the newest row).
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database

KEEP_SECONDS = 600.0
"""How long an announced change stays for pollers that are behind."""

EACH_LIMIT = 1000
"""Changes `announce_each` writes one by one; past it, one `prune` stands for them all (the
clients reload, as Mailpit's do after pruning)."""

DATA_LIMIT = 64 * 1024
"""Characters of one change's data as JSON; larger data is refused (a programming error)."""


class ChangeKind(enum.StrEnum):
    """The frame types an API action announces; Mailpit's names, plus mxrelay's `delivery`."""

    UPDATE = "update"
    """A message's read flag or tags changed: `{"ID": …, "Read": …}` or `{"ID": …, "Tags": […]}`."""
    DELETE = "delete"
    """A message was deleted: `{"ID": …}`."""
    PRUNE = "prune"
    """Messages went (retention, or more deletions than `EACH_LIMIT`): no data, clients reload."""
    TRUNCATE = "truncate"
    """Every message was deleted: no data."""
    DELIVERY = "delivery"
    """An operator acted on a message's queue entries: `{"ID": …, "Action": …, "Changed": n}`."""
    ERROR = "error"
    """Something clients should show as an error: a message string."""


@dataclass(frozen=True, slots=True)
class Change:
    """One announced change as a poller reads it."""

    key: int
    created_at: float
    kind: ChangeKind | None
    """None: a kind this version does not know."""
    data: Any


async def announce(
    db: Database,
    kind: ChangeKind,
    data: Mapping[str, Any] | str | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """Record one change for the event pollers (and drop changes older than `KEEP_SECONDS`)."""
    await db.write(_write, [(kind, data)], clock(), durable=False)


async def announce_all(
    db: Database,
    changes: Sequence[tuple[ChangeKind, Mapping[str, Any] | str | None]],
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """Several changes in one write (the frames of one API action)."""
    if changes:
        await db.write(_write, list(changes), clock(), durable=False)


async def announce_each(
    db: Database,
    kind: ChangeKind,
    items: Sequence[Mapping[str, Any]],
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """One change per item (a deletion of several messages), or a single `prune` past
    `EACH_LIMIT` items."""
    if not items:
        return
    changes: list[tuple[ChangeKind, Mapping[str, Any] | str | None]]
    if len(items) > EACH_LIMIT:
        changes = [(ChangeKind.PRUNE, None)]
    else:
        changes = [(kind, item) for item in items]
    await db.write(_write, changes, clock(), durable=False)


def _write(
    conn: Connection,
    changes: Sequence[tuple[ChangeKind, Mapping[str, Any] | str | None]],
    now: float,
) -> None:
    table = schema.log_changes
    rows = []
    for kind, data in changes:
        text = json.dumps(data, separators=(",", ":"))
        if len(text) > DATA_LIMIT:
            raise ValueError(f"a {kind.value} change's data is over {DATA_LIMIT} characters")
        rows.append({"created_at": now, "kind": kind.value, "data": text})
    conn.execute(delete(table).where(table.c.created_at < now - KEEP_SECONDS))
    conn.execute(insert(table), rows)


def change_from_row(key: int, created_at: float, kind: str, data: str) -> Change:
    """A `log_changes` row as a `Change` (`kind` None for a kind this version does not know)."""
    try:
        return Change(key, created_at, ChangeKind(kind), json.loads(data))
    except ValueError:
        return Change(key, created_at, None, None)
