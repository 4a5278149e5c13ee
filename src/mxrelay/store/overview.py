"""The queue at a glance for the API: entries by state, the oldest waiting, Graph's pacing lanes.

The counts and the oldest age are the queue's own (`Queue.stats`, what the gauges show); the lanes
are the ones the replicas of one PostgreSQL queue share (`lanes.py`; with SQLite a relay paces in
its own memory and the store has none), at most `LANE_LIMIT` of them, most recently used first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import desc, select
from sqlalchemy.engine import Connection

from mxrelay.model import QueueState
from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.queue import Queue

LANE_LIMIT = 100


@dataclass(frozen=True, slots=True)
class LaneView:
    lane: str
    """The sending mailbox; '' for the app-wide row (requests in flight)."""
    state: Any
    """The lane's state as the Graph transport keeps it (JSON)."""
    updated_at: float


@dataclass(frozen=True, slots=True)
class QueueOverview:
    counts: dict[QueueState, int]
    oldest_created_at: float | None
    lanes: tuple[LaneView, ...]


async def queue_overview(db: Database, *, lane_limit: int = LANE_LIMIT) -> QueueOverview:
    stats = await Queue(db).stats()
    lanes = await db.read(_lanes, min(max(lane_limit, 0), LANE_LIMIT))
    return QueueOverview(stats.counts, stats.oldest_created_at, lanes)


def _lanes(conn: Connection, limit: int) -> tuple[LaneView, ...]:
    table = schema.pacing_lanes
    rows = conn.execute(
        select(table.c.lane, table.c.state, table.c.updated_at)
        .order_by(desc(table.c.updated_at), table.c.lane)
        .limit(limit)
    )
    return tuple(LaneView(lane, _json(state), float(updated)) for lane, state, updated in rows)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
