"""The delivery worker's two background duties: keeping its leases, and probing after a fault.

`LeaseKeeper` extends the leases of the deliveries in progress every third of the lease time, so
that another replica never claims an entry this one is still sending (a lease it finds lost is
logged). `FaultProbe` owns the "delivery" status condition: after a `ConfigurationFault` it turns
false (/healthz; never readiness) and the transport is probed every probe interval; once a probe
succeeds, the entries held for that reason are released and the worker woken. What to claim and
how to settle stays with `worker.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from mxrelay.delivery.errors import ConfigurationFault, PermanentFailure, TemporaryFailure
from mxrelay.delivery.transport import Transport
from mxrelay.health import ConditionName, Health
from mxrelay.log import event
from mxrelay.store.queue import Queue, QueueEntry
from mxrelay.tasks import cancel_and_wait

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the leases of `entries()` (the deliveries in progress) under `owner`."""

    def __init__(
        self,
        queue: Queue,
        owner: str,
        *,
        lease_time: float,
        now: Callable[[], float],
        entries: Callable[[], Collection[QueueEntry]],
    ) -> None:
        self._queue = queue
        self._owner = owner
        self._lease = lease_time
        self._now = now
        self._entries = entries
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lease-renewal")

    async def stop(self) -> None:
        await cancel_and_wait((self._task,))

    async def _run(self) -> None:
        """Every third of the lease time, extend the leases of the deliveries in progress."""
        while True:
            await asyncio.sleep(self._lease / 3)
            entries = list(self._entries())
            try:
                kept = await self._queue.renew_many(entries, self._owner, self._now(), self._lease)
            except Exception as exc:  # the store may be down for a moment; keep trying
                event(logger, "queue.renew_failed", logging.WARNING, error=type(exc).__name__)
                continue
            for entry in entries:
                if entry.id not in kept:
                    event(logger, "queue.lease_lost", logging.WARNING, id=entry.key)


class FaultProbe:
    """The "delivery" condition, and the probing of the transport after a configuration fault
    (`on_recovered` runs once a probe succeeds and the held entries are released)."""

    def __init__(
        self,
        transport: Transport,
        queue: Queue,
        *,
        interval: float,
        now: Callable[[], float],
        on_recovered: Callable[[], None],
        health: Health | None = None,
    ) -> None:
        self._transport = transport
        self._queue = queue
        self._interval = interval
        self._now = now
        self._on_recovered = on_recovered
        self._health = health
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def probing(self) -> bool:
        """Whether a configuration fault is being probed (the transport does not work)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Delivery starts: the condition is true until a fault says otherwise."""
        if self._health is not None:
            self._health.set(ConditionName.DELIVERY, True)

    def fault(self, error: ConfigurationFault) -> None:
        """A configuration fault: the condition false, and probing until the transport works."""
        if self._health is not None:
            self._health.set(
                ConditionName.DELIVERY, False, f"configuration fault: {error.detail}"[:200]
            )
        if not self._stopped and not self.probing:
            self._task = asyncio.create_task(self._run(), name="delivery-probe")

    async def stop(self) -> None:
        self._stopped = True
        await cancel_and_wait((self._task,))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._transport.probe()
            except (ConfigurationFault, TemporaryFailure, PermanentFailure) as exc:
                event(logger, "delivery.probe_failed", logging.WARNING, detail=exc.detail)
                continue
            released = await self._queue.release_faults(self._now())
            event(logger, "delivery.probe_ok", released=released)
            if self._health is not None:
                self._health.set(ConditionName.DELIVERY, True)
            self._on_recovered()
            return
