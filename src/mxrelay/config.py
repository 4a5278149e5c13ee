"""Settings: one typed, frozen object built from the environment, and the table that documents it.

Every option is declared once, below, with its environment name, default, expected form and help
text; that declaration feeds the parser, `mxrelay config`, and the README's table (a test compares
them). Names follow DESIGN.md; new ones follow `MXRELAY_<STAGE>_<OBJECT>_<KIND>` as Postfix's
parameters do.

pydantic-settings' own environment source maps one variable to one field by prefix; mxrelay also needs
the reference validator's names (`LISTEN_ADDR=:25`, `UPSTREAM_HOST` + `UPSTREAM_PORT`), `*_FILE`
variants for secrets, and error messages that name the variable. So `load_settings()` reads the
injected environment through the table and hands the values to the settings class as init values;
pydantic does the parsing and validation.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mxrelay.model import DeliveryMode

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ConfigError(ValueError):
    """A setting has a bad value. `str()` is one line: variable, problem, expected form."""


# --------------------------------------------------------------------------------------------
# Value parsers (pure; each raises ValueError with a short description of the problem)
# --------------------------------------------------------------------------------------------

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """`30s`, `5m`, `2h`, `5d`, `250ms`; a bare number means seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ValueError("is not a duration")
    number, unit = match.groups()
    return timedelta(seconds=float(number) * _DURATION_UNITS[(unit or "s").lower()])


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds == 0:
        return "0s"
    for unit in ("w", "d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_size(value: object) -> int:
    """Bytes: `26214400`, `25MiB`, `10MB`, `512k` (KiB/MiB/GiB are binary, KB/MB/GB decimal)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError("is not a size")
    number, unit = match.groups()
    unit = (unit or "").lower()
    base = 1024 if "i" in unit else 1000
    power = "bkmgt".find(unit[:1]) if unit[:1] in "kmgt" and unit else 0
    return int(float(number) * (base**power if power > 0 else 1))


def format_size(value: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    return str(value)


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(value: object, default_port: int | None = None) -> HostPort:
    """`host:port`, `[v6]:port`, `:port` (all interfaces, as the reference validator wrote it)."""
    if isinstance(value, HostPort):
        return value
    text = str(value).strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("is not an address")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif text.count(":") > 1:
        host, port_text = text, ""
    else:
        host, port_text = text, ""
    host = host or "0.0.0.0"
    if not port_text:
        if default_port is None:
            raise ValueError("has no port")
        return HostPort(host, default_port)
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError("has no valid port")
    return HostPort(host, int(port_text))


def _split_list(value: object) -> list[Any]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    raise ValueError("is not a comma-separated list")


def _parse_networks(value: object) -> tuple[IPNetwork, ...]:
    networks = []
    for item in _split_list(value):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"has {item!r}, which is not an IP network") from None
    return tuple(networks)


def _parse_addresses(value: object) -> tuple[IPAddress, ...]:
    addresses = []
    for item in _split_list(value):
        try:
            addresses.append(ipaddress.ip_address(item))
        except ValueError:
            raise ValueError(f"has {item!r}, which is not an IP address") from None
    return tuple(addresses)


def _parse_servers(value: object) -> tuple[HostPort, ...]:
    servers = []
    for item in _split_list(value):
        server = parse_host_port(item, default_port=53)
        try:
            ipaddress.ip_address(server.host)
        except ValueError:
            raise ValueError(f"has {item!r}; name servers must be IP addresses") from None
        servers.append(server)
    return tuple(servers)


def _reply_code(value: object) -> object:
    """`"450"` from the environment as the integer a Literal[550, 450] field compares with."""
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


def _parse_lower_list(value: object) -> tuple[str, ...]:
    return tuple(str(item).strip().lower() for item in _split_list(value))


@dataclass(frozen=True, slots=True)
class UpstreamUrl:
    """`smtp://host:port`, `smtps://host:port`, optional `?starttls=required|opportunistic|off`."""

    scheme: Literal["smtp", "smtps"]
    host: str
    port: int
    starttls: Literal["opportunistic", "required", "off"] = "opportunistic"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = "" if self.starttls == "opportunistic" else f"?starttls={self.starttls}"
        return f"{self.scheme}://{host}:{self.port}{query}"


def parse_upstream(value: object) -> UpstreamUrl:
    if isinstance(value, UpstreamUrl):
        return value
    text = str(value).strip()
    if "://" not in text:
        text = "smtp://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("is not an SMTP URL")
    if parts.username or parts.password:
        raise ValueError("carries credentials; use MXRELAY_UPSTREAM_USERNAME/PASSWORD_FILE")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
    except ValueError:
        raise ValueError("has no valid port") from None
    starttls = parse_qs(parts.query).get("starttls", ["opportunistic"])[-1]
    if starttls not in ("opportunistic", "required", "off"):
        raise ValueError("has an unknown starttls= value")
    scheme: Literal["smtp", "smtps"] = "smtps" if parts.scheme == "smtps" else "smtp"
    return UpstreamUrl(scheme, unquote(parts.hostname), port, starttls)  # type: ignore[arg-type]


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
Address = Annotated[HostPort, BeforeValidator(parse_host_port)]
Networks = Annotated[tuple[IPNetwork, ...], BeforeValidator(_parse_networks)]
Addresses = Annotated[tuple[IPAddress, ...], BeforeValidator(_parse_addresses)]
NameServers = Annotated[tuple[HostPort, ...], BeforeValidator(_parse_servers)]
LowerList = Annotated[tuple[str, ...], BeforeValidator(_parse_lower_list)]
Upstream = Annotated[UpstreamUrl, BeforeValidator(parse_upstream)]


def setting(
    default: Any,
    *,
    env: str,
    form: str,
    help: str,
    secret: bool = False,
    aliases: tuple[str, ...] = (),
    ge: float | None = None,
    le: float | None = None,
) -> Any:
    """Declare one option: its variable, expected form and help live beside its type and default."""
    return Field(
        default,
        description=help,
        ge=ge,
        le=le,
        json_schema_extra={"env": env, "form": form, "secret": secret, "aliases": list(aliases)},
    )


class _Group(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", arbitrary_types_allowed=True, validate_default=True
    )


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------

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
    command_timeout: Duration = setting(
        "300s",
        env="MXRELAY_SMTP_COMMAND_TIMEOUT",
        form="a duration such as 300s",
        help="Idle time allowed while waiting for a command (Postfix smtpd_timeout).",
    )
    data_timeout: Duration = setting(
        "180s",
        env="MXRELAY_SMTP_DATA_TIMEOUT",
        form="a duration such as 180s",
        help="Idle time allowed between chunks of message data (RFC 5321 4.5.3.2: 3 minutes).",
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
    error_limit: int = setting(
        20,
        env="MXRELAY_SMTP_ERROR_LIMIT",
        form="an integer from 1 to 1000",
        ge=1,
        le=1000,
        help="Errors (bad commands, refusals) a client may cause before it is disconnected.",
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
    query_timeout: Duration = setting(
        "5s",
        env="MXRELAY_DNS_QUERY_TIMEOUT",
        form="a duration such as 5s",
        help="Time allowed for one DNS query (UDP, then TCP on truncation).",
    )
    rcpt_timeout: Duration = setting(
        "10s",
        env="MXRELAY_DNS_RCPT_TIMEOUT",
        form="a duration such as 10s",
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
    trusted_domains: LowerList = setting(
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
    cache_min_ttl: Duration = setting(
        "5s",
        env="MXRELAY_DNS_CACHE_MIN_TTL",
        form="a duration such as 5s",
        help="Shortest life of a positive verdict (a TTL of 0 is still not reused across RCPTs).",
    )
    cache_max_ttl: Duration = setting(
        "24h",
        env="MXRELAY_DNS_CACHE_MAX_TTL",
        form="a duration such as 24h",
        help="Longest life of a positive verdict.",
    )
    negative_max_ttl: Duration = setting(
        "15m",
        env="MXRELAY_DNS_NEGATIVE_MAX_TTL",
        form="a duration such as 15m",
        help="Longest life of an NXDOMAIN/NODATA verdict (RFC 2308 SOA minimum, capped).",
    )
    transient_ttl: Duration = setting(
        "30s",
        env="MXRELAY_DNS_TRANSIENT_TTL",
        form="a duration up to 5m",
        help="Life of a temporary-failure verdict (always 4xx; RFC 2308 7.1 caps it at 5 minutes).",
    )
    serve_stale: Duration = setting(
        "0s",
        env="MXRELAY_DNS_SERVE_STALE",
        form="a duration such as 1h (0s = off)",
        help="Serve an expired positive verdict this long when its refresh fails temporarily.",
    )


class PolicySettings(_Group):
    disposable: bool = setting(
        False,
        env="MXRELAY_POLICY_DISPOSABLE",
        form="true or false",
        help="Refuse disposable-address domains (550 5.7.1), matched on the registrable domain.",
    )
    disposable_allow: LowerList = setting(
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
    domain_allow: LowerList = setting(
        "",
        env="MXRELAY_POLICY_DOMAIN_ALLOW",
        form="comma-separated domains",
        help="When set, only these recipient domains (and subdomains) are accepted.",
    )
    domain_deny: LowerList = setting(
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
    connect_timeout: Duration = setting(
        "10s",
        env="MXRELAY_UPSTREAM_CONNECT_TIMEOUT",
        form="a duration such as 10s",
        help="Time allowed to connect to the upstream and read its greeting.",
    )
    command_timeout: Duration = setting(
        "60s",
        env="MXRELAY_UPSTREAM_COMMAND_TIMEOUT",
        form="a duration such as 60s",
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
    idle_timeout: Duration = setting(
        "5s",
        env="MXRELAY_UPSTREAM_IDLE_TIMEOUT",
        form="a duration such as 5s",
        help="How long an unused upstream connection is kept for reuse.",
    )


class MimeSettings(_Group):
    ics_strip: LowerList = setting(
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
    commit_window: Duration = setting(
        "1ms",
        env="MXRELAY_STORE_COMMIT_WINDOW",
        form="a duration such as 1ms (0s = commit as soon as the previous commit ends)",
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
    body_retention: Duration = setting(
        "30d",
        env="MXRELAY_STORE_BODY_RETENTION",
        form="a duration such as 30d",
        help="Age after which message bodies are pruned (never while the message is queued).",
    )
    body_max_size: Size = setting(
        "5GiB",
        env="MXRELAY_STORE_BODY_MAX_SIZE",
        form="a size such as 5GiB",
        ge=0,
        help="Total size of stored (compressed) bodies; past it the oldest are pruned (0 = no cap).",
    )
    log_retention: Duration = setting(
        "180d",
        env="MXRELAY_STORE_LOG_RETENTION",
        form="a duration such as 180d",
        help="Age after which message metadata, delivery attempts and refusals are pruned.",
    )
    prune_interval: Duration = setting(
        "1m",
        env="MXRELAY_STORE_PRUNE_INTERVAL",
        form="a duration such as 1m",
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
    retry_initial: Duration = setting(
        "1m",
        env="MXRELAY_RETRY_INITIAL",
        form="a duration such as 1m",
        help="Delay before the first retry of a deferred delivery.",
    )
    retry_max: Duration = setting(
        "1h",
        env="MXRELAY_RETRY_MAX",
        form="a duration such as 1h",
        help="Longest delay between retries (exponential backoff with full jitter up to it).",
    )
    lifetime: Duration = setting(
        "5d",
        env="MXRELAY_QUEUE_LIFETIME",
        form="a duration such as 5d",
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
    lease_time: Duration = setting(
        "60s",
        env="MXRELAY_QUEUE_LEASE_TIME",
        form="a duration such as 60s",
        help="How long a claimed entry stays with its replica without a renewal; a replica that "
        "dies loses its entries to the others once their leases expire.",
    )
    poll_interval: Duration = setting(
        "1s",
        env="MXRELAY_QUEUE_POLL_INTERVAL",
        form="a duration such as 1s",
        help="Longest wait between looks at the queue (new mail wakes this process at once).",
    )
    probe_interval: Duration = setting(
        "1m",
        env="MXRELAY_DELIVERY_PROBE_INTERVAL",
        form="a duration such as 1m",
        help="While a configuration fault holds mail, how often the transport is probed again.",
    )


class GraphSettings(_Group):
    tenant_id: str | None = setting(
        None,
        env="MXRELAY_GRAPH_TENANT_ID",
        form="a tenant id or domain",
        help="Entra tenant of the app registration.",
    )
    client_id: str | None = setting(
        None,
        env="MXRELAY_GRAPH_CLIENT_ID",
        form="an application (client) id",
        help="App registration's client id.",
    )
    client_secret: SecretStr | None = setting(
        None,
        env="MXRELAY_GRAPH_CLIENT_SECRET",
        form="text (or a file with MXRELAY_GRAPH_CLIENT_SECRET_FILE)",
        secret=True,
        help="Client secret of the app registration.",
    )
    certificate_file: Path | None = setting(
        None,
        env="MXRELAY_GRAPH_CERTIFICATE_FILE",
        form="a PEM (key + certificate) or PFX file path",
        help="Certificate credential instead of a secret.",
    )
    authority: str = setting(
        "https://login.microsoftonline.com",
        env="MXRELAY_GRAPH_AUTHORITY",
        form="an https:// URL",
        help="Identity platform base URL; the tenant is appended.",
    )
    endpoint: str = setting(
        "https://graph.microsoft.com",
        env="MXRELAY_GRAPH_ENDPOINT",
        form="an https:// URL",
        help="Graph base URL (national clouds use their own).",
    )
    mailbox: str | None = setting(
        None,
        env="MXRELAY_GRAPH_MAILBOX",
        form="a UPN or object id",
        help="Fixed sending mailbox (else taken from the message, per policy).",
    )
    certificate_password: SecretStr | None = setting(
        None,
        env="MXRELAY_GRAPH_CERTIFICATE_PASSWORD",
        form="text (or a file with MXRELAY_GRAPH_CERTIFICATE_PASSWORD_FILE)",
        secret=True,
        help="Password of an encrypted PEM key or of a PFX file.",
    )
    mailbox_from: Literal["header", "envelope"] = setting(
        "header",
        env="MXRELAY_GRAPH_MAILBOX_FROM",
        form="header or envelope",
        help="Without a fixed mailbox: send from the header From address, or the envelope sender.",
    )
    allowed_senders: LowerList = setting(
        "",
        env="MXRELAY_GRAPH_ALLOWED_SENDERS",
        form="comma-separated addresses and @domains (empty = anyone)",
        help="Graph: envelope sender and header From must both be listed, else 550 5.7.1.",
    )
    max_message_size: Size = setting(
        "3MiB",
        env="MXRELAY_GRAPH_MAX_MESSAGE_SIZE",
        form="a size such as 3MiB (0 = only MXRELAY_MAX_MESSAGE_SIZE)",
        ge=0,
        help="Graph: largest message accepted (552 5.3.4 above); base64 makes the request 4/3 as big.",
    )
    messages_per_minute: int = setting(
        30,
        env="MXRELAY_GRAPH_MESSAGES_PER_MINUTE",
        form="an integer (0 = no limit)",
        ge=0,
        help="Messages sent per minute per sending mailbox, evenly spaced (Exchange allows 30).",
    )
    requests_per_10_minutes: int = setting(
        10_000,
        env="MXRELAY_GRAPH_REQUESTS_PER_10_MINUTES",
        form="an integer (0 = no limit)",
        ge=0,
        help="Graph requests per 10 minutes per sending mailbox (Graph allows 10,000).",
    )
    upload_bytes_per_5_minutes: Size = setting(
        "150MB",
        env="MXRELAY_GRAPH_UPLOAD_BYTES_PER_5_MINUTES",
        form="a size such as 150MB (0 = no limit)",
        ge=0,
        help="Request bytes uploaded per 5 minutes per sending mailbox (Graph allows 150 MB).",
    )
    concurrency: int = setting(
        4,
        env="MXRELAY_GRAPH_CONCURRENCY",
        form="an integer (0 = no limit)",
        ge=0,
        help="sendMail requests in flight at once for the app (Graph allows 4).",
    )
    daily_recipient_limit: int = setting(
        10_000,
        env="MXRELAY_GRAPH_DAILY_RECIPIENT_LIMIT",
        form="an integer (0 = no limit)",
        ge=0,
        help="Recipients per rolling 24 hours per sending mailbox; beyond it messages wait.",
    )
    connect_timeout: Duration = setting(
        "10s",
        env="MXRELAY_GRAPH_CONNECT_TIMEOUT",
        form="a duration such as 10s",
        help="Time allowed to connect to the identity platform or Graph.",
    )
    timeout: Duration = setting(
        "30s",
        env="MXRELAY_GRAPH_TIMEOUT",
        form="a duration such as 30s",
        help="Total time allowed for a token request, or a sendMail request of a small message.",
    )
    timeout_per_mib: Duration = setting(
        "10s",
        env="MXRELAY_GRAPH_TIMEOUT_PER_MIB",
        form="a duration such as 10s",
        help="Extra time a sendMail request is allowed per MiB of request body.",
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


class ServiceSettings(_Group):
    hostname: str = setting(
        "",
        env="MXRELAY_HOSTNAME",
        form="a host name",
        help="Banner and EHLO name (default: this host's fully qualified name).",
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
    shutdown_timeout: Duration = setting(
        "30s",
        env="MXRELAY_SHUTDOWN_TIMEOUT",
        form="a duration such as 30s",
        help="Grace period on SIGTERM for in-flight SMTP transactions and deliveries.",
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


# --------------------------------------------------------------------------------------------
# Reading the environment through the table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    """One row of the settings table."""

    group: str
    name: str
    env: str
    form: str
    help: str
    secret: bool
    aliases: tuple[str, ...]
    default: Any


def options() -> Iterator[Option]:
    """Every option in declaration order (feeds `mxrelay config`, --help and the README)."""
    for group, group_field in Settings.model_fields.items():
        model = group_field.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        for name, info in model.model_fields.items():
            extra = _extra(info)
            yield Option(
                group=group,
                name=name,
                env=str(extra["env"]),
                form=str(extra["form"]),
                help=info.description or "",
                secret=bool(extra["secret"]),
                aliases=tuple(extra["aliases"]),
                default=info.default,
            )


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    assert isinstance(extra, dict)
    return extra


def _read_secret_file(env: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            f"{env}_FILE: {path!r} cannot be read ({exc.strerror}); expected a readable file"
        ) from None


def _raw_values(environ: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Collect the values present in the environment, keyed by group and field.

    Also returns which variable each value came from, so an error can name it.
    """
    raw: dict[str, dict[str, Any]] = {}
    source: dict[str, str] = {}
    for option in options():
        value: str | None = environ.get(option.env)
        origin = option.env
        if option.secret and environ.get(option.env + "_FILE"):
            if value is not None:
                raise ConfigError(
                    f"{option.env}: set both directly and through {option.env}_FILE; expected one"
                )
            value = _read_secret_file(option.env, environ[option.env + "_FILE"])
            origin = option.env + "_FILE"
        if value is None:
            value, origin = _legacy_value(option, environ)
        if value is None:
            continue
        raw.setdefault(option.group, {})[option.name] = value
        source[f"{option.group}.{option.name}"] = origin
    if "delivery" not in raw.get("service", {}) and "UPSTREAM_HOST" in environ:
        raw.setdefault("service", {})["delivery"] = DeliveryMode.PASSTHROUGH.value
        source["service.delivery"] = "UPSTREAM_HOST"
    return raw, source


def _legacy_value(option: Option, environ: Mapping[str, str]) -> tuple[str | None, str]:
    """The reference validator's names: LISTEN_ADDR, UPSTREAM_HOST and UPSTREAM_PORT."""
    if option.env == "MXRELAY_SMTP_LISTEN" and "LISTEN_ADDR" in environ:
        return environ["LISTEN_ADDR"], "LISTEN_ADDR"
    if option.env == "MXRELAY_UPSTREAM" and "UPSTREAM_HOST" in environ:
        host = environ["UPSTREAM_HOST"].strip()
        port = environ.get("UPSTREAM_PORT", "25").strip()
        if not port.isdigit():
            raise ConfigError(f"UPSTREAM_PORT: {port!r} is not a port; expected an integer 1-65535")
        host = f"[{host}]" if ":" in host else host
        return f"smtp://{host}:{port}", "UPSTREAM_HOST"
    return None, option.env


def _describe(error: Mapping[str, Any], source: Mapping[str, str], raw: Mapping[str, Any]) -> str:
    location = [str(part) for part in error.get("loc", ())]
    key = ".".join(location[:2])
    by_key = {f"{o.group}.{o.name}": o for o in options()}
    option = by_key.get(key)
    variable = source.get(key, option.env if option else key)
    value = raw.get(location[0], {}).get(location[1]) if len(location) >= 2 else None
    message = str(error.get("msg", "is not valid"))
    message = message.removeprefix("Value error, ")
    if not message.startswith(("is ", "has ", "carries ")):
        message = f"is not valid ({message[0].lower()}{message[1:]})"
    if variable.endswith("_FILE") or (option and option.secret):
        shown = "the value"  # never echo a secret, not even a malformed one
        return f"{variable}: {shown} {message}; expected {option.form if option else 'a value'}"
    shown = f"{value!r}" if value is not None else "the value"
    return f"{variable}: {shown} {message}; expected {option.form if option else 'a valid value'}"


def load_settings(
    environ: Mapping[str, str], *, hostname: Callable[[], str] = socket.getfqdn
) -> Settings:
    """Build the settings from `environ`; raise ConfigError (one line) on the first bad value."""
    raw, source = _raw_values(environ)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors()[0], source, raw)) from None
    return _complete(settings, hostname)


