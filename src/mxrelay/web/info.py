"""What `/api/v1/info` says about the running relay beyond the store, in Mailpit's shape.

`RelayFacts` is fixed at start-up (the database URL, redacted: the info endpoint shows no secret,
and the delivery mode); `relay_info` adds the SMTP counts since start, read from the metrics the
SMTP policy and retention already keep. `api_v1/info.py` adds the version, the store's counts and
the uptime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mxrelay.config import Settings, redact_url
from mxrelay.metrics import Metrics, PruneKind, ReplyClass
from mxrelay.model import DeliveryMode


@dataclass(frozen=True, slots=True)
class RelayFacts:
    """The relay's configuration as `/api/v1/info` shows it."""

    database: str
    """The database URL without its password."""
    mode: DeliveryMode

    @classmethod
    def from_settings(cls, settings: Settings) -> RelayFacts:
        return cls(redact_url(settings.store.database_url), settings.service.delivery)


def relay_info(facts: RelayFacts, metrics: Metrics) -> dict[str, Any]:
    """`Database` and Mailpit's runtime counters, as counted since the relay started:
    `SMTPRejected` counts refused recipients and refused messages (Mailpit counts both),
    `MessagesDeleted` the messages retention removed, `SMTPIgnored` is 0 (nothing is ignored)."""
    registry = metrics.registry

    def total(name: str, **labels: str) -> int:
        return int(registry.get_sample_value(name, labels) or 0)

    refused_recipients = sum(
        int(sample.value)
        for family in registry.collect()
        if family.name == "mxrelay_smtp_recipients"
        for sample in family.samples
        if sample.name == "mxrelay_smtp_recipients_total"
        and sample.labels.get("verdict") == ReplyClass.REJECTED
    )
    return {
        "Database": facts.database,
        "RuntimeStats": {
            "MessagesDeleted": total("mxrelay_store_pruned_total", kind=PruneKind.MESSAGES),
            "SMTPAccepted": total("mxrelay_smtp_messages_total", outcome=ReplyClass.ACCEPTED),
            "SMTPAcceptedSize": total("mxrelay_smtp_received_bytes_total"),
            "SMTPRejected": refused_recipients
            + total("mxrelay_smtp_messages_total", outcome=ReplyClass.REJECTED),
            "SMTPIgnored": 0,
        },
    }
