"""The delivery process itself: the queue's delivery worker, in a child process of `mxrelay serve`.

Started by `supervisor.py` as `python -m mxrelay.delivery.process.child FD`, FD being its end of
a UNIX socket pair (`ipc.py`). Given the relay's settings, it opens the store as the `mxrelay queue`
command does (no migrations, not the SQLite lock, which is its parent's), with a group committer
of its own, and runs the same `DeliveryWorker` as a single-process relay, under a lease owner of
its own: it claims due entries (woken by the relay after new mail), delivers them to the
smarthost and writes each result. Its metric updates and conditions go to the relay, which
shows them (as status, under `delivery_process:`); its log lines go to the same stderr.

It ignores SIGINT and SIGTERM: the relay decides when it stops, with `Stop(grace)`: the
worker finishes or hands back its deliveries within the grace period, the store is closed and the
process exits. If the relay dies, the socket closes and the process stops at once (grace 0): what
it was delivering is handed back, to be sent again by the next relay. It holds the SQLite lock's
descriptor it inherited (never touching it), which keeps the file locked until it has exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from mxrelay import log
from mxrelay.config import Settings
from mxrelay.delivery.process.ipc import (
    Frame,
    FrameProtocol,
    HealthChange,
    MetricRecorder,
    MetricUpdates,
    Ready,
    Start,
    Stop,
    Wake,
)
from mxrelay.health import Health
from mxrelay.runtime.transforms import ics_policy, store_variants
from mxrelay.runtime.worker import build_worker, group_committer, replica_name, smarthost_transport
from mxrelay.store.backend import StoreError
from mxrelay.store.open import OpenMode, open_store
from mxrelay.store.queue import Queue

FLUSH_DELAY = 0.02
"""Seconds metric updates gather before they are sent to the relay."""

EXIT_STORE = 3

logger = logging.getLogger("mxrelay.delivery.process.child")


class ReportedHealth(Health):
    """Readiness conditions set here are also reported to the relay (when they change)."""

    def __init__(self, protocol: FrameProtocol) -> None:
        super().__init__()
        self._protocol = protocol

    def set(self, name: str, ok: bool, detail: str = "") -> None:
        before = self.snapshot().get(name)
        super().set(name, ok, detail)
        if before is None or (before.ok, before.detail) != (ok, detail):
            self._protocol.send(HealthChange(name, ok, detail))


class RelayLink:
    """The relay's orders, and the metric updates sent back in small bundles."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.protocol = FrameProtocol(self.on_frame, self.on_lost)
        self.recorder = MetricRecorder(self._updated)
        self.settings: asyncio.Future[Settings] = loop.create_future()
        self.stopping: asyncio.Future[float] = loop.create_future()
        self.on_wake: Callable[[], None] = lambda: None
        self._flush: asyncio.TimerHandle | None = None

    def on_frame(self, frame: Frame) -> None:
        match frame:
            case Start(settings) if not self.settings.done():
                self.settings.set_result(settings)
            case Wake():
                self.on_wake()
            case Stop(grace) if not self.stopping.done():
                self.stopping.set_result(float(grace))
            case _:
                pass  # reports go the other way

    def on_lost(self, exc: Exception | None) -> None:
        if not self.stopping.done():
            self.stopping.set_result(0.0)  # the relay is gone: stop now, hand back the rest

    def _updated(self) -> None:
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        self._flush = None
        updates = self.recorder.take()
        if updates:
            self.protocol.send(MetricUpdates(updates))


async def deliver(relay: RelayLink, settings: Settings) -> None:
    """Run the delivery worker until the relay says stop (or is gone)."""
    store = settings.store
    metrics = relay.recorder.as_metrics()
    health = ReportedHealth(relay.protocol)
    async with (
        open_store(store.database_url, OpenMode.DELIVERY, synchronous=store.synchronous) as db,
        group_committer(db, store, metrics=metrics, health=health) as committer,
    ):
        _, render = store_variants(ics_policy(settings.mime), None)
        transport = smarthost_transport(settings, metrics)
        worker = build_worker(
            settings,
            Queue(db),
            transport,
            committer,
            owner=replica_name(socket.gethostname()),
            metrics=metrics,
            health=health,
            render=render,
        )
        try:
            await worker.start()
            relay.on_wake = worker.wake
            relay.protocol.send(Ready(os.getpid(), worker.owner))
            await worker.stop(await relay.stopping)
        finally:
            await transport.aclose()


async def serve(sock: socket.socket) -> int:
    relay = RelayLink()
    await asyncio.get_running_loop().connect_accepted_socket(lambda: relay.protocol, sock)
    orders: list[asyncio.Future[Any]] = [relay.settings, relay.stopping]
    await asyncio.wait(orders, return_when=asyncio.FIRST_COMPLETED)
    if not relay.settings.done():
        return 0  # stopped before it began
    settings = relay.settings.result()
    log.configure(settings.service.log_format, settings.service.log_level)
    try:
        await deliver(relay, settings)
    except StoreError as exc:
        logger.error("the delivery process cannot open the store: %s", exc)
        return EXIT_STORE
    finally:
        relay.flush()
        with contextlib.suppress(Exception):
            relay.protocol.close()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        sys.stderr.write(
            "usage: python -m mxrelay.delivery.process.child FD (started by mxrelay serve)\n"
        )
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[0]))
    runner: Any
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # uvloop is optional off Linux/macOS
        runner = asyncio.run
    return int(runner(serve(sock)))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
