"""The delivery side as both processes build it: group committer, smarthost transport, worker.

A relay that delivers in its own process (`queued.py`) and the delivery process (`child.py`)
build the same things from the settings: a group committer on the open store
(`MXRELAY_STORE_COMMIT_*`), the delivery worker with the queue settings (`MXRELAY_QUEUE_*`, the
retry policy) and the transform stage's render, under a lease owner of their own
(`replica_name`), and in smtp mode the smarthost transport. Nothing here imports the Graph
transport, so the delivery process loads only what smarthost delivery needs.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from datetime import datetime

from mxrelay.config import Settings, StoreSettings
from mxrelay.delivery.retry import RetryPolicy
from mxrelay.delivery.smarthost import SmarthostTransport
from mxrelay.delivery.transport import Transport
from mxrelay.delivery.worker import DeliveryWorker
from mxrelay.health import Health
from mxrelay.metrics import Metrics
from mxrelay.model import utc_now
from mxrelay.runtime.transforms import Render
from mxrelay.store.backend import Database
from mxrelay.store.commit import GroupCommitter
from mxrelay.store.queue import Queue
from mxrelay.upstream.pool import UpstreamPool


def replica_name(hostname: str) -> str:
    """The lease owner of this process: host, pid and a random tag (pids repeat across pods)."""
    return f"{hostname}:{os.getpid()}:{secrets.token_hex(3)}"[:128]


def group_committer(
    db: Database,
    store: StoreSettings,
    *,
    metrics: Metrics,
    health: Health,
    monotonic: Callable[[], float] = time.perf_counter,
) -> GroupCommitter:
    """The group committer with the store settings (enter it to start it); `monotonic`
    defaults to the committer's own clock."""
    return GroupCommitter(
        db,
        window=store.commit_window.total_seconds(),
        batch_limit=store.commit_batch_limit,
        metrics=metrics,
        health=health,
        monotonic=monotonic,
    )


def smarthost_transport(settings: Settings, metrics: Metrics) -> SmarthostTransport:
    """The transport of `MXRELAY_DELIVERY=smtp`."""
    pool = UpstreamPool(
        settings.upstream, local_hostname=settings.service.hostname, metrics=metrics
    )
    return SmarthostTransport(pool)


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