def graph_settings_problem(graph: GraphSettings) -> str | None:
    """Why Graph delivery cannot work with these settings (one line naming the variable)."""
    if not graph.tenant_id:
        return "MXRELAY_GRAPH_TENANT_ID: missing, but Graph delivery needs it; expected a tenant id"
    if not graph.client_id:
        return "MXRELAY_GRAPH_CLIENT_ID: missing, but Graph delivery needs it; expected a client id"
    if graph.client_secret is None and graph.certificate_file is None:
        return (
            "MXRELAY_GRAPH_CLIENT_SECRET: missing, and no MXRELAY_GRAPH_CERTIFICATE_FILE either; "
            "expected a client secret or a certificate"
        )
    if graph.client_secret is not None and graph.certificate_file is not None:
        return (
            "MXRELAY_GRAPH_CERTIFICATE_FILE: set together with MXRELAY_GRAPH_CLIENT_SECRET; "
            "expected one credential"
        )
    for env, url in (
        ("MXRELAY_GRAPH_AUTHORITY", graph.authority),
        ("MXRELAY_GRAPH_ENDPOINT", graph.endpoint),
    ):
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            return f"{env}: {url!r} is not an https:// URL; expected an https:// URL"
    return None


def _complete(settings: Settings, hostname: Callable[[], str]) -> Settings:
    """Defaults that depend on the host, and rules that span several options."""
    service = settings.service
    if not service.hostname:
        service = service.model_copy(update={"hostname": hostname() or "localhost"})
    mode = service.delivery
    if mode in (DeliveryMode.PASSTHROUGH, DeliveryMode.SMTP) and settings.upstream.url is None:
        raise ConfigError(
            f"MXRELAY_UPSTREAM: missing, but MXRELAY_DELIVERY={mode.value} needs it; "
            "expected smtp://host:port"
        )
    if mode is DeliveryMode.GRAPH and (problem := graph_settings_problem(settings.graph)):
        raise ConfigError(problem)
    if settings.dns.transient_ttl > timedelta(minutes=5):
        raise ConfigError(
            f"MXRELAY_DNS_TRANSIENT_TTL: {format_duration(settings.dns.transient_ttl)!r} is longer "
            "than RFC 2308 allows; expected a duration up to 5m"
        )
    if settings.dns.cache_min_ttl > settings.dns.cache_max_ttl:
        raise ConfigError(
            "MXRELAY_DNS_CACHE_MIN_TTL: is longer than MXRELAY_DNS_CACHE_MAX_TTL; "
            "expected a duration no longer than the maximum"
        )
    if (settings.smtp.tls_cert_file is None) != (settings.smtp.tls_key_file is None):
        missing = (
            "MXRELAY_SMTP_TLS_KEY_FILE"
            if settings.smtp.tls_key_file is None
            else ("MXRELAY_SMTP_TLS_CERT_FILE")
        )
        raise ConfigError(f"{missing}: missing; expected a PEM file path beside its pair")
    return settings.model_copy(update={"service": service})


def effective(settings: Settings) -> Iterator[tuple[Option, str]]:
    """Each option with its effective value as text; secrets appear as `********`."""
    for option in options():
        value = getattr(getattr(settings, option.group), option.name)
        if option.form.startswith("a size") and isinstance(value, int):
            yield option, format_size(value)
        else:
            yield option, render_value(value, secret=option.secret)


_URL_PASSWORD_RE = re.compile(r"^([a-z][a-z0-9+.-]*://[^:/@]*):[^@/]*@", re.IGNORECASE)


def redact_url(url: str) -> str:
    """A URL with any embedded password replaced, for logs and `mxrelay config`."""
    return _URL_PASSWORD_RE.sub(r"\1:********@", url)


def render_value(value: object, *, secret: bool = False) -> str:
    if value is None or value == "" or value == ():
        return ""
    if secret:
        return "********"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, tuple | list):
        return ",".join(render_value(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return str(value)
