"""Counts per time bucket for the summary's charts: accepted messages, refused recipients,
delivered and failed attempts, each one grouped range scan over an indexed time column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, cast, func, select
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database


@dataclass(frozen=True, slots=True)
class Series:
    """Counts in `buckets` equal spans ending at `end` (oldest first)."""

    start: float
    width: float
    accepted: tuple[int, ...]
    refused: tuple[int, ...]
    delivered: tuple[int, ...]
    failed: tuple[int, ...]


async def activity(db: Database, *, end: float, width: float, buckets: int) -> Series:
    """Accepted messages, refused recipients, delivered and failed attempts per bucket."""
    buckets = max(1, min(buckets, 288))
    return await db.read(_activity, end - width * buckets, width, buckets)


def _activity(conn: Connection, start: float, width: float, buckets: int) -> Series:
    m, f, a = schema.messages, schema.refusals, schema.attempts

    def counts(column: Any, *where: Any) -> tuple[int, ...]:
        slot = cast(func.floor((column - start) / width), Float)
        out = [0] * buckets
        statement = (
            select(slot, func.count())
            .where(column >= start, column < start + width * buckets, *where)
            .group_by(slot)
        )
        for index, n in conn.execute(statement):
            if index is not None and 0 <= int(index) < buckets:
                out[int(index)] = int(n)
        return tuple(out)

    return Series(
        start,
        width,
        counts(m.c.received_at),
        counts(f.c.refused_at),
        counts(a.c.started_at, a.c.outcome.in_(("delivered", "partial"))),
        counts(a.c.started_at, a.c.outcome == "failed"),
    )
