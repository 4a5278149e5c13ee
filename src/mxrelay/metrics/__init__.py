"""Every Prometheus metric mxrelay exports, as one table, on a registry the application owns.

Each attribute of `Metrics` is one row (`Metric`): name, help, kind, buckets, and each label with
the enum its values come from. The registry is built from the rows and `prime` creates every
labelled series from the same enums, so a label value cannot drift from the code that emits it.
The enums are model.py's where a stage has one, else labels.py's. Names carry the `mxrelay_`
prefix and the `_total`/`_seconds`/`_bytes` suffixes; label values are never an address, a domain
or anything a client chooses. The default global registry is not used, so two relays in one
process (tests) never share counters.
"""

from __future__ import annotations

__all__ = [
    "BATCH_BUCKETS",
    "LATENCY_BUCKETS",
    "SIZE_BUCKETS",
    "TABLE",
    "CacheResult",
    "ConnectionResult",
    "GraphErrorCode",
    "GraphStatusClass",
    "GraphTokenFailure",
    "GraphTokenSource",
    "Metric",
    "Metrics",
    "PassthroughResult",
    "ProtocolError",
    "PruneKind",
    "ReplyClass",
    "SessionEnd",
    "UpstreamCommand",
    "UpstreamConnection",
]

import enum
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mxrelay.metrics.labels import (
    CacheResult,
    ConnectionResult,
    GraphErrorCode,
    GraphStatusClass,
    GraphTokenFailure,
    GraphTokenSource,
    PassthroughResult,
    ProtocolError,
    PruneKind,
    ReplyClass,
    SessionEnd,
    UpstreamCommand,
    UpstreamConnection,
)
from mxrelay.model import (
    AttemptOutcome,
    DeliveryMode,
    DnsStatus,
    GraphFault,
    IcsAction,
    PacingLimit,
    QueueState,
    RdType,
    Reason,
    RecipientChange,
)

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
SIZE_BUCKETS = (1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0)
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)


# --- the table ---------------------------------------------------------------------------------

M = TypeVar("M", Counter, Gauge, Histogram)

Values = type[enum.StrEnum] | tuple[enum.StrEnum, ...] | None
"""What a label takes: every member of an enum, these members (the ones created at start), or
None for a value only known at run time (the build's version)."""


@dataclass(frozen=True, slots=True)
class Metric(Generic[M]):
    """One row of the table. As an attribute of `Metrics` it stands for the metric built from it
    (`Metrics.__init__` sets each on the instance); on the class it is the row itself."""

    kind: type[M]
    name: str
    help: str
    labels: tuple[tuple[str, Values], ...] = ()
    buckets: tuple[float, ...] | None = None
    primed: bool = True
    """Whether `prime` creates every labelled series (else they appear as they are counted)."""

    def build(self, registry: CollectorRegistry) -> M:
        options: dict[str, Any] = {"registry": registry}
        if self.buckets is not None:
            options["buckets"] = self.buckets
        return self.kind(self.name, self.help, [name for name, _ in self.labels], **options)

    def values(self, label: str) -> tuple[enum.StrEnum, ...]:
        """The values `prime` creates for one label (none for a value known only at run time)."""
        values = dict(self.labels)[label]
        return () if values is None else tuple(values)

    def series(self) -> Iterator[tuple[str, ...]]:
        """The label values `prime` creates: every combination of the labels' values."""
        values = [tuple(v) for _, v in self.labels if v is not None]
        if self.primed and values and len(values) == len(self.labels):
            yield from itertools.product(*values)

    @overload
    def __get__(self, instance: None, owner: type[Metrics]) -> Metric[M]: ...
    @overload
    def __get__(self, instance: Metrics, owner: type[Metrics]) -> M: ...
    def __get__(self, instance: Metrics | None, owner: type[Metrics]) -> Metric[M] | M:
        if instance is None:
            return self
        raise AttributeError(f"{self.name} was not built on this registry")


def counter(name: str, help: str, /, *, primed: bool = True, **labels: Values) -> Metric[Counter]:
    return Metric(Counter, name, help, tuple(labels.items()), primed=primed)


def gauge(name: str, help: str, /, **labels: Values) -> Metric[Gauge]:
    return Metric(Gauge, name, help, tuple(labels.items()))


def histogram(
    name: str, help: str, buckets: tuple[float, ...], /, **labels: Values
) -> Metric[Histogram]:
    return Metric(Histogram, name, help, tuple(labels.items()), buckets)


