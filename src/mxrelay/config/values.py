"""The settings' value parsers and value types, `setting()` (one option; `duration_setting()` and
`int_setting()` derive the form from the bounds) and `SettingsGroup`, the base of every group.

Pure: nothing here reads the environment. The groups themselves are in the stages' modules.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import idna
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from mxrelay.model import domain_alabel

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
    try:
        return timedelta(seconds=float(number) * _DURATION_UNITS[(unit or "s").lower()])
    except OverflowError:  # past timedelta's 999,999,999 days, or a float that overflowed
        raise ValueError("is too long to be a duration") from None


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
_SIZE_POWERS = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3, "t": 4}


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
    return int(float(number) * base ** _SIZE_POWERS[unit[:1]])


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
    else:  # no port, or an IPv6 address without brackets
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


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def parse_host_name(value: object) -> str:
    """A host name for the banner and EHLO (RFC 1123 2.1 letters, digits and hyphens; `""`
    means "this host's name"). Anything else, a CR or LF above all, would reach every reply."""
    text = str(value).strip().removesuffix(".")  # RFC 5321 names carry no root dot
    if not text:
        return ""
    if len(text) > 253 or not all(_HOST_LABEL.match(label) for label in text.split(".")):
        raise ValueError("is not a host name")
    return text


def _parse_lower_list(value: object) -> tuple[str, ...]:
    return tuple(str(item).strip().lower() for item in _split_list(value))


def _parse_domains(value: object) -> tuple[str, ...]:
    domains = []
    for item in _split_list(value):
        try:
            domains.append(domain_alabel(str(item)))
        except idna.IDNAError:
            raise ValueError(f"has {item!r}, which is not a domain name") from None
    return tuple(domains)


_HOST_NAME_RE = re.compile(r"^(\*|(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*)$")


def _parse_host_patterns(value: object) -> tuple[str, ...]:
    """Host names as a browser sends them (A-labels), `*.domain` for its subdomains, `*` for any."""
    patterns = []
    for item in _split_list(value):
        text = str(item)
        wildcard = "*." if text.startswith("*.") else ""
        try:
            pattern = text if text == "*" else wildcard + domain_alabel(text[len(wildcard) :])
        except idna.IDNAError:
            pattern = ""
        if not _HOST_NAME_RE.match(pattern):
            raise ValueError(f"has {text!r}, which is not a host name, *.domain or *")
        patterns.append(pattern)
    return tuple(patterns)


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
Domains = Annotated[tuple[str, ...], BeforeValidator(_parse_domains)]
HostPatterns = Annotated[tuple[str, ...], BeforeValidator(_parse_host_patterns)]
Upstream = Annotated[UpstreamUrl, BeforeValidator(parse_upstream)]
HostName = Annotated[str, BeforeValidator(parse_host_name)]


def setting(
    default: Any,
    *,
    env: str,
    form: str,
    help: str,
    secret: bool = False,
    aliases: tuple[str, ...] = (),
    ge: float | timedelta | None = None,
    le: float | timedelta | None = None,
) -> Any:
    """Declare one option: its variable, expected form and help live beside its type and default."""
    return Field(
        default,
        description=help,
        ge=ge,
        le=le,
        json_schema_extra={"env": env, "form": form, "secret": secret, "aliases": list(aliases)},
    )


def duration_setting(
    default: str,
    *,
    env: str,
    least: str,
    most: str,
    help: str,
    note: str = "",
) -> Any:
    """Declare a duration option. Both bounds are required: zero spins loops or times every session
    out, and a huge value overflows the clocks it is added to. The form states them."""
    form = f"a duration from {least} to {most}" + (f" ({note})" if note else "")
    return setting(
        default,
        env=env,
        form=form,
        help=help,
        ge=parse_duration(least),
        le=parse_duration(most),
    )


def size_setting(default: str, *, env: str, least: str, most: str, help: str) -> Any:
    """Declare a size option with both bounds; the form states them."""
    return setting(
        default,
        env=env,
        form=f"a size from {least} to {most}",
        help=help,
        ge=parse_size(least),
        le=parse_size(most),
    )


def int_setting(default: int, *, env: str, least: int, most: int, help: str) -> Any:
    """Declare an integer option with both bounds; the form states them."""
    return setting(
        default, env=env, form=f"an integer from {least} to {most}", help=help, ge=least, le=most
    )


class SettingsGroup(BaseModel):
    """The base of each settings group: frozen, and no option it does not declare."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", arbitrary_types_allowed=True, validate_default=True
    )
