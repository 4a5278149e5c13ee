"""The queued modes (`graph`, `smtp`, `hold`) as one stage for `app.py`: store, sink, worker, upkeep.

`QueueStage` opens, in order: the store (migrations, and for SQLite the one-relay-per-file lock), the
group committer, the `StoreSink` the SMTP policy hands accepted transactions to, and, when a transport
is given (not in `hold` mode), the delivery worker with its start-up recovery (and the sink's
dispatcher: new mail goes to it straight from memory while it has room), or, in `smtp` mode, the
delivery process that runs that worker beside this one (`process/`); plus two background
loops: queue gauges every few seconds and retention pruning every `MXRELAY_STORE_PRUNE_INTERVAL`.
With PostgreSQL, where replicas share the queue, a transport that paces (Graph) is handed the
store's pacing lanes, so that the replicas pace each mailbox together.
`aclose(grace)` undoes it in reverse: the worker finishes or hands back its leases within the grace
period, pending commits are written, the store closes. On SIGTERM the relay calls
`stop_delivering` first, alongside the SMTP drain, so both fit in one shutdown deadline.

It also plugs issue 3's calendar transform into the store's variant seam (`store/variants.py`): the
variants are planned at accept time and each attempt rebuilds its variant's bytes from the stored
message with the same transform.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import datetime

from mxrelay.config import Settings
from mxrelay.delivery.process.supervisor import DeliveryProcess
from mxrelay.delivery.retry import RetryPolicy
from mxrelay.delivery.smarthost import SmarthostTransport
from mxrelay.delivery.transport import SharesLanes, Transport
from mxrelay.delivery.worker import DeliveryWorker
from mxrelay.health import Health
from mxrelay.log import event
from mxrelay.metrics import QUEUE_STATES, Metrics
from mxrelay.mime.pipeline import IcsPolicy, apply_transforms, record_variants, split_variants
from mxrelay.model import DeliveryMode, ScopeKind, utc_now
from mxrelay.sinks.queued import StoreSink
from mxrelay.store.backend import Database, Dialect
from mxrelay.store.commit import GroupCommitter
from mxrelay.store.lanes import LaneStore
from mxrelay.store.open import open_store
from mxrelay.store.queue import Queue, QueueState
from mxrelay.store.retention import Pruner, RetentionPolicy
from mxrelay.store.variants import VariantPlan, plan_variants, render_variant
from mxrelay.tasks import cancel_and_wait
from mxrelay.upstream.pool import UpstreamPool

STATS_INTERVAL = 5.0
"""Seconds between refreshes of the queue gauges (entries by state, oldest age)."""

log = logging.getLogger(__name__)

Plan = Callable[[bytes, tuple[str, ...]], tuple[VariantPlan, ...]]
Render = Callable[[bytes, tuple[str, ...]], bytes]


def replica_name(hostname: str) -> str:
    """The lease owner of this process: host, pid and a random tag (pids repeat across pods)."""
    return f"{hostname}:{os.getpid()}:{secrets.token_hex(3)}"[:128]


def calendar_variants(policy: IcsPolicy | None, metrics: Metrics | None) -> tuple[Plan, Render]:
    """The store's variant seam filled by the MIME pipeline (or the single-variant default)."""
    if policy is None or policy.scope.kind is ScopeKind.OFF:
        return plan_variants, render_variant

    def plan(data: bytes, recipients: tuple[str, ...]) -> tuple[VariantPlan, ...]:
        variants = split_variants(data, recipients, policy)
        if metrics is not None:
            record_variants(metrics, variants)
        return tuple(
            VariantPlan(
                number,
                variant.recipients,
                variant.transforms,
                (variant.report.describe(),) if variant.in_scope else (),
            )
            for number, variant in enumerate(variants)
        )

    def render(data: bytes, transforms: tuple[str, ...]) -> bytes:
        return apply_transforms(data, transforms, limits=policy.limits)

    return plan, render


