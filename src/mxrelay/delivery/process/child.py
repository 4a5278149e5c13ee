"""The delivery process's end of the link: the relay's orders in, metrics and conditions out.

The delivery process (composed by the runtime, started by `supervisor.py`) runs `run(fd,
deliver)` on its end of a UNIX socket pair (`ipc.py`): given the relay's settings (`Start`),
`deliver` builds the delivery worker and hands it to `RelayLink.run_worker`, which tells the relay
it is ready, gives the worker the new mail the relay hands over (and tells the relay when each is
settled) or wakes it to claim, and stops it when told. Metric updates
(`MetricRecorder`, in small bundles) and conditions (`ReportedHealth`) go to the relay, which
shows them (as status, under `delivery_process:`); log lines go to the same stderr.

Given the settings, it lowers its own CPU priority (`MXRELAY_DELIVERY_PROCESS_NICE`,
`lower_priority`): the relay's clients wait for their replies, the queue can wait for this process.
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
from collections.abc import Awaitable, Callable
from typing import Any

from mxrelay import log
from mxrelay.config import Settings
from mxrelay.delivery.process.ipc import (
    Frame,
    FrameProtocol,
    HandOver,
    HealthChange,
    MetricRecorder,
    MetricUpdates,
    Ready,
    Settled,
    Start,
    Stop,
    Wake,
)
from mxrelay.delivery.worker import DeliveryWorker
from mxrelay.health import ConditionName, Health
from mxrelay.store.backend import StoreError
from mxrelay.store.queue import LoadedEntry

FLUSH_DELAY = 0.02
"""Seconds metric updates gather before they are sent to the relay."""

EXIT_STORE = 3

logger = logging.getLogger("mxrelay.delivery.process.child")


class ReportedHealth(Health):
    """Readiness conditions set here are also reported to the relay (when they change)."""

    def __init__(self, protocol: FrameProtocol) -> None:
        super().__init__()
        self._protocol = protocol

    def set(self, name: ConditionName, ok: bool, detail: str = "") -> None:
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
        self.on_hand_over: Callable[[tuple[LoadedEntry, ...]], None] = lambda loaded: None
        self._settled = 0
        self._flush: asyncio.TimerHandle | None = None

    async def run_worker(self, worker: DeliveryWorker) -> None:
        """Start `worker`, tell the relay it is ready, let the relay wake it, and stop it when
        the relay says so (or is gone)."""
        await worker.start()
        self.on_wake = worker.wake
        self.on_hand_over = lambda loaded: worker.deliver_leased(loaded, self._settled_one)
        self.protocol.send(Ready(os.getpid(), worker.owner))
        await worker.stop(await self.stopping)

    def on_frame(self, frame: Frame) -> None:
        match frame:
            case Start(settings) if not self.settings.done():
                self.settings.set_result(settings)
            case Wake():
                self.on_wake()
            case HandOver(loaded) if not self.stopping.done():
                self.on_hand_over(loaded)  # (when stopping: left leased, the relay requeues)
            case Stop(grace) if not self.stopping.done():
                self.stopping.set_result(float(grace))
            case _:
                pass  # reports go the other way

    def on_lost(self, exc: Exception | None) -> None:
        if not self.stopping.done():
            self.stopping.set_result(0.0)  # the relay is gone: stop now, hand back the rest

    def _settled_one(self) -> None:
        self._settled += 1
        self._updated()

    def _updated(self) -> None:
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        self._flush = None
        if self._settled:
            self.protocol.send(Settled(self._settled))
            self._settled = 0
        updates = self.recorder.take()
        if updates:
            self.protocol.send(MetricUpdates(updates))


Deliver = Callable[[RelayLink, Settings], Awaitable[None]]
"""Builds the worker for the relay's settings and runs it with `RelayLink.run_worker`."""


async def serve(sock: socket.socket, deliver: Deliver) -> int:
    relay = RelayLink()
    await asyncio.get_running_loop().connect_accepted_socket(lambda: relay.protocol, sock)
    orders: list[asyncio.Future[Any]] = [relay.settings, relay.stopping]
    await asyncio.wait(orders, return_when=asyncio.FIRST_COMPLETED)
    if not relay.settings.done():
        return 0  # stopped before it began
    settings = relay.settings.result()
    log.configure(settings.service.log_format, settings.service.log_level)
    lower_priority(settings.queue.delivery_process_nice)
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


def lower_priority(nice: int) -> None:
    """Add `nice` to this process's nice value (no privilege needed: a process may always lower
    its own priority). The relay's sessions are latency, each client waiting for its reply, while
    this process works from a queue: on busy cores the scheduler now runs the relay first.
    Measured on two cores (README, Performance): one session's round trip 8 % shorter with 10."""
    if nice <= 0:
        return
    try:
        os.nice(nice)
    except OSError as exc:  # a sandbox may refuse even this: deliver at the relay's priority
        logger.warning("the delivery process kept its priority: %s", exc)


def run(fd: int, deliver: Deliver) -> int:
    """The delivery process's life on its end of the socket pair, descriptor `fd`: SIGINT and
    SIGTERM ignored (the relay decides when it stops), under uvloop when it is installed."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    runner: Any
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # uvloop is optional off Linux/macOS
        runner = asyncio.run
    return int(runner(serve(sock, deliver)))
