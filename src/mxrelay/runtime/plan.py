"""Which stages run for the settings: one pure decision, made once at start-up.

`plan_stages(settings)` reads the delivery mode (`MXRELAY_DELIVERY`) and the few settings that
shape the stages, and says what happens after DATA (the store's sink or passthrough's), which
transport delivers from the queue and where it runs (in this process, in the delivery process, or
nowhere), whether new mail is held, whether messages are split by the ICS policy, and Graph's
SMTP-time rules (its sender allow-list and message size). The modules beside this one build what
the plan names; `app.py` starts them in order.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from mxrelay.config import Settings
from mxrelay.delivery.graph.prepare import graph_size_limit
from mxrelay.mime.pipeline import IcsPolicy
from mxrelay.model import DeliveryMode
from mxrelay.runtime.transforms import ics_policy


class StartupError(RuntimeError):
    """A stage could not start (port in use, unreadable certificate...); one line for the operator."""


class SinkKind(enum.StrEnum):
    """What the SMTP policy hands each accepted transaction to."""

    QUEUED = "queued"
    """The store: committed durably, then `250` (`sinks/queued.py`)."""
    PASSTHROUGH = "passthrough"
    """The upstream, while the client waits (`sinks/passthrough.py`)."""


class TransportKind(enum.StrEnum):
    """What delivers the queue's entries."""

    SMARTHOST = "smarthost"
    GRAPH = "graph"


class DeliveryPlace(enum.StrEnum):
    """Where the queue is delivered from."""

    NOWHERE = "nowhere"
    """Passthrough has no queue; hold keeps new mail held until an operator releases it."""
    IN_PROCESS = "in-process"
    """A delivery worker in the relay's own process."""
    DELIVERY_PROCESS = "delivery-process"
    """A child process of the relay (`delivery/process/`), so accepting and delivering use two
    cores."""


@dataclass(frozen=True, slots=True)
class StagePlan:
    """The stages of one relay process, as `plan_stages` decided them."""

    mode: DeliveryMode
    sink: SinkKind
    transport: TransportKind | None
    """None: nothing delivers from the queue (passthrough, hold)."""
    delivery: DeliveryPlace
    hold: bool
    """New mail is committed held (`MXRELAY_DELIVERY=hold`)."""
    transform: IcsPolicy | None
    """How messages are split by the ICS policy; None when no recipient is in scope."""
    allowed_senders: tuple[str, ...]
    """`MXRELAY_GRAPH_ALLOWED_SENDERS`, checked at SMTP time in Graph mode; empty: no rule."""
    size_limit: int
    """The message size the SMTP listener advertises (SIZE) and accepts; 0: no limit."""


_STAGES: Mapping[DeliveryMode, tuple[SinkKind, TransportKind | None]] = {
    DeliveryMode.PASSTHROUGH: (SinkKind.PASSTHROUGH, None),
    DeliveryMode.SMTP: (SinkKind.QUEUED, TransportKind.SMARTHOST),
    DeliveryMode.GRAPH: (SinkKind.QUEUED, TransportKind.GRAPH),
    DeliveryMode.HOLD: (SinkKind.QUEUED, None),
}


def plan_stages(settings: Settings) -> StagePlan:
    """The stages for `settings`; StartupError for an ICS policy that means nothing."""
    mode = settings.service.delivery
    sink, transport = _STAGES[mode]
    try:
        transform = ics_policy(settings.mime)
    except ValueError as exc:
        raise StartupError(f"MXRELAY_ICS_STRIP: {exc}") from None
    return StagePlan(
        mode=mode,
        sink=sink,
        transport=transport,
        delivery=_delivery_place(transport, settings),
        hold=mode is DeliveryMode.HOLD,
        transform=transform,
        allowed_senders=(
            tuple(settings.graph.allowed_senders) if transport is TransportKind.GRAPH else ()
        ),
        size_limit=graph_size_limit(settings),
    )


def _delivery_place(transport: TransportKind | None, settings: Settings) -> DeliveryPlace:
    """The smarthost delivers from the delivery process unless MXRELAY_DELIVERY_PROCESS is off;
    Graph's pace is set by Microsoft's limits, far below one core, so it stays in this process."""
    if transport is None:
        return DeliveryPlace.NOWHERE
    if transport is TransportKind.SMARTHOST and settings.queue.delivery_process:
        return DeliveryPlace.DELIVERY_PROCESS
    return DeliveryPlace.IN_PROCESS
