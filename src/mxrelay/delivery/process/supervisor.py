"""The delivery process, as the relay sees it: start it, wake it, watch it, stop it.

In `smtp` mode (unless `MXRELAY_DELIVERY_PROCESS` is off) deliveries run in a child process of
`mxrelay serve` (the `command` it is given; `child.py` is that process's end of the link), like Postfix's queue manager and smtp(8) beside its smtpd: the relay
accepts and stores on one core, the child claims, delivers and settles from the same store on the
other. The child opens the store without the SQLite lock (which belongs to this relay, and admits
its own child) and leases what it delivers under its own owner name. It also inherits the
descriptor of the SQLite lock (`keep_fds`), so the file stays locked until both processes are
gone. The socket between them carries new mail handed over, a wake-up after mail it must claim,
the order to stop, and what the child reports for `/metrics` and `/healthz` (`ipc.py`).

- `start()` starts the child and waits until it is ready (its start-up recovery done); a child
  that cannot start is logged, the `delivery_process` condition goes false (status: the relay stays
  ready), the mail is still accepted and queued, and another start is tried every `restart_delay`.
- It is the sink's `Waker` and its `DirectDispatch`: while the child has fewer than
  `concurrency` handed-over entries unsettled, new mail (up to `HAND_OVER_SIZE`) is committed
  already leased to the child and sent to it whole, as the sink hands mail to a worker in its own
  process: the child delivers it without a claim (a write transaction on the store the relay
  commits to) and a read. Otherwise it is committed queued, and `wake()` tells the child to claim
  it. An entry leased to a child that is gone before it was handed over is given back with the
  rest of the child's leases (or, if its commit came later still, when its lease expires).
- The child lowers its own CPU priority (`MXRELAY_DELIVERY_PROCESS_NICE`, `child.lower_priority`):
  on busy cores the relay's SMTP clients, each waiting for a reply, are served first.
- A child that dies unasked is logged and counted (`mxrelay_delivery_process_exits_total`), its
  leases are handed back at once (`Queue.requeue_owner`: what it was sending is sent again; at
  least once, never lost), and another child is started.
- `stop(grace)` asks the child to finish or hand back its deliveries within `grace` and exit; a
  child still there `stop_margin` seconds later (or at the relay's shutdown deadline) is killed
  and its leases handed back. If the relay
  itself dies, the child sees the socket close and stops at once, handing back what it was
  delivering (a new relay may be starting).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from datetime import datetime

from mxrelay.config import Settings
from mxrelay.delivery.process.ipc import (
    HAND_OVER_SIZE,
    Frame,
    FrameProtocol,
    HandOver,
    HealthChange,
    MetricApplier,
    MetricUpdates,
    Ready,
    Settled,
    Start,
    Stop,
    Wake,
)
from mxrelay.health import ConditionName, Health
from mxrelay.log import event
from mxrelay.metrics import Metrics
from mxrelay.model import utc_now
from mxrelay.store.queue import LoadedEntry, Queue
from mxrelay.tasks import cancel_and_wait

START_TIMEOUT = 60.0
RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 60.0
STOP_MARGIN = 10.0

logger = logging.getLogger(__name__)


class _RunningChild:
    """One delivery process: its pid, lease owner, socket, and whether it is ready or gone."""

    def __init__(
        self, process: asyncio.subprocess.Process, metrics: Metrics, health: Health
    ) -> None:
        self.process = process
        self.metrics = metrics
        self.health = health
        self.owner: str | None = None
        self.handed = 0
        """Entries handed over and not yet settled."""
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.gone: asyncio.Future[None] = loop.create_future()
        self.protocol = FrameProtocol(self.on_frame, self.on_lost)
        self._applier = MetricApplier(metrics)

    def on_frame(self, frame: Frame) -> None:
        match frame:
            case MetricUpdates(updates):
                self._applier.apply(updates)
            case Settled(count):
                self.handed = max(self.handed - count, 0)
            case HealthChange(name, ok, detail):
                # Under a name of its own: the child's store and worker conditions are about
                # delivery (status), never the relay's own readiness conditions of the same name.
                self.health.set_reported(ConditionName.DELIVERY_PROCESS, name, ok, detail)
            case Ready(owner=owner) if not self.ready.done():
                self.owner = owner
                self.ready.set_result(None)
            case _:
                pass  # orders go the other way

    def on_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("the delivery process exited at start"))
            self.ready.exception()  # retrieved here; the starter hears it through `gone` too
        if not self.gone.done():
            self.gone.set_result(None)


class DeliveryProcess:
    """The child process that delivers the queue. `start()`, then `stop(grace)`."""

    def __init__(
        self,
        settings: Settings,
        *,
        queue: Queue,
        metrics: Metrics,
        health: Health,
        clock: Callable[[], datetime] = utc_now,
        command: Sequence[str],
        keep_fds: Sequence[int] = (),
        restart_delay: float = RESTART_DELAY,
        stop_margin: float = STOP_MARGIN,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.metrics = metrics
        self.health = health
        self._clock = clock
        self._keep_fds = tuple(keep_fds)
        self._command = tuple(command)
        self._restart_delay = restart_delay
        self._stop_margin = stop_margin
        self._child: _RunningChild | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake_pending = False
        self._hand_limit = settings.queue.concurrency
        self._lease_time = settings.queue.lease_time.total_seconds()

    @property
    def pid(self) -> int | None:
        """The delivery process's pid while it runs."""
        child = self._child
        return child.process.pid if child is not None and not child.gone.done() else None

    @property
    def handed(self) -> int:
        """Entries handed over to the running child and not yet settled."""
        return self._child.handed if self._child is not None else 0

    async def start(self) -> None:
        """Start the child and wait until it is ready (or has failed: then it is retried)."""
        started = await self._start_one()
        self._supervisor = asyncio.create_task(self._supervise(started), name="delivery-process")

    async def stop(self, grace: float, *, within: float | None = None) -> None:
        """Let the child finish or hand back its deliveries within `grace`, then make it exit;
        kill it if it is still there after `within` seconds (default: `grace` + the margin)."""
        self._stopping = True
        await cancel_and_wait((self._supervisor,))
        child, self._child = self._child, None
        if child is not None:
            child.protocol.send(Stop(grace))
            await self._reap(child, grace + self._stop_margin if within is None else within)
            await self._hand_back(child)

    # --- the sink's DirectDispatch and Waker -------------------------------------------------

    def reserve(self, slots: int, size: int) -> tuple[str, float] | None:
        """The child's lease for `slots` entries of new mail, while it has room and the message
        fits in a frame; None otherwise (the mail is queued and the child woken)."""
        child = self._child
        if (
            self._stopping
            or child is None
            or child.owner is None
            or child.gone.done()
            or size > HAND_OVER_SIZE
            or child.handed + slots > self._hand_limit
        ):
            return None
        child.handed += slots
        return child.owner, self._clock().timestamp() + self._lease_time

    def cancel(self, slots: int) -> None:
        if self._child is not None:
            self._child.handed = max(self._child.handed - slots, 0)

    def hand_over(self, loaded: Sequence[LoadedEntry]) -> None:
        """Send committed entries leased to the child to it (when it is still that child)."""
        child = self._child
        if child is not None and loaded and loaded[0].entry.lease_owner == child.owner:
            child.protocol.send(HandOver(tuple(loaded)))
        # Otherwise the child they were leased to is gone: they are given back with its leases.

    def wake(self) -> None:
        """New mail was committed: tell the child, once per turn of the event loop."""
        if not self._wake_pending:
            self._wake_pending = True
            asyncio.get_running_loop().call_soon(self._send_wake)

    def _send_wake(self) -> None:
        self._wake_pending = False
        if self._child is not None:
            self._child.protocol.send(Wake())

    # --- the child -------------------------------------------------------------------------

    async def _start_one(self) -> _RunningChild | None:
        """A ready child, or None (logged, its condition false) if it could not start."""
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                *self._command,
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(), *self._keep_fds),
                stdin=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            ours.close()
            self._failed(f"cannot start the delivery process: {exc.strerror or exc}")
            return None
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        child = _RunningChild(process, self.metrics, self.health)
        self._child = child
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(lambda: child.protocol, ours)
        child.protocol.send(Start(self.settings))
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await child.ready
        except (ConnectionError, TimeoutError) as exc:
            child.protocol.close()
            await self._reap(child, self._stop_margin)
            status = child.process.returncode
            self._failed(
                f"the delivery process did not start ({exc or 'timeout'}, status {status})"
            )
            return None
        self.health.set(ConditionName.DELIVERY_PROCESS, True, f"pid {process.pid}")
        event(logger, "delivery.process_started", pid=process.pid)
        return child

    async def _supervise(self, child: _RunningChild | None) -> None:
        """Start another child whenever the current one is gone: after `restart_delay`, doubled
        after each start that fails (up to `MAX_RESTART_DELAY`)."""
        delay = self._restart_delay
        while not self._stopping:
            if child is not None:
                delay = self._restart_delay
                await child.gone
                status = await self._reap(child, self._stop_margin)
                event(logger, "delivery.process_exited", logging.ERROR, pid=child.process.pid,
                      status=status)  # fmt: skip
                self.metrics.delivery_process_exits.inc()
                self.health.set(
                    ConditionName.DELIVERY_PROCESS, False, f"exited with status {status}"
                )
                await self._hand_back(child)
            else:
                delay = min(delay * 2, MAX_RESTART_DELAY)
            await asyncio.sleep(delay)
            child = await self._start_one()

    async def _reap(self, child: _RunningChild, within: float) -> int | None:
        """Wait for the child to exit, killing it if it takes longer than `within` seconds."""
        try:
            async with asyncio.timeout(within):
                return await child.process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()
            return await child.process.wait()
        finally:
            child.protocol.close()

    async def _hand_back(self, child: _RunningChild) -> None:
        """Give back what a child that is gone still held (nothing, if it stopped in order)."""
        if child.owner is None:
            return
        try:
            count = await self.queue.requeue_owner(child.owner, self._clock().timestamp())
        except Exception as exc:  # the store may be why we stop; leases expire anyway
            event(logger, "delivery.process_leases_kept", logging.WARNING, error=type(exc).__name__)
            return
        if count:
            event(logger, "delivery.process_leases_requeued", logging.WARNING, entries=count)

    def _failed(self, detail: str) -> None:
        event(logger, "delivery.process_failed", logging.ERROR, error=detail)
        self.health.set(ConditionName.DELIVERY_PROCESS, False, detail)
