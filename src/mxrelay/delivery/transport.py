"""The transport interface: one job in, one outcome out.

Transports report what happened to each recipient; they never decide when to try again. The worker
and `retry.py` own the schedule, as Postfix's queue manager does for its delivery agents. A
transport that paces (Graph) is also `SharesLanes`, so replicas on one store pace together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from mxrelay.model import DeliveryMode
from mxrelay.store.lanes import LaneStore
from mxrelay.store.queue.entries import RecipientStatus as RecipientStatus


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """One delivery attempt of one message variant to its recipients.

    `data` is rebuilt from the stored bytes for every attempt, so a retry sends exactly what the
    first attempt sent.
    """

    message_id: str
    variant: int
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes
    smtputf8: bool = False
    received_at: datetime | None = None
    """When the relay accepted the message: a transport that must add a missing Date header
    derives it from this, so every attempt sends the same bytes."""
    header_from: str | None = None
    """The addresses of the message's From field as read at accept time (the store's summary,
    comma-separated; empty when there were none or the field could not be read); None when not
    known, and then a transport that needs it reads the message."""


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    recipient: str
    status: RecipientStatus
    code: int | None = None
    enhanced: str = ""
    text: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one attempt achieved, per recipient, plus what the remote side told us."""

    recipients: tuple[RecipientOutcome, ...]
    remote_id: str | None = None
    retry_after: timedelta | None = None
    detail: str = ""
    http_status: int | None = None
    error_code: str | None = None


class Transport(Protocol):
    """A way out of the relay (Graph, an SMTP smarthost). Implementations translate their own
    libraries' errors into `delivery.errors` or per-recipient outcomes; nothing else leaks."""

    name: DeliveryMode

    async def deliver(self, job: DeliveryJob) -> DeliveryOutcome: ...

    async def probe(self) -> None:
        """Check that the transport is usable (credentials, permissions); raise
        `ConfigurationFault` while it is not. The worker calls it to release entries held by a
        configuration fault once the fault is fixed."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class SharesLanes(Protocol):
    """A transport that paces, and can pace through the store's lanes (replicas sharing a queue)."""

    def share_lanes(self, store: LaneStore) -> None: ...