def smarthost_transport(settings: Settings, metrics: Metrics) -> SmarthostTransport:
    """The transport of `MXRELAY_DELIVERY=smtp`."""
    pool = UpstreamPool(
        settings.upstream, local_hostname=settings.service.hostname, metrics=metrics
    )
    return SmarthostTransport(pool)


def delivers_in_a_process(settings: Settings) -> bool:
    """smtp mode delivers from a child process unless MXRELAY_DELIVERY_PROCESS is off (graph
    mode's pace is set by Microsoft's limits, far below one core; it stays in this process)."""
    return settings.service.delivery is DeliveryMode.SMTP and settings.queue.delivery_process


def build_worker(
    settings: Settings,
    queue: Queue,
    transport: Transport,
    committer: GroupCommitter,
    *,
    owner: str,
    metrics: Metrics,
    health: Health,
    render: Render,
    clock: Callable[[], datetime] = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
) -> DeliveryWorker:
    """The delivery worker with the queue settings (in this process or the delivery process)."""
    queue_settings = settings.queue
    return DeliveryWorker(
        queue,
        transport,
        committer,
        RetryPolicy.from_settings(queue_settings),
        owner=owner,
        metrics=metrics,
        health=health,
        clock=clock,
        monotonic=monotonic,
        concurrency=queue_settings.concurrency,
        lease_time=queue_settings.lease_time.total_seconds(),
        poll_interval=queue_settings.poll_interval.total_seconds(),
        probe_interval=queue_settings.probe_interval.total_seconds(),
        render=render,
    )


class QueueStage:
    """Store + sink + worker of the queued modes. `await start()`, then `await aclose(grace)`."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics,
        health: Health,
        transport: Transport | None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        hostname: Callable[[], str] = socket.gethostname,
    ) -> None:
        self.settings = settings
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
            open_store(store.database_url, synchronous=store.synchronous)
        )
        committer = await self._stack.enter_async_context(
            GroupCommitter(
                self.db,
                window=store.commit_window.total_seconds(),
                batch_limit=store.commit_batch_limit,
                metrics=self.metrics,
                health=self.health,
                monotonic=self.monotonic,
            )
        )
        self.health.set("store", True, store_kind(self.db))
        self.queue = Queue(self.db)
        transport: object = self.transport  # a Transport that may also be SharesLanes
        if self.db.dialect is Dialect.POSTGRESQL and isinstance(transport, SharesLanes):
            transport.share_lanes(LaneStore(self.db))
        policy = IcsPolicy.from_settings(settings.mime)
        plan, render = calendar_variants(policy, self.metrics)
        self._sink = StoreSink(
            committer,
            hostname=settings.service.hostname,
            hold=settings.service.delivery is DeliveryMode.HOLD,
            clock=self.clock,
            plan=plan,
            render=render,
        )
        if self.transport is not None and delivers_in_a_process(settings):
            self.delivery = DeliveryProcess(
                settings,
                queue=self.queue,
                metrics=self.metrics,
                health=self.health,
                clock=self.clock,
                keep_fds=self.db.child_fds,
            )
            self._sink.waker = self.delivery
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
                event(log, "store.upkeep_failed", logging.WARNING, error=type(exc).__name__)
            await asyncio.sleep(seconds)

    async def _sample(self) -> None:
        assert self.queue is not None
        stats = await self.queue.stats()
        for state in QUEUE_STATES:
            self.metrics.queue_entries.labels(state=state).set(
                stats.counts.get(QueueState(state), 0)
            )
        oldest = stats.oldest_created_at
        now = self.clock().timestamp()
        self.metrics.queue_oldest_age.set(0.0 if oldest is None else max(now - oldest, 0.0))

    async def _prune(self, pruner: Pruner) -> None:
        await pruner.run_once(self.clock().timestamp())


def store_kind(db: Database) -> str:
    return f"{db.dialect.value} store open"
