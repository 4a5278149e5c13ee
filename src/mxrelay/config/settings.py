"""The table: every settings group (Graph's in graph.py) and `Settings`, which holds them all."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mxrelay.config.graph import GraphSettings
from mxrelay.config.values import (
    Address,
    Addresses,
    Domains,
    Duration,
    HostName,
    HostPatterns,
    LowerList,
    NameServers,
    Networks,
    Size,
    Upstream,
    _Group,
    _reply_code,
    duration_setting,
    setting,
)
from mxrelay.model import DeliveryMode, IcsScope

PRIVATE_AND_LOOPBACK = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"


class SmtpSettings(_Group):
    listen: Address = setting(
        "127.0.0.1:2525",
        env="MXRELAY_SMTP_LISTEN",
        aliases=("LISTEN_ADDR",),
        form="host:port (or :port for all interfaces)",
        help="SMTP listener (the image sets 0.0.0.0:25).",
    )
    allowed_clients: Networks = setting(
        PRIVATE_AND_LOOPBACK,
        env="MXRELAY_ALLOWED_CLIENTS",
        form="comma-separated CIDRs",
        help="Clients allowed to connect; others get 554 5.7.1 at connect. Never an open relay.",
    )
    max_message_size: Size = setting(
        "25MiB",
        env="MXRELAY_MAX_MESSAGE_SIZE",
        form="a size such as 25MiB",
        ge=1024,
        help="Advertised SIZE; larger messages are refused with 552 5.3.4.",
    )
    data_memory_limit: Size = setting(
        "64MiB",
        env="MXRELAY_SMTP_DATA_MEMORY_LIMIT",
        form="a size such as 64MiB, at least MXRELAY_MAX_MESSAGE_SIZE",
        ge=1024,
        help="Message data held at once by transactions over 64 KiB, from DATA to its reply; one "
        "that would pass it gets 452 4.3.1 (processing takes a few times this in memory).",
    )
    connection_limit: int = setting(
        500,
        env="MXRELAY_SMTP_CONNECTION_LIMIT",
        form="an integer from 1 to 100000",
        ge=1,
        le=100_000,
        help="Concurrent SMTP connections in total; past it, new ones get 421 4.7.0.",
    )
    client_connection_limit: int = setting(
        50,
        env="MXRELAY_SMTP_CLIENT_CONNECTION_LIMIT",
        form="an integer from 1 to 100000",
        ge=1,
        le=100_000,
        help="Concurrent connections per client address (Postfix's default: 50).",
    )
    command_timeout: Duration = duration_setting(
        "300s",
        env="MXRELAY_SMTP_COMMAND_TIMEOUT",
        least="100ms",
        most="1h",
        help="Idle time allowed while waiting for a command (Postfix smtpd_timeout).",
    )
    data_timeout: Duration = duration_setting(
        "180s",
        env="MXRELAY_SMTP_DATA_TIMEOUT",
        least="100ms",
        most="1h",
        help="Idle time allowed between chunks of message data (RFC 5321 4.5.3.2: 3 minutes).",
    )
    command_deadline: Duration = duration_setting(
        "300s",
        env="MXRELAY_SMTP_COMMAND_DEADLINE",
        least="1s",
        most="1h",
        help="Total time to receive one command line, however its bytes trickle in; past it, "
        "421 4.4.2 (Postfix smtpd_per_request_deadline).",
    )
    data_deadline: Duration = duration_setting(
        "10m",
        env="MXRELAY_SMTP_DATA_DEADLINE",
        least="1s",
        most="1d",
        help="Total time to receive a message's data, from 354 to the final dot; past it, 421 4.4.2.",
    )
    recipient_limit: int = setting(
        1000,
        env="MXRELAY_SMTP_RECIPIENT_LIMIT",
        form="an integer from 1 to 100000",
        ge=1,
        le=100_000,
        help="Recipients per message; past it, RCPT gets 452 4.5.3 (Postfix: 1000).",
    )
    line_length_limit: int = setting(
        2048,
        env="MXRELAY_SMTP_LINE_LENGTH_LIMIT",
        form="an integer from 512 to 65536",
        ge=512,
        le=65536,
        help="Longest command line accepted (500 5.5.2 past it); message lines are not limited.",
    )
    recipient_overshoot_limit: int = setting(
        1000,
        env="MXRELAY_SMTP_RECIPIENT_OVERSHOOT_LIMIT",
        form="an integer from 0 to 100000",
        ge=0,
        le=100_000,
        help="RCPTs past the recipient limit answered 452 4.5.3 without counting as errors; "
        "each one beyond counts as one (Postfix smtpd_recipient_overshoot_limit).",
    )
    error_limit: int = setting(
        20,
        env="MXRELAY_SMTP_ERROR_LIMIT",
        form="an integer from 1 to 1000",
        ge=1,
        le=1000,
        help="Errors a client may make without delivering mail (bad commands, refused senders "
        "and recipients, failed AUTH) before it is disconnected with 421 4.7.0; an accepted "
        "message starts the count again (Postfix smtpd_hard_error_limit).",
    )
    soft_error_limit: int = setting(
        10,
        env="MXRELAY_SMTP_SOFT_ERROR_LIMIT",
        form="an integer from 1 to 1000",
        ge=1,
        le=1000,
        help="Errors past which every reply waits MXRELAY_SMTP_ERROR_SLEEP_TIME (Postfix "
        "smtpd_soft_error_limit).",
    )
    error_sleep_time: Duration = duration_setting(
        "1s",
        env="MXRELAY_SMTP_ERROR_SLEEP_TIME",
        least="0s",
        most="1m",
        note="0s: no delay",
        help="Delay of every reply to a client past the soft error limit (Postfix "
        "smtpd_error_sleep_time).",
    )
    junk_command_limit: int = setting(
        100,
        env="MXRELAY_SMTP_JUNK_COMMAND_LIMIT",
        form="an integer from 0 to 100000",
        ge=0,
        le=100_000,
        help="NOOP, RSET, VRFY and HELP a client may send without delivering mail before each "
        "one counts as an error (Postfix smtpd_junk_command_limit).",
    )
    refusal_log_limit: int = setting(
        100,
        env="MXRELAY_SMTP_REFUSAL_LOG_LIMIT",
        form="an integer from 1 to 10000",
        ge=1,
        le=10_000,
        help="Refused recipients of one transaction kept in the message log and written to log "
        "lines; the rest are only counted (refused_more on the transaction line, and metrics).",
    )
    tls_cert_file: Path | None = setting(
        None,
        env="MXRELAY_SMTP_TLS_CERT_FILE",
        form="a PEM file path",
        help="Server certificate (chain); with the key, STARTTLS is offered.",
    )
    tls_key_file: Path | None = setting(
        None,
        env="MXRELAY_SMTP_TLS_KEY_FILE",
        form="a PEM file path",
        help="Private key for the server certificate.",
    )
    auth_users_file: Path | None = setting(
        None,
        env="MXRELAY_SMTP_AUTH_USERS_FILE",
        form="a file of user:bcrypt-hash lines",
        help="When set, AUTH PLAIN/LOGIN is offered (after STARTTLS unless plaintext is allowed).",
    )
    auth_allow_plaintext: bool = setting(
        False,
        env="MXRELAY_SMTP_AUTH_ALLOW_PLAINTEXT",
        form="true or false",
        help="Offer AUTH on connections without TLS (only for loopback or trusted networks).",
    )
    auth_failure_limit: int = setting(
        10,
        env="MXRELAY_SMTP_AUTH_FAILURE_LIMIT",
        form="an integer from 1 to 10000",
        ge=1,
        le=10_000,
        help="Failed AUTH attempts a client address (an IPv6 /64) may make per minute; past it, "
        "AUTH gets 454 4.7.0 without a password check until the minute's failures age out.",
    )
    auth_required: bool = setting(
        False,
        env="MXRELAY_SMTP_AUTH_REQUIRED",
        form="true or false",
        help="Require AUTH before MAIL (530 5.7.0 otherwise), on top of the client allow-list.",
    )


class DnsSettings(_Group):
    servers: NameServers = setting(
        (),
        env="MXRELAY_DNS_SERVERS",
        form="comma-separated host[:port] IP addresses",
        help="Name servers to ask; empty means the system resolver's (its search list is never used).",
    )
    query_timeout: Duration = duration_setting(
        "5s",
        env="MXRELAY_DNS_QUERY_TIMEOUT",
        least="100ms",
        most="1m",
        help="Time allowed for one DNS query (UDP, then TCP on truncation).",
    )
    rcpt_timeout: Duration = duration_setting(
        "10s",
        env="MXRELAY_DNS_RCPT_TIMEOUT",
        least="100ms",
        most="5m",
        help="Time allowed for all DNS work behind one RCPT; past it, 451 4.4.3.",
    )
    mx_limit: int = setting(
        10,
        env="MXRELAY_DNS_MX_LIMIT",
        form="an integer from 1 to 100",
        ge=1,
        le=100,
        help="MX exchanges examined at most before the verdict is 451 4.4.3 (cap hit).",
    )
    cname_limit: int = setting(
        8,
        env="MXRELAY_DNS_CNAME_LIMIT",
        form="an integer from 1 to 32",
        ge=1,
        le=32,
        help="CNAME hops followed; a longer chain or a loop is a temporary failure.",
    )
    nxdomain_code: Annotated[Literal[550, 450], BeforeValidator(_reply_code)] = setting(
        550,
        env="MXRELAY_NXDOMAIN_CODE",
        form="550 or 450",
        help="Reply code for a domain that does not exist (450 4.1.2 for flaky resolvers).",
    )
    nxdomain_address_fallback: bool = setting(
        False,
        env="MXRELAY_DNS_NXDOMAIN_ADDRESS_FALLBACK",
        form="true or false",
        help="Tolerate broken servers: after NXDOMAIN for MX, accept if A/AAAA exist (Postfix-like).",
    )
    allow_mx_ip: bool = setting(
        False,
        env="MXRELAY_ALLOW_MX_IP",
        form="true or false",
        help="Accept an MX exchange written as an IP address if that address is routable.",
    )
    routable_networks: Networks = setting(
        "",
        env="MXRELAY_DNS_ROUTABLE_NETWORKS",
        form="comma-separated CIDRs",
        help="Extra networks that count as routable (internal MX hosts in private deployments).",
    )
    self_addresses: Addresses = setting(
        "",
        env="MXRELAY_DNS_SELF_ADDRESSES",
        form="comma-separated IP addresses",
        help="The relay's own addresses; an MX pointing only at them is a loop (550 5.4.6).",
    )
    ipv6: bool = setting(
        True,
        env="MXRELAY_DNS_IPV6",
        form="true or false",
        help="Count IPv6-only MX hosts as usable (turn off when the delivery path has no IPv6).",
    )
    trusted_domains: Domains = setting(
        "",
        env="MXRELAY_DNS_TRUSTED_DOMAINS",
        form="comma-separated domains",
        help="Domains accepted without DNS (internal or explicitly routed); subdomains included.",
    )
    allow_test_tld: bool = setting(
        False,
        env="MXRELAY_DNS_ALLOW_TEST_TLD",
        form="true or false",
        help="Look up .test domains instead of refusing them (labs and test environments).",
    )
    allow_address_literals: bool = setting(
        False,
        env="MXRELAY_DNS_ALLOW_ADDRESS_LITERALS",
        form="true or false",
        help="Accept user@[public-ip] recipients (otherwise 550 5.7.1).",
    )
    cache_size: int = setting(
        10_000,
        env="MXRELAY_DNS_CACHE_SIZE",
        form="an integer from 1 to 10000000",
        ge=1,
        le=10_000_000,
        help="Verdicts kept in the cache at most (least recently used go first).",
    )
    cache_min_ttl: Duration = duration_setting(
        "5s",
        env="MXRELAY_DNS_CACHE_MIN_TTL",
        least="0s",
        most="1d",
        help="Shortest life of a positive verdict (a TTL of 0 is still not reused across RCPTs).",
    )
    cache_max_ttl: Duration = duration_setting(
        "24h",
        env="MXRELAY_DNS_CACHE_MAX_TTL",
        least="0s",
        most="7d",
        help="Longest life of a positive verdict.",
    )
    negative_max_ttl: Duration = duration_setting(
        "15m",
        env="MXRELAY_DNS_NEGATIVE_MAX_TTL",
        least="0s",
        most="1d",
        help="Longest life of an NXDOMAIN/NODATA verdict (RFC 2308 SOA minimum, capped).",
    )
    transient_ttl: Duration = duration_setting(
        "30s",
        env="MXRELAY_DNS_TRANSIENT_TTL",
        least="0s",
        most="5m",
        help="Life of a temporary-failure verdict (always 4xx; RFC 2308 7.1 caps it at 5 minutes).",
    )
    serve_stale: Duration = duration_setting(
        "0s",
        env="MXRELAY_DNS_SERVE_STALE",
        least="0s",
        most="7d",
        note="0s = off",
        help="Serve an expired positive verdict this long when its refresh fails temporarily.",
    )


class PolicySettings(_Group):
    disposable: bool = setting(
        False,
        env="MXRELAY_POLICY_DISPOSABLE",
        form="true or false",
        help="Refuse disposable-address domains (550 5.7.1), matched on the registrable domain.",
    )
    disposable_allow: Domains = setting(
        "",
        env="MXRELAY_POLICY_DISPOSABLE_ALLOW",
        form="comma-separated domains",
        help="Domains never treated as disposable (takes precedence over the list).",
    )
    typo_file: Path | None = setting(
        None,
        env="MXRELAY_POLICY_TYPO_FILE",
        form="a file of 'typo-domain suggestion' lines",
        help="Explicit typo domains, refused with 550 5.7.1 and a 'did you mean' suggestion.",
    )
    domain_allow: Domains = setting(
        "",
        env="MXRELAY_POLICY_DOMAIN_ALLOW",
        form="comma-separated domains",
        help="When set, only these recipient domains (and subdomains) are accepted.",
    )
    domain_deny: Domains = setting(
        "",
        env="MXRELAY_POLICY_DOMAIN_DENY",
        form="comma-separated domains",
        help="Recipient domains (and subdomains) refused with 550 5.7.1.",
    )


class UpstreamSettings(_Group):
    url: Upstream | None = setting(
        None,
        env="MXRELAY_UPSTREAM",
        aliases=("UPSTREAM_HOST", "UPSTREAM_PORT"),
        form="smtp://host:port or smtps://host:port[?starttls=required]",
        help="Smarthost (smtp mode) or passthrough target.",
    )
    username: str | None = setting(
        None,
        env="MXRELAY_UPSTREAM_USERNAME",
        form="text",
        help="User name for AUTH at the upstream.",
    )
    password: SecretStr | None = setting(
        None,
        env="MXRELAY_UPSTREAM_PASSWORD",
        form="text (or a file with MXRELAY_UPSTREAM_PASSWORD_FILE)",
        secret=True,
        help="Password for AUTH at the upstream.",
    )
    connect_timeout: Duration = duration_setting(
        "10s",
        env="MXRELAY_UPSTREAM_CONNECT_TIMEOUT",
        least="100ms",
        most="5m",
        help="Time allowed to connect to the upstream and read its greeting.",
    )
    command_timeout: Duration = duration_setting(
        "60s",
        env="MXRELAY_UPSTREAM_COMMAND_TIMEOUT",
        least="100ms",
        most="1h",
        help="Time allowed for each upstream reply (the end of DATA included).",
    )
    idle_connections: int = setting(
        32,
        env="MXRELAY_UPSTREAM_IDLE_CONNECTIONS",
        form="an integer from 0 to 10000",
        ge=0,
        le=10_000,
        help="Upstream connections kept open for reuse between transactions (0 = no reuse).",
    )
    idle_timeout: Duration = duration_setting(
        "5s",
        env="MXRELAY_UPSTREAM_IDLE_TIMEOUT",
        least="0s",
        most="1h",
        note="0s = no reuse",
        help="How long an unused upstream connection is kept for reuse.",
    )


def _ics_scope(value: tuple[str, ...]) -> tuple[str, ...]:
    """Refuse a list that means nothing (`@@@`, `off,@example.com`) when it is loaded, not when
    the first message arrives."""
    IcsScope.from_setting(value)
    return value


class MimeSettings(_Group):
    ics_strip: Annotated[LowerList, AfterValidator(_ics_scope)] = setting(
        "off",
        env="MXRELAY_ICS_STRIP",
        form="off, all, or comma-separated addresses and @domains",
        help="Recipients whose copy has its iCalendar parts stripped (or re-attached).",
    )
    ics_action: Literal["strip", "attach"] = setting(
        "strip",
        env="MXRELAY_ICS_ACTION",
        form="strip or attach",
        help="Remove the calendar parts, or keep them as a plain application/ics attachment.",
    )
    header_recipients: Literal["strip", "reject"] = setting(
        "strip",
        env="MXRELAY_HEADER_RECIPIENTS",
        form="strip or reject",
        help="Graph: header recipients not in the accepted envelope are removed, or refused.",
    )


class StoreSettings(_Group):
    database_url: str = setting(
        "sqlite:///./data/mxrelay.db",
        env="MXRELAY_DATABASE_URL",
        form="sqlite:///path or postgresql://user@host/db",
        secret=False,
        help="Store and queue.",
    )
    synchronous: Literal["full", "normal"] = setting(
        "full",
        env="MXRELAY_STORE_SYNCHRONOUS",
        form="full or normal",
        help="SQLite: fsync the log at every commit (full), or only at checkpoints (normal: "
        "faster, but a power cut may lose the last commits). PostgreSQL uses its own settings.",
    )
    commit_window: Duration = duration_setting(
        "1ms",
        env="MXRELAY_STORE_COMMIT_WINDOW",
        least="0s",
        most="1s",
        note="0s = commit as soon as the previous commit ends",
        help="How long a commit waits for other sessions' messages to share its fsync.",
    )
    commit_batch_limit: int = setting(
        256,
        env="MXRELAY_STORE_COMMIT_BATCH_LIMIT",
        form="an integer from 1 to 10000",
        ge=1,
        le=10_000,
        help="Most writes (messages, delivery results) committed together in one transaction.",
    )
    body_retention: Duration = duration_setting(
        "30d",
        env="MXRELAY_STORE_BODY_RETENTION",
        least="1h",
        most="3650d",
        help="Age after which message bodies are pruned (never while the message is queued).",
    )
    body_max_size: Size = setting(
        "5GiB",
        env="MXRELAY_STORE_BODY_MAX_SIZE",
        form="a size such as 5GiB",
        ge=0,
        help="Total size of stored (compressed) bodies; past it the oldest are pruned (0 = no cap).",
    )
    log_retention: Duration = duration_setting(
        "180d",
        env="MXRELAY_STORE_LOG_RETENTION",
        least="1h",
        most="3650d",
        help="Age after which message metadata, delivery attempts and refusals are pruned.",
    )
    prune_interval: Duration = duration_setting(
        "1m",
        env="MXRELAY_STORE_PRUNE_INTERVAL",
        least="1s",
        most="1d",
        help="Time between pruning runs (each run works through bounded batches).",
    )
    prune_batch_limit: int = setting(
        1000,
        env="MXRELAY_STORE_PRUNE_BATCH_LIMIT",
        form="an integer from 1 to 100000",
        ge=1,
        le=100_000,
        help="Rows deleted per pruning transaction, so pruning never holds the store for long.",
    )


class QueueSettings(_Group):
    retry_initial: Duration = duration_setting(
        "1m",
        env="MXRELAY_RETRY_INITIAL",
        least="100ms",
        most="1d",
        help="Delay before the first retry of a deferred delivery.",
    )
    retry_max: Duration = duration_setting(
        "1h",
        env="MXRELAY_RETRY_MAX",
        least="100ms",
        most="7d",
        help="Longest delay between retries (exponential backoff with full jitter up to it).",
    )
    lifetime: Duration = duration_setting(
        "5d",
        env="MXRELAY_QUEUE_LIFETIME",
        least="0s",
        most="100d",
        note="0s = one attempt",
        help="Age after which a message that still fails temporarily is given up (dead letter).",
    )
    concurrency: int = setting(
        16,
        env="MXRELAY_DELIVERY_CONCURRENCY",
        form="an integer from 1 to 1000",
        ge=1,
        le=1000,
        help="Deliveries in progress at once in this process.",
    )
    delivery_process: bool = setting(
        True,
        env="MXRELAY_DELIVERY_PROCESS",
        form="true or false",
        help="smtp mode: deliver from a child process, so accepting and delivering use two cores "
        "(false: one process does both).",
    )
    lease_time: Duration = duration_setting(
        "60s",
        env="MXRELAY_QUEUE_LEASE_TIME",
        least="1s",
        most="1h",
        help="How long a claimed entry stays with its replica without a renewal; a replica that "
        "dies loses its entries to the others once their leases expire.",
    )
    poll_interval: Duration = duration_setting(
        "1s",
        env="MXRELAY_QUEUE_POLL_INTERVAL",
        least="10ms",
        most="1m",
        help="Longest wait between looks at the queue (new mail wakes this process at once).",
    )
    probe_interval: Duration = duration_setting(
        "1m",
        env="MXRELAY_DELIVERY_PROBE_INTERVAL",
        least="100ms",
        most="1d",
        help="While a configuration fault holds mail, how often the transport is probed again.",
    )


class WebSettings(_Group):
    http_listen: Address = setting(
        "127.0.0.1:8025",
        env="MXRELAY_HTTP_LISTEN",
        form="host:port",
        help="Web UI and API.",
    )
    metrics_listen: Address = setting(
        "127.0.0.1:9090",
        env="MXRELAY_METRICS_LISTEN",
        form="host:port",
        help="/metrics, /healthz and /readyz.",
    )
    connection_limit: int = setting(
        100,
        env="MXRELAY_HTTP_CONNECTION_LIMIT",
        form="an integer from 1 to 10000",
        ge=1,
        le=10_000,
        help="Open connections per HTTP listener; past it, new ones are closed at once.",
    )
    header_timeout: Duration = duration_setting(
        "10s",
        env="MXRELAY_HTTP_HEADER_TIMEOUT",
        least="1s",
        most="5m",
        help="Time allowed for a request's headers to arrive, from the connection's start or the "
        "end of its previous response; past it, the connection is closed.",
    )
    allowed_hosts: HostPatterns = setting(
        "",
        env="MXRELAY_HTTP_ALLOWED_HOSTS",
        form="comma-separated host names, *.domain, or *",
        help="Host headers the web UI and API answer besides IP addresses, localhost and "
        "MXRELAY_HOSTNAME (others get 400, against DNS rebinding); * allows any.",
    )


class ServiceSettings(_Group):
    hostname: HostName = setting(
        "",
        env="MXRELAY_HOSTNAME",
        form="a host name (letters, digits, hyphens and dots)",
        help="Banner and EHLO name (default: this host's fully qualified name, or localhost when "
        "that is not a host name).",
    )
    delivery: DeliveryMode = setting(
        DeliveryMode.HOLD,
        env="MXRELAY_DELIVERY",
        form="graph, smtp, hold or passthrough",
        help="What happens after DATA (default: passthrough when only UPSTREAM_HOST is set, else hold).",
    )
    log_format: Literal["text", "json"] = setting(
        "text",
        env="MXRELAY_LOG_FORMAT",
        form="text or json",
        help="Log lines as readable text or as JSON objects.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = setting(
        "info",
        env="MXRELAY_LOG_LEVEL",
        form="debug, info, warning or error",
        help="Least severe log level written.",
    )
    shutdown_timeout: Duration = duration_setting(
        "30s",
        env="MXRELAY_SHUTDOWN_TIMEOUT",
        least="0s",
        most="1h",
        help="Deadline for the whole stop on SIGTERM: SMTP and deliveries drain together, the rest is handed back.",
    )


class Settings(BaseSettings):
    """Every option of mxrelay, grouped by the stage that reads it."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    service: ServiceSettings = ServiceSettings()
    smtp: SmtpSettings = SmtpSettings()
    dns: DnsSettings = DnsSettings()
    policy: PolicySettings = PolicySettings()
    upstream: UpstreamSettings = UpstreamSettings()
    mime: MimeSettings = MimeSettings()
    store: StoreSettings = StoreSettings()
    queue: QueueSettings = QueueSettings()
    graph: GraphSettings = GraphSettings()
    web: WebSettings = WebSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment is read through the table by load_settings(), never ambiently.
        return (init_settings,)
