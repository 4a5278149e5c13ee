"""The queued modes (`graph`, `smtp`, `hold`) as one stage: store, sink, delivery, upkeep.

`QueueStage` opens, in order: the store (migrations, and for SQLite the one-relay-per-file lock), the
group committer, the `StoreSink` the SMTP policy hands accepted transactions to, and what the stage
plan says delivers (`plan.py`): the delivery worker with its start-up recovery (and the sink's
dispatcher: new mail goes to it straight from memory while it has room), or the delivery process
that runs that worker beside this one (`delivery/process/`, `child.py`; on SQLite the sink's
dispatcher too, over their link), or nothing in `hold` mode;
plus two background loops: queue gauges every few seconds and retention pruning every
`MXRELAY_STORE_PRUNE_INTERVAL` (a run that pruned messages announces a `prune` event). With PostgreSQL, where replicas share the queue, a transport that
paces (Graph) is handed the store's pacing lanes, so that the replicas pace each mailbox together.
`aclose(grace)` undoes it in reverse: the worker finishes or hands back its leases within the grace
period, pending commits are written, the store closes. On SIGTERM the relay calls
`stop_delivering` first, alongside the SMTP drain, so both fit in one shutdown deadline.

The sink plans each message's variants at accept time and the worker rebuilds each variant's bytes
at every attempt, both with the transform stage's seam (`transforms.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from mxrelay.config import Settings
from mxrelay.delivery.graph import GraphTransport
from mxrelay.delivery.graph.proxy import ProxyProblem
from mxrelay.delivery.process.supervisor import DeliveryProcess
from mxrelay.delivery.transport import SharesLanes, Transport
from mxrelay.delivery.worker import DeliveryWorker
from mxrelay.health import ConditionName, Health
from mxrelay.log import event
from mxrelay.metrics import Metrics
from mxrelay.model import QueueState, utc_now
from mxrelay.runtime.child import CHILD_COMMAND
from mxrelay.runtime.plan import DeliveryPlace, StagePlan, StartupError, TransportKind, plan_stages
from mxrelay.runtime.transforms import store_variants
from mxrelay.runtime.worker import build_worker, group_committer, replica_name, smarthost_transport
from mxrelay.sinks.queued import StoreSink
from mxrelay.store.backend import Database, Dialect, StoreError
from mxrelay.store.backfill import backfill_fields
from mxrelay.store.changes import ChangeKind, announce
from mxrelay.store.indexing import SearchIndexer, catch_up
from mxrelay.store.lanes import LaneStore
from mxrelay.store.open import open_store
from mxrelay.store.queue import Queue
from mxrelay.store.retention import Pruner, RetentionPolicy
from mxrelay.tasks import cancel_and_wait

STATS_INTERVAL = 5.0
BACKFILL_INTERVAL = 2.0
BACKFILL_BATCHES = 10
"""Batches of `store.backfill` per round: rows older than the message list's columns are filled
in a few thousand at a time, and the store's other work goes on in between."""
"""Seconds between refreshes of the queue gauges (entries by state, oldest age)."""

logger = logging.getLogger(__name__)


async def open_queue_stage(
    plan: StagePlan,
    settings: Settings,
    environ: Mapping[str, str],
    *,
    metrics: Metrics,
    health: Health,
) -> QueueStage:
    """The started stage with the transport the plan names; StartupError when the store cannot
    be opened or the transport cannot be built."""
    stage = QueueStage(
        settings,
        plan=plan,
        metrics=metrics,
        health=health,
        transport=queue_transport(plan, settings, environ, metrics=metrics, health=health),
    )
    try:
        await stage.start()
    except StoreError as exc:
        await stage.aclose(0.0)
        raise StartupError(str(exc)) from None
    return stage


def queue_transport(
    plan: StagePlan,
    settings: Settings,
    environ: Mapping[str, str],
    *,
    metrics: Metrics,
    health: Health,
) -> Transport | None:
    """The transport that delivers in this process, if the plan has one here (the delivery
    process builds its own). Graph reads its trust and proxy from `environ`."""
    if plan.delivery is not DeliveryPlace.IN_PROCESS:
        return None
    if plan.transport is TransportKind.SMARTHOST:
        return smarthost_transport(settings, metrics)
    try:
        return GraphTransport.from_settings(settings, environ, metrics=metrics, health=health)
    except ProxyProblem as exc:
        raise StartupError(str(exc)) from None


