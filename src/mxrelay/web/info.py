"""What `/api/v1/info` says about the running relay beyond the store, in Mailpit's shape.

`RelayFacts` is fixed at start-up (the delivery mode and the database URL, redacted: the info
endpoint shows no secret); `relay_info` adds the SMTP counts, read from the metrics the SMTP
policy already keeps. `api_v1/info.py` adds the version, the message count and the uptime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mxrelay.config import Settings, redact_url
from mxrelay.metrics import Metrics, ReplyClass
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
    """Runtime facts for /api/v1/info."""
    registry = metrics.registry

    def total(name: str, **labels: str) -> int:
        return int(registry.get_sample_value(name, labels) or 0)

    return {
        "Database": facts.database,
        "Mode": facts.mode.value,
        "RuntimeStats": {
            "SMTPAccepted": total("mxrelay_smtp_messages_total", outcome=ReplyClass.ACCEPTED),
            "SMTPAcceptedSize": total("mxrelay_smtp_received_bytes_total"),
            "SMTPRejected": total("mxrelay_smtp_messages_total", outcome=ReplyClass.REJECTED),
        },
    }
