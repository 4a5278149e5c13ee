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

`QueueStage` hands the transport the store's lanes (`transport.SharesLanes`) when the store is
PostgreSQL; until then, and always with SQLite, the transport paces in its own process. `PacedLanes`
is how the transport asks: a wait shorter than a trip through the queue is waited out, a longer one
becomes `Throttled` (before sending: not an attempt).

When the store fails, `acquire` raises `LanesUnavailable` (nothing is sent: the message waits in
the queue), a retried request is told to wait, and a release or a Retry-After that cannot be
written is logged and dropped: the lease lapses, and Graph repeats its Retry-After if needed. A
failure of the lanes never hides what Graph answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from mxrelay.config import Settings
from mxrelay.delivery.errors import PermanentFailure, Throttled, ThrottledBeforeSending
from mxrelay.delivery.graph.pacing import (
    AppState,
    Ask,
    Decision,
    Grant,
    LaneState,
    Never,
    Pacer,
    PacingLimits,
    Wait,
    add_request,
    admit,
    block,
    release,
)
from mxrelay.log import event
from mxrelay.metrics import Metrics
from mxrelay.model import PacingLimit
from mxrelay.store.backend import StoreError
from mxrelay.store.lanes import LaneRows, LaneStore, LaneWrite

STORE_RETRY = 5.0
"""Seconds a message or a retried request waits when the lanes cannot be read."""

SHORT_WAIT = 0.25
"""Pacing waits that end within this many seconds are waited out here instead of going back
to the queue (a trip through the queue costs more than that)."""

logger = logging.getLogger(__name__)


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
            event(logger, "graph_pacing_store_failed", logging.WARNING, error=str(exc))
            return Wait(STORE_RETRY, PacingLimit.REQUESTS)

    async def release(self, grant: Grant, *, sent: bool) -> None:
        now = self._clock()  # the answer has come: the latest its requests can have arrived

        def change(rows: LaneRows) -> LaneWrite[None]:
            app, state = _load(rows, self.limits)
            release(app, state, grant.ticket, sent=sent, now=now)
            return LaneWrite(None, _dump(app.dump()), _dump(state.dump()))

        try:
            await self.store.update(grant.lane, None, now, change)
        except StoreError as exc:  # its lease lapses instead
            event(logger, "graph_pacing_store_failed", logging.WARNING, error=str(exc))

    async def block(self, lane: str, seconds: float) -> None:
        now = self._clock()

        def change(rows: LaneRows) -> LaneWrite[None]:
            app, state = _load(rows, self.limits)
            block(state, seconds, now=now)
            return LaneWrite(None, _dump(app.dump()), _dump(state.dump()), void_promises=True)

        try:
            await self.store.update(lane, None, now, change)
        except StoreError as exc:  # Graph says Retry-After again if the mailbox still must wait
            event(logger, "graph_pacing_store_failed", logging.WARNING, error=str(exc))


class PacedLanes:
    """The transport's way through the lanes (`lanes`, which `share_lanes` may swap): grants after
    a short wait at most, otherwise the message waits in the queue (`Throttled`)."""

    def __init__(self, lanes: Lanes, *, metrics: Metrics | None = None) -> None:
        self.lanes = lanes
        self._metrics = metrics
        self._released = asyncio.Condition()

    async def admit(
        self, lane: str, key: str, *, recipients: int, size: int, hold_for: float
    ) -> Grant:
        """A pacing grant; a wait shorter than a trip through the queue (a slot about to free
        up, a promised slot a moment away) is waited out here, anything longer is `Throttled`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHORT_WAIT
        while True:
            try:
                decision = await self.lanes.acquire(
                    lane, key, recipients=recipients, size=size, hold_for=hold_for
                )
            except LanesUnavailable as exc:
                raise ThrottledBeforeSending(
                    f"paced: {exc}; waiting {STORE_RETRY:.0f}s in the queue",
                    retry_after=timedelta(seconds=STORE_RETRY),
                ) from None
            if isinstance(decision, Grant):
                return decision
            if isinstance(decision, Never):
                raise PermanentFailure(f"the message can never be sent: {decision.detail}")
            remaining = deadline - loop.time()
            if decision.limit is PacingLimit.CONCURRENCY and remaining > 0:
                async with self._released:  # woken when a request in flight ends
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._released.wait(), remaining)
            elif decision.seconds <= remaining:
                await asyncio.sleep(decision.seconds)
            else:
                raise self._paced(decision)

    async def request(self, grant: Grant, *, hold_for: float) -> None:
        """One more request under `grant` (a retry after a new token); `Throttled` if it must
        wait (an attempt: the first request was sent)."""
        wait = await self.lanes.request(grant, hold_for=hold_for)
        if wait is not None:
            raise self._paced(wait, attempted=True)

    async def release(self, grant: Grant, *, sent: bool) -> None:
        await self.lanes.release(grant, sent=sent)
        async with self._released:
            self._released.notify_all()

    async def block(self, lane: str, seconds: float) -> None:
        await self.lanes.block(lane, seconds)

    def _paced(self, wait: Wait, *, attempted: bool = False) -> Throttled:
        """The message waits in the queue; before any request that is not an attempt."""
        if self._metrics is not None:
            self._metrics.graph_pacing_waits.labels(limit=wait.limit).inc()
        kind = Throttled if attempted else ThrottledBeforeSending
        if wait.limit is PacingLimit.RETRY_AFTER:
            detail = "Graph asked this sending mailbox to wait (Retry-After)"
        else:
            detail = f"the sending mailbox is at its {wait.limit.value.replace('_', ' ')} limit"
        return kind(
            f"paced: {detail}; waiting {wait.seconds:.1f}s in the queue",
            retry_after=timedelta(seconds=wait.seconds),
        )


def limits_from(settings: Settings) -> PacingLimits:
    """The pacing limits of `MXRELAY_GRAPH_*` (0 switches a limit off)."""
    graph = settings.graph
    return PacingLimits(
        messages=graph.messages_per_minute,
        requests=graph.requests_per_10_minutes,
        upload_bytes=graph.upload_bytes_per_5_minutes,
        concurrency=graph.concurrency,
        recipients=graph.daily_recipient_limit,
    )


def _load(rows: LaneRows, limits: PacingLimits) -> tuple[AppState, LaneState]:
    app = AppState.load(json.loads(rows.app) if rows.app else {})
    lane = LaneState.new(limits, json.loads(rows.lane) if rows.lane else None)
    return app, lane


def _dump(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))
