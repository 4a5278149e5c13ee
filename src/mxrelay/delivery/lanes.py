"""Where the Graph transport's pacing lanes live: in this process, or in the shared store.

`Lanes` is what the transport asks: acquire a grant, count a retried request, release it, close a
lane for a Retry-After. Two places keep the state, and both decide with the same rules
(`pacing.py`, pure functions of state and time):

- `LocalLanes`: this process's `Pacer`, on the monotonic clock. One relay per SQLite file, so
  nothing else sends through its queue; nothing faster exists.
- `SharedLanes`: the store's lanes tables (`store/lanes.py`), on the wall clock (the queue's
  clock, which replicas already share). With replicas on one PostgreSQL queue, each change loads
  the app-wide leases and the lane, decides, and writes them back in one transaction under a row
  lock, so the replicas together keep each mailbox's limits (rate windows, concurrency, Retry-After
  pauses, the daily recipient budget) as one relay would. A replica that dies holds its
  concurrency slots only until their leases lapse.

`QueueStage` hands the transport the store's lanes (`SharesLanes.share_lanes`) when the store is
PostgreSQL; until then, and always with SQLite, the transport paces in its own process.

When the store fails, `acquire` raises `LanesUnavailable` (nothing is sent: the message waits in
the queue), a retried request is told to wait, and a release or a Retry-After that cannot be
written is logged and dropped: the lease lapses, and Graph repeats its Retry-After if needed. A
failure of the lanes never hides what Graph answered.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from mxrelay.delivery.pacing import (
    AppState,
    Ask,
    Decision,
    Grant,
    LaneState,
    Limit,
    Pacer,
    PacingLimits,
    Wait,
    add_request,
    admit,
    block,
    release,
)
from mxrelay.log import event
from mxrelay.store.backend import StoreError
from mxrelay.store.lanes import LaneRows, LaneStore, LaneWrite

STORE_RETRY = 5.0
"""Seconds a message or a retried request waits when the lanes cannot be read."""

log = logging.getLogger(__name__)


class LanesUnavailable(Exception):
    """The shared lanes cannot be read or written (the store failed); nothing was sent."""


class Lanes(Protocol):
    """The pacing lanes, wherever they are kept. `hold_for` is how long a request may take at
    most: a grant's lease lapses after it (its relay died)."""

    async def acquire(
        self, lane: str, key: str, *, recipients: int, size: int, hold_for: float
    ) -> Decision: ...

    async def request(self, grant: Grant, *, hold_for: float) -> Wait | None: ...

    async def release(self, grant: Grant, *, sent: bool) -> None: ...

    async def block(self, lane: str, seconds: float) -> None: ...


@runtime_checkable
class SharesLanes(Protocol):
    """A transport that can pace through the store's lanes (replicas sharing a queue)."""

    def share_lanes(self, store: LaneStore) -> None: ...


class LocalLanes:
    """`Lanes` in this process: the `Pacer`'s state, no I/O."""

    def __init__(self, pacer: Pacer, clock: Callable[[], float] = time.monotonic) -> None:
        self.pacer = pacer
        self._clock = clock

    async def acquire(
        self, lane: str, key: str, *, recipients: int, size: int, hold_for: float
    ) -> Decision:
        now = self._clock()
        return self.pacer.acquire(
            lane, key, recipients=recipients, size=size, now=now, expires=now + hold_for
        )

    async def request(self, grant: Grant, *, hold_for: float) -> Wait | None:
        now = self._clock()
        return self.pacer.request(grant, now=now, expires=now + hold_for)

    async def release(self, grant: Grant, *, sent: bool) -> None:
        self.pacer.release(grant, sent=sent, now=self._clock())

    async def block(self, lane: str, seconds: float) -> None:
        self.pacer.block(lane, seconds, now=self._clock())


class SharedLanes:
    """`Lanes` in the store: every call is one transaction of `LaneStore.update`, in which the
    states are decoded, changed by the rules and encoded again (compact JSON)."""

    def __init__(
        self,
        store: LaneStore,
        limits: PacingLimits,
        clock: Callable[[], float] = time.time,
        new_ticket: Callable[[], str] = lambda: secrets.token_hex(8),
    ) -> None:
        self.store = store
        self.limits = limits
        self._clock = clock
        self._new_ticket = new_ticket

    async def acquire(
        self, lane: str, key: str, *, recipients: int, size: int, hold_for: float
    ) -> Decision:
        ticket = self._new_ticket()

        def change(rows: LaneRows) -> LaneWrite[Decision]:
            now = self._clock()  # the grant's time is when it is decided, under the lock
            app, state = _load(rows, self.limits)
            ask = Ask(lane, key, recipients, size, ticket, now + hold_for, rows.promise)
            decision, promised = admit(app, state, ask, self.limits, now)
            return LaneWrite(decision, _dump(app.dump()), _dump(state.dump()), promised)

        try:
            return await self.store.update(lane, key, self._clock(), change)
        except StoreError as exc:
            raise LanesUnavailable(str(exc)) from None

    async def request(self, grant: Grant, *, hold_for: float) -> Wait | None:
        def change(rows: LaneRows) -> LaneWrite[Wait | None]:
            now = self._clock()
            app, state = _load(rows, self.limits)
            wait = add_request(app, grant, state, now=now, expires=now + hold_for)
            return LaneWrite(wait, _dump(app.dump()), _dump(state.dump()))

        try:
            return await self.store.update(grant.lane, None, self._clock(), change)
        except StoreError as exc:
            event(log, "graph_pacing_store_failed", logging.WARNING, error=str(exc))
            return Wait(STORE_RETRY, Limit.REQUESTS)

    async def release(self, grant: Grant, *, sent: bool) -> None:
        now = self._clock()  # the answer has come: the latest its requests can have arrived

        def change(rows: LaneRows) -> LaneWrite[None]:
            app, state = _load(rows, self.limits)
            release(app, state, grant.ticket, sent=sent, now=now)
            return LaneWrite(None, _dump(app.dump()), _dump(state.dump()))

        try:
            await self.store.update(grant.lane, None, now, change)
        except StoreError as exc:  # its lease lapses instead
            event(log, "graph_pacing_store_failed", logging.WARNING, error=str(exc))

    async def block(self, lane: str, seconds: float) -> None:
        now = self._clock()

        def change(rows: LaneRows) -> LaneWrite[None]:
            app, state = _load(rows, self.limits)
            block(state, seconds, now=now)
            return LaneWrite(None, _dump(app.dump()), _dump(state.dump()), void_promises=True)

        try:
            await self.store.update(lane, None, now, change)
        except StoreError as exc:  # Graph says Retry-After again if the mailbox still must wait
            event(log, "graph_pacing_store_failed", logging.WARNING, error=str(exc))


def _load(rows: LaneRows, limits: PacingLimits) -> tuple[AppState, LaneState]:
    app = AppState.load(json.loads(rows.app) if rows.app else {})
    lane = LaneState.new(limits, json.loads(rows.lane) if rows.lane else None)
    return app, lane


def _dump(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))
