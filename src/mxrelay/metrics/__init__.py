"""Every Prometheus metric mxrelay exports, on a registry the application owns.

Names carry the `mxrelay_` prefix and the `_total`/`_seconds`/`_bytes` suffixes; label values come
from small fixed enums (never an address, a domain or anything a client chooses). The default global
registry is not used, so two relays in one process (tests) never share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mxrelay.model import Reason

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

REASONS = tuple(reason.value for reason in Reason)
DNS_RESULTS = ("ok", "nxdomain", "nodata", "servfail", "refused", "timeout", "error")
CONNECTION_RESULTS = ("accepted", "denied", "limit", "shutdown")
PASSTHROUGH_RESULTS = ("accepted", "tempfail", "permfail", "unavailable")
ICS_ACTIONS = ("strip", "attach")
HEADER_CHANGES = ("added", "removed", "refused")
UPSTREAM_COMMANDS = ("connect", "mail", "rcpt", "rset", "data")
SESSION_END = ("quit", "disconnect", "timeout", "error_limit", "bare_newline", "shutdown", "error")
QUEUE_STATES = ("queued", "active", "deferred", "held", "dead", "delivered")
DELIVERY_TRANSPORTS = ("smtp", "graph")
DELIVERY_OUTCOMES = ("delivered", "partial", "deferred", "throttled", "failed", "held")
PRUNE_KINDS = ("bodies", "messages", "refusals")
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)
GRAPH_STATUS_CLASSES = ("2xx", "4xx", "5xx", "timeout", "network")
GRAPH_ERROR_CODES = (
    "InvalidAuthenticationToken",
    "ErrorAccessDenied",
    "ErrorSendAsDenied",
    "ErrorInvalidRecipients",
    "ErrorMimeContentInvalidBase64String",
    "ErrorMessageSizeExceeded",
    "ErrorInvalidUser",
    "other",
)
GRAPH_TOKEN_SOURCES = ("cache", "identity_provider")
GRAPH_TOKEN_FAILURES = ("configuration", "unavailable")
GRAPH_FAULTS = ("credentials", "consent", "access_denied", "mailbox", "token_rejected")
GRAPH_PACING_LIMITS = (
    "retry_after",
    "concurrency",
    "messages",
    "requests",
    "upload_bytes",
    "recipients",
)


class Metrics:
    """All metrics, created once per application on `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        # --- SMTP front door -----------------------------------------------------------------
        self.smtp_connections = Counter(
            "mxrelay_smtp_connections_total",
            "SMTP connections by what happened at connect.",
            ["result"],
            registry=r,
        )
        self.smtp_sessions_active = Gauge(
            "mxrelay_smtp_sessions_active", "SMTP sessions currently open.", registry=r
        )
        self.smtp_sessions_ended = Counter(
            "mxrelay_smtp_sessions_ended_total",
            "SMTP sessions by how they ended.",
            ["end"],
            registry=r,
        )
        self.smtp_recipients = Counter(
            "mxrelay_smtp_recipients_total",
            "RCPT decisions by verdict (accepted, tempfail, rejected) and reason class.",
            ["verdict", "reason"],
            registry=r,
        )
        self.smtp_messages = Counter(
            "mxrelay_smtp_messages_total",
            "Messages at the end of DATA by outcome (accepted, tempfail, rejected).",
            ["outcome"],
            registry=r,
        )
        self.smtp_message_bytes = Counter(
            "mxrelay_smtp_received_bytes_total", "Bytes of message data accepted.", registry=r
        )
        self.smtp_message_size = Histogram(
            "mxrelay_smtp_message_size_bytes",
            "Size of accepted messages.",
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.smtp_data_memory = Gauge(
            "mxrelay_smtp_data_memory_bytes",
            "Message data held by SMTP transactions over 64 KiB (MXRELAY_SMTP_DATA_MEMORY_LIMIT).",
            registry=r,
        )
        self.smtp_protocol_errors = Counter(
            "mxrelay_smtp_protocol_errors_total",
            "Client protocol errors by kind (syntax, sequence, line_too_long, bare_lf, size, auth).",
            ["kind"],
            registry=r,
        )

        # --- DNS -------------------------------------------------------------------------------
        self.dns_lookups = Counter(
            "mxrelay_dns_lookups_total",
            "DNS queries by record type and result.",
            ["rdtype", "result"],
            registry=r,
        )
        self.dns_latency = Histogram(
            "mxrelay_dns_lookup_duration_seconds",
            "Time per DNS query.",
            ["rdtype"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.dns_cache_requests = Counter(
            "mxrelay_dns_cache_requests_total",
            "Verdict cache lookups by result (hit, miss, stale, coalesced).",
            ["result"],
            registry=r,
        )
        self.dns_cache_entries = Gauge(
            "mxrelay_dns_cache_entries", "Verdicts currently cached.", registry=r
        )
        self.dns_cache_evictions = Counter(
            "mxrelay_dns_cache_evictions_total",
            "Verdicts dropped to keep the cache within its bound.",
            registry=r,
        )
        self.dns_last_success = Gauge(
            "mxrelay_dns_last_success_timestamp_seconds",
            "When the resolver last answered (any RCODE counts as an answer).",
            registry=r,
        )

        # --- Passthrough -----------------------------------------------------------------------
        self.passthrough_transactions = Counter(
            "mxrelay_passthrough_transactions_total",
            "Transactions relayed to the upstream while the client waited, by result.",
            ["result"],
            registry=r,
        )
        self.upstream_latency = Histogram(
            "mxrelay_upstream_reply_duration_seconds",
            "Time the upstream took to answer, by command (connect, mail, rcpt, data).",
            ["command"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_connections = Counter(
            "mxrelay_upstream_connections_total",
            "Upstream connections by result (opened, reused, failed).",
            ["result"],
            registry=r,
        )

        # --- Store and queue -------------------------------------------------------------------
        self.store_commit_latency = Histogram(
            "mxrelay_store_commit_duration_seconds",
            "Time per group commit (the transaction and its fsync).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_commit_batch = Histogram(
            "mxrelay_store_commit_batch_size",
            "Writes (messages, delivery results) per group commit.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.store_commit_failures = Counter(
            "mxrelay_store_commit_failures_total",
            "Store transactions that failed for the store's sake (unreachable, read-only, full, "
            "gone); a write refused for what it carries is logged and answered alone.",
            registry=r,
        )
        self.store_pruned = Counter(
            "mxrelay_store_pruned_total",
            "Rows removed by retention, by kind (bodies, messages, refusals).",
            ["kind"],
            registry=r,
        )
        self.store_body_bytes = Gauge(
            "mxrelay_store_body_bytes",
            "Total size of the stored (compressed) message bodies, as of the last pruning run.",
            registry=r,
        )
        self.store_oldest_body_age = Gauge(
            "mxrelay_store_oldest_body_age_seconds",
            "Age of the oldest stored body, as of the last pruning run.",
            registry=r,
        )
        self.queue_entries = Gauge(
            "mxrelay_queue_entries",
            "Queue entries by state (active = leased by a delivery in progress).",
            ["state"],
            registry=r,
        )
        self.queue_oldest_age = Gauge(
            "mxrelay_queue_oldest_age_seconds",
            "Age of the oldest entry waiting in the queue (queued or deferred).",
            registry=r,
        )
        self.deliveries = Counter(
            "mxrelay_deliveries_total",
            "Delivery attempts by transport and outcome.",
            ["transport", "outcome"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "mxrelay_delivery_attempt_duration_seconds",
            "Time per delivery attempt, by transport.",
            ["transport"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.delivery_process_exits = Counter(
            "mxrelay_delivery_process_exits_total",
            "Unexpected exits of the delivery process (its attempts are tried again, it restarts).",
            registry=r,
        )

        # --- MIME transforms --------------------------------------------------------------------
        self.ics_messages_transformed = Counter(
            "mxrelay_ics_messages_transformed_total",
            "Message variants whose calendar parts were changed, by action (strip, attach).",
            ["action"],
            registry=r,
        )
        self.ics_parts_transformed = Counter(
            "mxrelay_ics_parts_transformed_total",
            "Calendar parts removed or re-typed, by action (strip, attach).",
            ["action"],
            registry=r,
        )
        self.mime_unparsed = Counter(
            "mxrelay_mime_unparsed_total",
            "Messages in scope of a transform passed on unchanged: MIME structure not locatable.",
            registry=r,
        )
        self.header_recipients_changed = Counter(
            "mxrelay_header_recipients_changed_total",
            "To/Cc/Bcc entries changed to match the envelope, by change (added, removed, refused).",
            ["change"],
            registry=r,
        )

        # --- Microsoft Graph -------------------------------------------------------------------
        self.graph_requests = Counter(
            "mxrelay_graph_requests_total",
            "sendMail requests by status class (2xx, 4xx, 5xx, timeout, network).",
            ["status_class"],
            registry=r,
        )
        self.graph_request_latency = Histogram(
            "mxrelay_graph_request_duration_seconds",
            "Time per sendMail request, until Graph answered or the request failed.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.graph_upload_bytes = Counter(
            "mxrelay_graph_upload_bytes_total", "Request bytes sent to sendMail.", registry=r
        )
        self.graph_errors = Counter(
            "mxrelay_graph_errors_total",
            "Graph error answers by error code (known codes, else other).",
            ["code"],
            registry=r,
        )
        self.graph_throttled = Counter(
            "mxrelay_graph_throttled_total",
            "Graph answers asking to slow down (429, or 5xx with Retry-After).",
            registry=r,
        )
        self.graph_tokens = Counter(
            "mxrelay_graph_token_acquisitions_total",
            "Access tokens obtained, from MSAL's cache or from the identity platform.",
            ["source"],
            registry=r,
        )
        self.graph_token_failures = Counter(
            "mxrelay_graph_token_failures_total",
            "Token requests that failed: configuration (AADSTS errors) or unavailable (network).",
            ["kind"],
            registry=r,
        )
        self.graph_configuration_fault = Gauge(
            "mxrelay_graph_configuration_fault",
            "1 while Graph delivery is stopped by a configuration fault of this kind.",
            ["fault"],
            registry=r,
        )
        self.graph_pacing_waits = Counter(
            "mxrelay_graph_pacing_waits_total",
            "Messages sent back to the queue to wait, by the pacing limit that held them.",
            ["limit"],
            registry=r,
        )

        # --- Build info ------------------------------------------------------------------------
        self.build_info = Gauge(
            "mxrelay_build_info", "Always 1; labels say which build runs.", ["version"], registry=r
        )

    def prime(self, version: str) -> None:
        """Create every labelled series at 0, so dashboards and alerts see them before traffic."""
        self.build_info.labels(version=version).set(1)
        for result in CONNECTION_RESULTS:
            self.smtp_connections.labels(result=result)
        for end in SESSION_END:
            self.smtp_sessions_ended.labels(end=end)
        for verdict in ("accepted", "tempfail", "rejected"):
            self.smtp_messages.labels(outcome=verdict)
            for reason in REASONS:
                self.smtp_recipients.labels(verdict=verdict, reason=reason)
        for result in PASSTHROUGH_RESULTS:
            self.passthrough_transactions.labels(result=result)
        for action in ICS_ACTIONS:
            self.ics_messages_transformed.labels(action=action)
            self.ics_parts_transformed.labels(action=action)
        for change in HEADER_CHANGES:
            self.header_recipients_changed.labels(change=change)
        for rdtype in ("MX", "A", "AAAA"):
            self.dns_latency.labels(rdtype=rdtype)
            for result in DNS_RESULTS:
                self.dns_lookups.labels(rdtype=rdtype, result=result)
        for command in UPSTREAM_COMMANDS:
            self.upstream_latency.labels(command=command)
        for result in ("opened", "reused", "failed"):
            self.upstream_connections.labels(result=result)
        for result in ("hit", "miss", "stale", "coalesced"):
            self.dns_cache_requests.labels(result=result)
        for state in QUEUE_STATES:
            self.queue_entries.labels(state=state)
        for transport in DELIVERY_TRANSPORTS:
            self.delivery_latency.labels(transport=transport)
            for outcome in DELIVERY_OUTCOMES:
                self.deliveries.labels(transport=transport, outcome=outcome)
        for kind in PRUNE_KINDS:
            self.store_pruned.labels(kind=kind)
        for status_class in GRAPH_STATUS_CLASSES:
            self.graph_requests.labels(status_class=status_class)
        for code in GRAPH_ERROR_CODES:
            self.graph_errors.labels(code=code)
        for source in GRAPH_TOKEN_SOURCES:
            self.graph_tokens.labels(source=source)
        for kind in GRAPH_TOKEN_FAILURES:
            self.graph_token_failures.labels(kind=kind)
        for fault in GRAPH_FAULTS:
            self.graph_configuration_fault.labels(fault=fault).set(0)
        for limit in GRAPH_PACING_LIMITS:
            self.graph_pacing_waits.labels(limit=limit)
