"""Queue entries as values: hold kinds, recipient states and the frozen `QueueEntry` read from a row
(an entry's `QueueState` is in model.py, where the queue metrics take it from)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mxrelay.model import QueueState


class HoldKind(enum.StrEnum):
    OPERATOR = "operator"
    FAULT = "fault"
    """A configuration fault of the transport; released automatically once a probe succeeds."""
    MODE = "mode"
    """`MXRELAY_DELIVERY=hold`: kept until an operator releases it."""


class RecipientStatus(enum.StrEnum):
    """Where an attempt leaves one recipient (a transport reports it, the queue keeps it)."""

    DELIVERED = "delivered"
    DEFERRED = "deferred"
    FAILED = "failed"
    HELD = "held"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEntry:
    id: int
    message_id: str
    variant: int
    state: QueueState
    created_at: float
    queued_at: float
    next_attempt_at: float
    attempts: int
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    hold_kind: HoldKind | None = None
    hold_reason: str | None = None
    last_error: str | None = None

    @property
    def key(self) -> str:
        return f"{self.message_id}.{self.variant}"


ENTRY_COLUMNS = (
    "id",
    "message_id",
    "variant",
    "state",
    "created_at",
    "queued_at",
    "next_attempt_at",
    "attempts",
    "lease_owner",
    "lease_expires_at",
    "hold_kind",
    "hold_reason",
    "last_error",
)


def entry_from_row(row: Sequence[Any]) -> QueueEntry:
    values = dict(zip(ENTRY_COLUMNS, row, strict=True))
    values["state"] = QueueState(values["state"])
    if values["hold_kind"] is not None:
        values["hold_kind"] = HoldKind(values["hold_kind"])
    return QueueEntry(**values)