class QueueStage:
    """Store + sink + worker of the queued modes. `await start()`, then `await aclose(grace)`."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics,
        health: Health,
        transport: Transport | None,
        plan: StagePlan | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        hostname: Callable[[], str] = socket.gethostname,
    ) -> None:
        self.settings = settings
        self.plan = plan if plan is not None else plan_stages(settings)
        self.metrics = metrics
        self.health = health
        self.transport = transport
        self.clock = clock
        self.monotonic = monotonic
        self.owner = replica_name(hostname())
        self.db: Database | None = None
        self.queue: Queue | None = None
        self.worker: DeliveryWorker | None = None
        self.delivery: DeliveryProcess | None = None
        self._sink: StoreSink | None = None
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def sink(self) -> StoreSink:
        assert self._sink is not None, "QueueStage.start() first"
        return self._sink

    async def start(self) -> None:
        settings = self.settings
        store = settings.store
        self.db = await self._stack.enter_async_context(
            open_store(
                store.database_url,
                synchronous=store.synchronous,
                read_cache=store.sqlite_read_cache,
            )
        )
        committer = await self._stack.enter_async_context(
            group_committer(
                self.db, store, metrics=self.metrics, health=self.health, monotonic=self.monotonic
            )
        )
        self.health.set(ConditionName.STORE, True, store_kind(self.db))
        caught_up = await catch_up(self.db)
        if caught_up:
            event(logger, "store.index_caught_up", logging.INFO, messages=caught_up)
        indexer = SearchIndexer(self.db)
        indexer.start()
        self._stack.push_async_callback(indexer.close)  # before the committer closes
        self.queue = Queue(self.db)
        transport: object = self.transport  # a Transport that may also be SharesLanes
        if self.db.dialect is Dialect.POSTGRESQL and isinstance(transport, SharesLanes):
            transport.share_lanes(LaneStore(self.db))
        plan, render = store_variants(self.plan.transform, self.metrics)
        self._sink = StoreSink(
            committer,
            hostname=settings.service.hostname,
            hold=self.plan.hold,
            clock=self.clock,
            plan=plan,
            render=render,
            indexer=indexer,
        )
        if self.plan.delivery is DeliveryPlace.DELIVERY_PROCESS:
            self.delivery = DeliveryProcess(
                settings,
                queue=self.queue,
                metrics=self.metrics,
                health=self.health,
                clock=self.clock,
                keep_fds=self.db.child_fds,
                command=CHILD_COMMAND,
            )
            self._sink.waker = self._sink.direct = self.delivery
            await self.delivery.start()
        elif self.transport is not None:
            self.worker = build_worker(
                settings,
                self.queue,
                self.transport,
                committer,
                owner=self.owner,
                metrics=self.metrics,
                health=self.health,
                clock=self.clock,
                monotonic=self.monotonic,
                render=render,
            )
            self._sink.waker = self._sink.direct = self.worker
            await self.worker.start()
        pruner = Pruner(self.db, RetentionPolicy.from_settings(store), metrics=self.metrics)
        self._tasks = [
            asyncio.create_task(self._every(STATS_INTERVAL, self._sample), name="queue-gauges"),
            asyncio.create_task(
                self._every(store.prune_interval.total_seconds(), lambda: self._prune(pruner)),
                name="retention",
            ),
            asyncio.create_task(self._every(BACKFILL_INTERVAL, self._backfill), name="backfill"),
        ]

    async def stop_delivering(self, grace: float, *, within: float | None = None) -> None:
        """Stop claiming now; deliveries in progress finish within `grace` seconds, the rest are
        cancelled and handed back. A delivery process still running `within` seconds from now
        (default: `grace` plus its own margin) is killed. The store stays open, so the SMTP side
        can still commit while this runs; `aclose` follows."""
        if self.delivery is not None:
            await self.delivery.stop(grace, within=within)
            self.delivery = None
        if self.worker is not None:
            await self.worker.stop(grace)
            self.worker = None

    async def aclose(self, grace: float) -> None:
        """Stop delivering (within `grace` seconds, unless already stopped), write what is
        pending, close the store."""
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        await self.stop_delivering(grace)
        if self.transport is not None:
            await self.transport.aclose()
        await self._stack.aclose()

    async def _every(self, seconds: float, work: Callable[[], object]) -> None:
        while True:
            try:
                result = work()
                if asyncio.iscoroutine(result):
                    await result
            except Exception as exc:  # upkeep must survive a store hiccup; the next round retries
                event(logger, "store.upkeep_failed", logging.WARNING, error=type(exc).__name__)
            await asyncio.sleep(seconds)

    async def _sample(self) -> None:
        assert self.queue is not None
        stats = await self.queue.stats()
        for state in QueueState:
            self.metrics.queue_entries.labels(state=state).set(stats.counts.get(state, 0))
        oldest = stats.oldest_created_at
        now = self.clock().timestamp()
        self.metrics.queue_oldest_age.set(0.0 if oldest is None else max(now - oldest, 0.0))

    async def _prune(self, pruner: Pruner) -> None:
        report = await pruner.run_once(self.clock().timestamp())
        if report.messages and self.db is not None:
            await announce(self.db, ChangeKind.PRUNE)  # the event clients reload the list

    async def _backfill(self) -> None:
        assert self.db is not None
        for _ in range(BACKFILL_BATCHES):
            if not await backfill_fields(self.db):
                return


def store_kind(db: Database) -> str:
    return f"{db.dialect.value} store open"
