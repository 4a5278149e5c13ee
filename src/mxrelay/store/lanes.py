"""The pacing lanes in the store, shared by the replicas of one PostgreSQL queue.

Replicas that share a queue send as the same mailboxes, so they must pace them together: one
set of rate windows, concurrency leases and Retry-After pauses per mailbox, not one per process.
This module keeps that state in two small tables and knows nothing of what it means (the rules
are `delivery/pacing.py`'s, the encoding `delivery/lanes.py`'s):

- `pacing_lanes`: one row per sending mailbox (`lane`) holding its state as a JSON document, plus
  the app-wide row `''` (the leases of the requests in flight, for the concurrency limit);
- `pacing_promises`: the message-per-minute slots promised to messages that wait in the queue,
  by lane and message.

`LaneStore.update()` runs one change as one transaction: it locks the app row and then the lane's
row (`INSERT … ON CONFLICT DO UPDATE`, which creates a missing row and locks an existing one on
PostgreSQL; SQLite's `BEGIN IMMEDIATE` serialises writers anyway) and reads the message's promise
in the same statement, lets the caller's pure function decide, and writes back only what
changed: on PostgreSQL five round trips per change (begin, `synchronous_commit` off, lock and
read, write, commit), whatever the load. Every change takes the app row first, so replicas take
turns and never deadlock. Idle lanes and promises nobody came back for are deleted now and then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from mxrelay.store.backend import Database, Dialect, StoreError, describe_error
from mxrelay.store.bulk import execute_many

T = TypeVar("T")

APP_LANE = ""
"""The row of what is app-wide (the leases in flight); no mailbox is the empty string."""

SWEEP_INTERVAL = 60.0
"""Seconds between two clean-ups of lanes and promises (each is one statement)."""

FORGET_AFTER = 3 * 86_400.0
"""A lane untouched this long has nothing left to remember (its longest window is a day, a
Retry-After is capped at a day), and a promise this old belongs to a message that never came
back."""


@dataclass(frozen=True, slots=True)
class LaneRows:
    """What a change reads: the app row's state, the lane row's state ('' when new) and the
    slot promised to the message, if any."""

    app: str
    lane: str
    promise: float | None


@dataclass(frozen=True, slots=True)
class LaneWrite(Generic[T]):
    """What a change writes back (unchanged text is not written) and what it returns."""

    result: T
    app: str
    lane: str
    promise: float | None = None
    void_promises: bool = False
    """Forget every promise of the lane (a Retry-After closed it)."""


class LaneStore:
    """The lanes tables of an open store. `update()` is the one way to change them."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._sql = db.statements
        self._last_sweep = float("-inf")
        self._turn = asyncio.Lock()
        """Changes take turns in this process too: they would wait for the app row anyway, and
        this way they hold one pooled connection at a time, never the accept path's."""

    async def update(
        self, lane: str, key: str | None, now: float, change: Callable[[LaneRows], LaneWrite[T]]
    ) -> T:
        """Run `change` on the state of `lane` (and the promise of message `key`) under the
        lanes' lock, write what it returns, and return its result; `StoreError` if the store
        fails. Not waited onto the disk: losing the last changes in a crash only paces a little
        less tightly for a moment."""
        if not lane:
            raise ValueError("a lane is a mailbox, never the empty string")
        sweep = now - self._last_sweep >= SWEEP_INTERVAL
        if sweep:
            self._last_sweep = now
        try:
            async with self._turn:
                return await self.db.write(
                    self._update, lane, key, now, change, sweep, durable=False
                )
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"the pacing lanes cannot be updated: {describe_error(exc)}") from None

    def _update(
        self,
        conn: Connection,
        lane: str,
        key: str | None,
        now: float,
        change: Callable[[LaneRows], LaneWrite[T]],
        sweep: bool,
    ) -> T:
        sql = self._sql
        states: dict[str, str] = {}
        slots: list[float] = []
        if key is None:
            for name, state in conn.execute(sql["lanes_lock"], {"lane": lane, "now": now}):
                states[name] = state
        else:
            where = {"lane": lane, "now": now, "message": key}
            for name, state, slot in conn.execute(sql["lanes_lock_promise"], where):
                if name is None:
                    slots.append(float(slot))
                else:
                    states[name] = state
            if self.db.dialect is Dialect.SQLITE:
                found = conn.execute(sql["lane_promise"], where).scalar()
                slots.extend(() if found is None else (float(found),))
        promise = slots[0] if slots else None
        read = LaneRows(states.get(APP_LANE, ""), states.get(lane, ""), promise)
        write = change(read)
        changed = [
            {"lane": name, "state": new}
            for name, new, old in ((APP_LANE, write.app, read.app), (lane, write.lane, read.lane))
            if new != old
        ]
        execute_many(conn, sql["lane_save"], changed)
        if write.void_promises:
            conn.execute(sql["lane_promises_void"], {"lane": lane})
        elif key is not None and write.promise != read.promise:
            name = "lane_promise_drop" if write.promise is None else "lane_promise_set"
            params: dict[str, Any] = {"lane": lane, "message": key, "slot": write.promise}
            conn.execute(sql[name], params)
        if sweep:
            before = now - FORGET_AFTER
            conn.execute(sql["lanes_forget"], {"before": before})
            conn.execute(sql["lane_promises_forget"], {"before": before})
        return write.result

    async def states(self) -> dict[str, str]:
        """Every lane's state by lane (the app row under ''), for inspection."""
        return await self.db.read(self._states)

    def _states(self, conn: Connection) -> dict[str, str]:
        return {str(row[0]): str(row[1]) for row in conn.execute(self._sql["lanes_all"])}