class Metrics:
    """All metrics, created once per application on `registry`, one attribute per row."""

    # --- SMTP front door -----------------------------------------------------------------------
    smtp_connections = counter(
        "mxrelay_smtp_connections_total",
        "SMTP connections by what happened at connect.",
        result=ConnectionResult,
    )
    smtp_sessions_active = gauge("mxrelay_smtp_sessions_active", "SMTP sessions currently open.")
    smtp_sessions_ended = counter(
        "mxrelay_smtp_sessions_ended_total", "SMTP sessions by how they ended.", end=SessionEnd
    )
    smtp_recipients = counter(
        "mxrelay_smtp_recipients_total",
        "RCPT decisions by verdict (accepted, tempfail, rejected) and reason class.",
        verdict=ReplyClass,
        reason=Reason,
    )
    smtp_messages = counter(
        "mxrelay_smtp_messages_total",
        "Messages at the end of DATA by outcome (accepted, tempfail, rejected).",
        outcome=ReplyClass,
    )
    smtp_message_bytes = counter(
        "mxrelay_smtp_received_bytes_total", "Bytes of message data accepted."
    )
    smtp_message_size = histogram(
        "mxrelay_smtp_message_size_bytes", "Size of accepted messages.", SIZE_BUCKETS
    )
    smtp_data_memory = gauge(
        "mxrelay_smtp_data_memory_bytes",
        "Message data held by SMTP transactions over 64 KiB (MXRELAY_SMTP_DATA_MEMORY_LIMIT).",
    )
    smtp_protocol_errors = counter(
        "mxrelay_smtp_protocol_errors_total",
        "Client protocol errors by kind (syntax, sequence, line_too_long, bare_lf, size, auth).",
        primed=False,
        kind=ProtocolError,
    )

    # --- DNS -----------------------------------------------------------------------------------
    dns_lookups = counter(
        "mxrelay_dns_lookups_total",
        "DNS queries by record type and result.",
        rdtype=RdType,
        result=DnsStatus,
    )
    dns_latency = histogram(
        "mxrelay_dns_lookup_duration_seconds", "Time per DNS query.", LATENCY_BUCKETS, rdtype=RdType
    )
    dns_cache_requests = counter(
        "mxrelay_dns_cache_requests_total",
        "Verdict cache lookups by result (hit, miss, stale, coalesced).",
        result=CacheResult,
    )
    dns_cache_entries = gauge("mxrelay_dns_cache_entries", "Verdicts currently cached.")
    dns_cache_evictions = counter(
        "mxrelay_dns_cache_evictions_total", "Verdicts dropped to keep the cache within its bound."
    )
    dns_last_success = gauge(
        "mxrelay_dns_last_success_timestamp_seconds",
        "When the resolver last answered (any RCODE counts as an answer).",
    )

    # --- Passthrough ---------------------------------------------------------------------------
    passthrough_transactions = counter(
        "mxrelay_passthrough_transactions_total",
        "Transactions relayed to the upstream while the client waited, by result.",
        result=PassthroughResult,
    )
    upstream_latency = histogram(
        "mxrelay_upstream_reply_duration_seconds",
        "Time the upstream took to answer, by command (connect, mail, rcpt, data).",
        LATENCY_BUCKETS,
        command=UpstreamCommand,
    )
    upstream_connections = counter(
        "mxrelay_upstream_connections_total",
        "Upstream connections by result (opened, reused, failed).",
        result=UpstreamConnection,
    )

    # --- Store and queue -----------------------------------------------------------------------
    store_commit_latency = histogram(
        "mxrelay_store_commit_duration_seconds",
        "Time per group commit (the transaction and its fsync).",
        LATENCY_BUCKETS,
    )
    store_commit_batch = histogram(
        "mxrelay_store_commit_batch_size",
        "Writes (messages, delivery results) per group commit.",
        BATCH_BUCKETS,
    )
    store_commit_failures = counter(
        "mxrelay_store_commit_failures_total",
        "Store transactions that failed for the store's sake (unreachable, read-only, full, "
        "gone); a write refused for what it carries is logged and answered alone.",
    )
    store_pruned = counter(
        "mxrelay_store_pruned_total",
        "Rows removed by retention, by kind (bodies, messages, refusals, audit log entries).",
        kind=PruneKind,
    )
    store_body_bytes = gauge(
        "mxrelay_store_body_bytes",
        "Total size of the stored (compressed) message bodies, as of the last pruning run.",
    )
    store_oldest_body_age = gauge(
        "mxrelay_store_oldest_body_age_seconds",
        "Age of the oldest stored body, as of the last pruning run.",
    )
    queue_entries = gauge(
        "mxrelay_queue_entries",
        "Queue entries by state (active = leased by a delivery in progress).",
        state=QueueState,
    )
    queue_oldest_age = gauge(
        "mxrelay_queue_oldest_age_seconds",
        "Age of the oldest entry waiting in the queue (queued or deferred).",
    )
    deliveries = counter(
        "mxrelay_deliveries_total",
        "Delivery attempts by transport and outcome.",
        transport=(DeliveryMode.SMTP, DeliveryMode.GRAPH),
        outcome=AttemptOutcome,
    )
    delivery_latency = histogram(
        "mxrelay_delivery_attempt_duration_seconds",
        "Time per delivery attempt, by transport.",
        LATENCY_BUCKETS,
        transport=(DeliveryMode.SMTP, DeliveryMode.GRAPH),
    )
    delivery_process_exits = counter(
        "mxrelay_delivery_process_exits_total",
        "Unexpected exits of the delivery process (its attempts are tried again, it restarts).",
    )

    # --- MIME transforms -----------------------------------------------------------------------
    ics_messages_transformed = counter(
        "mxrelay_ics_messages_transformed_total",
        "Message variants whose calendar parts were changed, by action (strip, attach).",
        action=IcsAction,
    )
    ics_parts_transformed = counter(
        "mxrelay_ics_parts_transformed_total",
        "Calendar parts removed or re-typed, by action (strip, attach).",
        action=IcsAction,
    )
    mime_unparsed = counter(
        "mxrelay_mime_unparsed_total",
        "Messages in scope of a transform passed on unchanged: MIME structure not locatable.",
    )
    header_recipients_changed = counter(
        "mxrelay_header_recipients_changed_total",
        "To/Cc/Bcc entries changed to match the envelope, by change (added, removed, refused).",
        change=RecipientChange,
    )

    # --- Microsoft Graph -----------------------------------------------------------------------
    graph_requests = counter(
        "mxrelay_graph_requests_total",
        "sendMail requests by status class (2xx, 4xx, 5xx, timeout, network).",
        status_class=tuple(c for c in GraphStatusClass if c is not GraphStatusClass.REDIRECT),
    )
    graph_request_latency = histogram(
        "mxrelay_graph_request_duration_seconds",
        "Time per sendMail request, until Graph answered or the request failed.",
        LATENCY_BUCKETS,
    )
    graph_upload_bytes = counter(
        "mxrelay_graph_upload_bytes_total", "Request bytes sent to sendMail."
    )
    graph_errors = counter(
        "mxrelay_graph_errors_total",
        "Graph error answers by error code (known codes, else other).",
        code=GraphErrorCode,
    )
    graph_throttled = counter(
        "mxrelay_graph_throttled_total",
        "Graph answers asking to slow down (429, or 5xx with Retry-After).",
    )
    graph_tokens = counter(
        "mxrelay_graph_token_acquisitions_total",
        "Access tokens obtained, from MSAL's cache or from the identity platform.",
        source=GraphTokenSource,
    )
    graph_token_failures = counter(
        "mxrelay_graph_token_failures_total",
        "Token requests that failed: configuration (AADSTS errors) or unavailable (network).",
        kind=GraphTokenFailure,
    )
    graph_configuration_fault = gauge(
        "mxrelay_graph_configuration_fault",
        "1 while Graph delivery is stopped by a configuration fault of this kind.",
        fault=GraphFault,
    )
    graph_pacing_waits = counter(
        "mxrelay_graph_pacing_waits_total",
        "Messages sent back to the queue to wait, by the pacing limit that held them.",
        limit=PacingLimit,
    )

    # --- Build info ----------------------------------------------------------------------------
    build_info = gauge("mxrelay_build_info", "Always 1; labels say which build runs.", version=None)

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        for attribute, row in TABLE:
            setattr(self, attribute, row.build(self.registry))

    def prime(self, version: str) -> None:
        """Create every labelled series at 0, so dashboards and alerts see them before traffic."""
        self.build_info.labels(version=version).set(1)
        for attribute, row in TABLE:
            family = getattr(self, attribute)
            for values in row.series():
                family.labels(*values)


TABLE: tuple[tuple[str, Metric[Any]], ...] = tuple(
    (attribute, row) for attribute, row in vars(Metrics).items() if isinstance(row, Metric)
)
"""Every row, in the order of the exposition: (attribute of `Metrics`, row)."""
