"""The delivery worker: claim due entries, deliver them through a transport, record what happened.

Like Postfix's queue manager, the worker owns the schedule and the transport only reports: an attempt
gives per-recipient outcomes (or raises an error from `delivery.errors`); `settle()` turns that into
the entry's next state with the pure `retry.next_attempt()`, and the result is written through the
group committer (one fsync for many deliveries). The worker never builds SQL; `store.queue.Queue`
does.

- Up to `concurrency` deliveries run at once under leases that a `LeaseKeeper` renews every third
  of their time (`leases.py`). As Postfix's queue manager keeps more messages active than it has
  delivery agents, the worker holds up to as many entries again claimed and loaded, each waiting
  for a send slot: a slot freed by one delivery goes to the next at once, not after a claim (a
  transaction) and the settling commit of the one before. New mail arrives straight from the
  sink when a slot is free (`reserve()`, `hand_over()`: committed already leased, delivered from
  memory); otherwise the sink wakes the loop (`wake()`), which claims due entries (a batch is
  loaded in one read), and the loop also looks at the queue every poll interval for retries that
  have come due. An entry this worker deferred wakes it when it comes due (a timer on the
  earliest such time), so a two-second Retry-After or a pacing slot costs two seconds, not two
  seconds plus a poll.
- A `ConfigurationFault` holds the entry (no attempt counted) and goes to the `FaultProbe`: the
  "delivery" status condition false (/healthz; never readiness), the transport probed every probe
  interval; once a probe succeeds, the entries held for that reason are released.
- `stop(grace)` stops claiming, lets deliveries in progress finish within the timeout, then
  cancels the rest and hands their leases back. A crash leaves leases to expire (PostgreSQL) or to
  start-up recovery (SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from mxrelay.delivery.errors import (
    ConfigurationFault,
    DeliveryError,
    TemporaryFailure,
    Throttled,
)
from mxrelay.delivery.leases import FaultProbe, LeaseKeeper
from mxrelay.delivery.retry import RetryPolicy
from mxrelay.delivery.settle import Attempt, settle_error, settle_outcome, settle_unloadable
from mxrelay.delivery.transport import DeliveryJob, Transport
from mxrelay.health import Health
from mxrelay.log import event
from mxrelay.metrics import Metrics
from mxrelay.mime.pipeline import UnknownTransform, parse_in_thread
from mxrelay.model import AttemptOutcome, QueueState, utc_now
from mxrelay.store.commit import GroupCommitter, StoreUnavailable
from mxrelay.store.queue import LoadedEntry, Queue, QueueEntry, Settlement
from mxrelay.store.variants import render_variant
from mxrelay.tasks import cancel_and_wait

CLAIM_COALESCE = 0.005
"""Shortest time between two claims: under load one claim takes the entries of several commits,
and new mail waits at most this long for its first attempt."""

DUE_MARGIN = 0.002
"""Seconds a due-time wake-up comes after the time itself, so that the claim finds the entry due."""

DUE_TIMES_LIMIT = 10_000
"""Due times of deferred entries remembered for wake-ups; beyond it the poll finds them."""

logger = logging.getLogger(__name__)


class DeliveryWorker:
    """Delivers queued entries through one transport. `start()`, then `stop(grace)`."""

    def __init__(
        self,
        queue: Queue,
        transport: Transport,
        committer: GroupCommitter,
        policy: RetryPolicy,
        *,
        owner: str,
        metrics: Metrics | None = None,
        health: Health | None = None,
        clock: Callable[[], datetime] = utc_now,
        rng: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
        concurrency: int = 16,
        lease_time: float = 60.0,
        poll_interval: float = 1.0,
        probe_interval: float = 60.0,
        render: Callable[[bytes, tuple[str, ...]], bytes] = render_variant,
    ) -> None:
        self.queue = queue
        self.transport = transport
        self.committer = committer
        self.policy = policy
        self.owner = owner
        self.metrics = metrics
        self._clock = clock
        self._rng = rng
        self._monotonic = monotonic
        self._concurrency = concurrency
        self._lease = lease_time
        self._poll = poll_interval
        self._render = render
        self._active: dict[asyncio.Task[None], QueueEntry] = {}
        """Entries claimed by this worker: being delivered or settled, or waiting for a slot."""
        self._claim_limit = 2 * concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._sending: set[asyncio.Task[None]] = set()
        """The tasks of `_active` holding a send slot."""
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._leases = LeaseKeeper(
            queue, owner, lease_time=lease_time, now=self._now, entries=self._active.values
        )
        self._probe = FaultProbe(
            transport,
            queue,
            interval=probe_interval,
            now=self._now,
            on_recovered=self.wake,
            health=health,
        )
        self._last_expiry_check = 0.0
        self._new_mail = True
        self._reserved = 0
        self._backlog = False
        """The last claim filled every free slot: more may be due as soon as one frees up."""
        self._due: list[float] = []
        """When entries this worker deferred come due (a heap of epoch seconds)."""
        self._due_timer: asyncio.TimerHandle | None = None
        self._due_timer_at = 0.0

    def _now(self) -> float:
        return self._clock().timestamp()

    def wake(self) -> None:
        """New mail was committed: look at the queue now rather than at the next poll."""
        self._new_mail = True
        self._wakeup.set()

    @property
    def active(self) -> int:
        return len(self._active)

    # --- new mail straight from the sink (sinks.queued.DirectDispatch) ---------------------

    def reserve(self, slots: int, size: int) -> tuple[str, float] | None:
        """Slots for mail about to be committed leased to this worker; None when busy, stopping
        or held up by a configuration fault (the mail is then queued and claimed as usual). Any
        `size` will do: the message is in this process's memory already."""
        faulted = self._probe.probing
        # Only a lightly loaded worker takes mail straight away: under load, deliveries come in
        # claimed batches, which leaves the SMTP side more of the (single) interpreter.
        busy = len(self._active) + self._reserved + slots > max(self._concurrency // 4, 1)
        if self._stopping or faulted or busy or self._loop_task is None:
            return None
        self._reserved += slots
        return self.owner, self._now() + self._lease

    def cancel(self, slots: int) -> None:
        self._reserved = max(self._reserved - slots, 0)

    def hand_over(self, loaded: Sequence[LoadedEntry]) -> None:
        """Deliver committed entries leased to this worker, from memory."""
        self.cancel(len(loaded))
        self.deliver_leased(loaded)

    def deliver_leased(
        self, loaded: Sequence[LoadedEntry], on_done: Callable[[], None] | None = None
    ) -> None:
        """Deliver committed entries someone leased to this worker (this process's sink, or the
        relay for its delivery process), from memory; `on_done` is called as each is settled."""
        if self._stopping:
            return  # left leased: start-up recovery or lease expiry gives them back
        for item in loaded:
            task = self._spawn(item.entry, item)
            if on_done is not None:
                task.add_done_callback(lambda _: on_done())

    async def start(self) -> None:
        """Recover leases left by a crash, then start claiming."""
        recovered = await self.queue.recover(self._now())
        if recovered:
            event(logger, "queue.recovered", entries=recovered)
        self._probe.start()
        self._loop_task = asyncio.create_task(self._run(), name="delivery-worker")
        self._leases.start()

    async def stop(self, grace: float) -> None:
        """Stop claiming; wait up to `grace` seconds for deliveries in progress (the shutdown
        timeout), then cancel the rest and hand their leases back."""
        self._stopping = True
        self._wakeup.set()
        if self._due_timer is not None:
            self._due_timer.cancel()
            self._due_timer = None
        await cancel_and_wait((self._loop_task,))
        await self._probe.stop()
        await self._leases.stop()
        waiting = {t: e for t, e in self._active.items() if t not in self._sending}
        for task in waiting:  # claimed ahead, not started: back to the queue, not delivered now
            task.cancel()
        sending = [t for t in self._active if t not in waiting]
        if sending:
            await asyncio.wait(sending, timeout=grace)
        leftovers = {**waiting, **self._active}
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.wait(list(leftovers))
            with contextlib.suppress(Exception):  # the store may be the reason we are stopping
                await self.queue.release_leases(leftovers.values(), self.owner, self._now())

    # --- the claiming loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        last_claim = -CLAIM_COALESCE
        while not self._stopping:
            # Under load every commit wakes the loop; waiting a few milliseconds after the last
            # claim lets one claim (one transaction) take the entries of several commits.
            pause = last_claim + CLAIM_COALESCE - self._monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            last_claim = self._monotonic()
            self._wakeup.clear()
            free = self._free()
            if free > 0:
                self._new_mail = False
                try:
                    self._backlog = await self._claim(free) == free
                except Exception as exc:  # store trouble must not end the loop; retry next poll
                    event(logger, "queue.claim_failed", logging.WARNING, error=type(exc).__name__)
            # Sleep until new mail, the poll interval, or (with a backlog) a free slot; a slot
            # freed while nothing else is due does not cost a claim.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    while not (self._new_mail or self._stopping):
                        await self._wakeup.wait()
                        self._wakeup.clear()
                        if self._backlog and self._free() > 0:
                            break

    async def _claim(self, free: int) -> int:
        now = self._now()
        if now - self._last_expiry_check >= self._lease / 4:
            self._last_expiry_check = now
            requeued = await self.queue.requeue_expired(now)
            if requeued:
                event(logger, "queue.leases_expired", logging.WARNING, entries=requeued)
        entries = await self.queue.claim(self.owner, free, now, self._lease)
        try:
            loaded = await self.queue.load_many(entries)
        except BaseException:
            await self.queue.release_leases(entries, self.owner, self._now())
            raise
        for entry in entries:
            self._spawn(entry, loaded.get(entry.id))
        return len(entries)

    def _spawn(self, entry: QueueEntry, loaded: LoadedEntry | None) -> asyncio.Task[None]:
        task = asyncio.create_task(self._deliver(entry, loaded), name=f"deliver-{entry.key}")
        self._active[task] = entry
        task.add_done_callback(self._finished)
        return task

    def _free(self) -> int:
        """Entries this worker may claim now: up to twice its concurrency held (see above)."""
        return self._claim_limit - len(self._active) - self._reserved

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._active.pop(task, None)
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("delivery task failed", exc_info=task.exception())
        if self._backlog:
            self._wakeup.set()

    # --- one delivery ----------------------------------------------------------------------

    async def _deliver(self, entry: QueueEntry, loaded: LoadedEntry | None) -> None:
        task = asyncio.current_task()
        assert task is not None
        async with self._slots:  # the slot is given back before settling: bookkeeping waits
            self._sending.add(task)
            settlement = await self._attempt(entry, loaded)
        try:
            # A dead letter is written to disk before going on, so that a restart never tries it
            # again; other results may ride on the next durable commit (lost in a crash, the
            # entry is simply attempted again).
            durable = settlement.state is QueueState.DEAD
            await self.committer.submit(
                self.queue.settle_batch, settlement, durable=durable, one_statement=True
            )
        except StoreUnavailable as exc:
            # The lease runs out and the entry is delivered again: at least once, never lost.
            event(logger, "delivery.record_failed", logging.ERROR, id=entry.key, error=str(exc))
            return
        if settlement.state is QueueState.DEFERRED:
            self._remember_due(settlement.next_attempt_at)

    # --- waking up when deferred entries come due --------------------------------------------

    def _remember_due(self, at: float) -> None:
        if self._stopping or len(self._due) >= DUE_TIMES_LIMIT:
            return
        heapq.heappush(self._due, at)
        self._arm_due_timer()

    def _arm_due_timer(self) -> None:
        """One timer, for the earliest remembered due time."""
        if not self._due or self._stopping:
            return
        at = self._due[0]
        if self._due_timer is not None:
            if self._due_timer_at <= at:
                return
            self._due_timer.cancel()
        delay = max(at - self._now(), 0.0) + DUE_MARGIN
        self._due_timer = asyncio.get_running_loop().call_later(delay, self._came_due)
        self._due_timer_at = at

    def _came_due(self) -> None:
        self._due_timer = None
        now = self._now()
        while self._due and self._due[0] <= now:
            heapq.heappop(self._due)
        self.wake()
        self._arm_due_timer()

    async def _attempt(self, entry: QueueEntry, loaded: LoadedEntry | None) -> Settlement:
        attempt = Attempt(
            entry=entry,
            owner=self.owner,
            transport=self.transport.name,
            started_at=self._now(),
            policy=self.policy,
            rng=self._rng,
        )
        if loaded is None or loaded.data is None or not loaded.recipients:
            return settle_unloadable(attempt, loaded, now=self._now())
        try:
            if loaded.transforms and parse_in_thread(loaded.data):
                job = await asyncio.to_thread(self._job, loaded)  # the transforms parse the MIME
            else:
                job = self._job(loaded)
        except UnknownTransform as exc:
            return settle_error(attempt, loaded, exc, now=self._now(), duration=0.0)
        started = self._monotonic()
        error: DeliveryError | None = None
        try:
            outcome = await self.transport.deliver(job)
        except DeliveryError as exc:
            error = exc
        except Exception as exc:  # the per-entry guard: an unexpected error defers, never drops
            logger.exception("transport %s failed unexpectedly", self.transport.name)
            error = TemporaryFailure(f"internal error: {type(exc).__name__}")
        duration = self._monotonic() - started
        now = self._now()
        if error is None:
            settlement = settle_outcome(attempt, loaded, outcome, now=now, duration=duration)
        else:
            settlement = settle_error(attempt, loaded, error, now=now, duration=duration)
            if isinstance(error, ConfigurationFault):
                self._probe.fault(error)
        self._observe(entry, settlement, error, duration)
        return settlement

    def _job(self, loaded: LoadedEntry) -> DeliveryJob:
        assert loaded.data is not None
        data = loaded.received_header.encode("utf-8") + self._render(loaded.data, loaded.transforms)
        entry = loaded.entry
        return DeliveryJob(
            message_id=entry.message_id,
            variant=entry.variant,
            mail_from=loaded.mail_from,
            recipients=loaded.recipients,
            data=data,
            smtputf8=loaded.smtputf8,
            received_at=datetime.fromtimestamp(loaded.received_at, UTC),
            header_from=loaded.header_from,
        )

    def _observe(
        self,
        entry: QueueEntry,
        settlement: Settlement,
        error: DeliveryError | None,
        duration: float,
    ) -> None:
        record = settlement.attempt
        outcome = record.outcome if record is not None else AttemptOutcome.THROTTLED
        if self.metrics is not None:
            name = self.transport.name
            self.metrics.deliveries.labels(transport=name, outcome=outcome).inc()
            if record is not None:
                self.metrics.delivery_latency.labels(transport=name).observe(duration)
        event(
            logger,
            "delivery.attempt",
            logging.WARNING
            if error is not None and not isinstance(error, Throttled)
            else logging.INFO,
            message_id=entry.message_id,
            variant=entry.variant,
            attempt=settlement.attempts,
            transport=self.transport.name,
            outcome=outcome,
            state=settlement.state.value,
            duration_ms=round(duration * 1000, 1),
            code=record.code if record is not None else None,
            remote_id=record.remote_id if record is not None else None,
            detail=settlement.last_error,
        )
