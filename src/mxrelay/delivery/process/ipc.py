"""What the relay and its delivery process say to each other (`supervisor.py` ↔ `child.py`).

One connected UNIX socket pair; each frame is a 4-byte big-endian length and a pickle of one of
the frozen frame values below (both ends are this program; the socket pair is private to them):

    relay → process:  Start(settings)  Wake()  HandOver(loaded)  Stop(grace)
    process → relay:  Ready(pid, owner)  Settled(count)  MetricUpdates(updates)
                      HealthChange(name, ok, detail)

The process delivers from the store itself: it claims what is due, and new mail that the relay
committed already leased to it comes with everything needed to send it (`HandOver`, as the sink
hands mail to a worker in its own process; `Settled` gives the relay room for more), which saves
the process a claim and a read per message. What else it tells the relay is only what the relay
shows (metrics on `/metrics`, conditions on `/healthz`). `MetricRecorder` stands in for `Metrics`
in the process and records each update; the relay applies them to its own registry
(`apply_updates`).
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple, cast, get_args

from prometheus_client.metrics import MetricWrapperBase

from mxrelay.config import Settings
from mxrelay.health import ConditionName
from mxrelay.metrics import Metrics
from mxrelay.store.queue import LoadedEntry

HEADER = struct.Struct("!I")
MAX_FRAME = 1 << 24
"""Frames are small (settings, metric updates, messages up to `HAND_OVER_SIZE`); a longer one
means a broken stream."""

HAND_OVER_SIZE = 256 * 1024
"""Largest message handed over in a frame; a larger one is queued, and claimed and read by the
process from the store (one copy less through the socket, on the relay's event loop)."""


# --- the frames ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """Deliver with these settings (the relay's own)."""

    settings: Settings


@dataclass(frozen=True, slots=True)
class Wake:
    """New mail was committed: claim now rather than at the next poll."""


@dataclass(frozen=True, slots=True)
class HandOver:
    """Deliver these entries: committed, leased to this process, the message's bytes included."""

    loaded: tuple[LoadedEntry, ...]


@dataclass(frozen=True, slots=True)
class Stop:
    """Finish or hand back the deliveries in progress within `grace` seconds, then exit."""

    grace: float


@dataclass(frozen=True, slots=True)
class Ready:
    """Start-up recovery is done; the process leases what it delivers as `owner`."""

    pid: int
    owner: str


@dataclass(frozen=True, slots=True)
class Settled:
    """`count` entries handed over are settled (or were given back): room for as many more."""

    count: int


Operation = Literal["inc", "dec", "set", "observe"]
OPERATIONS: frozenset[str] = frozenset(get_args(Operation))


class MetricUpdate(NamedTuple):
    """One recorded call: `metrics.<metric>.labels(**labels).<operation>(value)`."""

    metric: str
    labels: tuple[tuple[str, str], ...]
    operation: Operation
    value: float


@dataclass(frozen=True, slots=True)
class MetricUpdates:
    updates: tuple[MetricUpdate, ...]


@dataclass(frozen=True, slots=True)
class HealthChange:
    """A condition of the process changed (it shows on the relay as `delivery_process:<name>`)."""

    name: ConditionName
    ok: bool
    detail: str


ToProcess = Start | Wake | HandOver | Stop
ToRelay = Ready | Settled | MetricUpdates | HealthChange
Frame = ToProcess | ToRelay
FRAMES = (Start, Wake, HandOver, Stop, Ready, Settled, MetricUpdates, HealthChange)


class FrameProtocol(asyncio.Protocol):
    """Frames in and out of one socket; each frame read is handed to `on_frame` in order (a value
    that is no frame is dropped)."""

    def __init__(
        self, on_frame: Callable[[Frame], None], on_lost: Callable[[Exception | None], None]
    ) -> None:
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while len(buffer) - start >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer, start)
            if size > MAX_FRAME:
                self.close(abort=True)
                return
            end = start + HEADER.size + size
            if len(buffer) < end:
                break
            value = pickle.loads(buffer[start + HEADER.size : end])
            start = end
            if isinstance(value, FRAMES):
                self._on_frame(value)
        del buffer[:start]

    def send(self, frame: Frame) -> bool:
        """Send a frame; False if the connection is gone (the other side is then stopping)."""
        if self._transport is None or self._transport.is_closing():
            return False
        payload = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        self._transport.writelines((HEADER.pack(len(payload)), payload))
        return True

    def close(self, *, abort: bool = False) -> None:
        if self._transport is not None:
            if abort:
                self._transport.abort()
            else:
                self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost(exc)


# --- metrics across the pipe -------------------------------------------------------------------


class _Recorded:
    def __init__(
        self,
        name: str,
        record: Callable[[MetricUpdate], None],
        labels: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._name = name
        self._record = record
        self._labels = labels

    def labels(self, **labels: str) -> _Recorded:
        values = ((name, str(value)) for name, value in labels.items())  # plain text on the wire
        return _Recorded(self._name, self._record, tuple(sorted(values)))

    def inc(self, amount: float = 1.0) -> None:
        self._record(MetricUpdate(self._name, self._labels, "inc", amount))

    def dec(self, amount: float = 1.0) -> None:
        self._record(MetricUpdate(self._name, self._labels, "dec", amount))

    def set(self, value: float) -> None:
        self._record(MetricUpdate(self._name, self._labels, "set", value))

    def observe(self, value: float) -> None:
        self._record(MetricUpdate(self._name, self._labels, "observe", value))


class MetricRecorder:
    """Stands in for `Metrics` in the delivery process: `recorder.deliveries.labels(...).inc()`
    records the update instead of counting it; `take()` hands the updates over for the relay to
    apply. `on_record` is called after each update (to schedule sending them).

    The process's stages (committer, worker, smarthost pool) take `Metrics`; `as_metrics()` is
    the one place this recorder is passed off as one (it answers to every attribute name)."""

    def __init__(self, on_record: Callable[[], None] = lambda: None) -> None:
        self._updates: list[MetricUpdate] = []
        self._on_record = on_record
        self._summing: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        """Per metric and labels, the position of the `inc` that later ones are added to (until
        another operation on the same metric and labels comes between): a counter bumped for
        every message crosses the pipe, and is applied, once per bundle."""

    def __getattr__(self, name: str) -> _Recorded:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Recorded(name, self._record)

    def _record(self, update: MetricUpdate) -> None:
        key = (update.metric, update.labels)
        if update.operation != "inc":
            self._summing.pop(key, None)
        elif (position := self._summing.get(key)) is not None:
            earlier = self._updates[position]
            self._updates[position] = earlier._replace(value=earlier.value + update.value)
            self._on_record()
            return
        else:
            self._summing[key] = len(self._updates)
        self._updates.append(update)
        self._on_record()

    def take(self) -> tuple[MetricUpdate, ...]:
        updates, self._updates = self._updates, []
        self._summing.clear()
        return tuple(updates)

    def as_metrics(self) -> Metrics:
        """This recorder where code expects `Metrics`."""
        return cast(Metrics, self)


def apply_updates(metrics: Metrics, updates: Iterable[MetricUpdate]) -> int:
    """Apply the delivery process's metric updates; returns how many were not applicable (an
    unknown metric, label or operation), which are skipped."""
    return MetricApplier(metrics).apply(updates)


class MetricApplier:
    """Applies the delivery process's metric updates to the relay's registry, finding each
    metric's labelled child once (the label sets are bounded enums) rather than per update."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._targets: dict[tuple[str, tuple[tuple[str, str], ...]], MetricWrapperBase] = {}

    def apply(self, updates: Iterable[MetricUpdate]) -> int:
        """As `apply_updates`."""
        skipped = 0
        for name, labels, operation, value in updates:
            if operation not in OPERATIONS:
                skipped += 1
                continue
            try:
                getattr(self._target(name, labels), operation)(value)
            except (AttributeError, ValueError, TypeError):
                skipped += 1
        return skipped

    def _target(self, name: str, labels: tuple[tuple[str, str], ...]) -> MetricWrapperBase:
        """The metric, with these labels; AttributeError or ValueError if there is no such."""
        target = self._targets.get((name, labels))
        if target is None:
            family = getattr(self._metrics, name, None)
            if not isinstance(family, MetricWrapperBase):
                raise AttributeError(name)
            target = family.labels(**dict(labels)) if labels else family
            if len(self._targets) < TARGETS_LIMIT:
                self._targets[(name, labels)] = target
        return target


TARGETS_LIMIT = 1000
"""Labelled metrics a `MetricApplier` remembers (every metric's bounded label sets, with room)."""
