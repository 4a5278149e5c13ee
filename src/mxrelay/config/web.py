"""The HTTP listeners' settings: the web UI and API, /metrics and the probes, connection
limits, header timeout, the Host headers answered, who may log in (and as what), which other
web origins may call the API, and the live events' websocket.

Secure by default (`web_settings_problem`, checked with the other settings, so `mxrelay config`
refuses what `serve` would): without users the UI and API listen on loopback only, unless the
operator states that an authenticating proxy is in front (`MXRELAY_UI_AUTH=none`).

Read by `web/`.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import idna
from pydantic import BeforeValidator

from mxrelay.config.values import (
    Address,
    Duration,
    HostPatterns,
    SettingsGroup,
    duration_setting,
    int_setting,
    setting,
)
from mxrelay.model import domain_alabel


def _items(value: object) -> list[str]:
    if isinstance(value, tuple | list):
        return [str(item) for item in value]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _parse_user_names(value: object) -> tuple[str, ...]:
    """User names as a users file spells them (case counts), or `*` for every user."""
    names = _items(value)
    for name in names:
        if ":" in name or not name.isprintable() or " " in name:
            raise ValueError(f"has {name!r}, which is not a user name")
    return ("*",) if "*" in names else tuple(names)


def parse_origin(text: str) -> str:
    """An origin as a browser's `Origin` header spells it (`https://host[:port]`, lower case,
    A-labels), or `host[:port]` for that host and port under any scheme (as Mailpit matches its
    `--api-cors` entries). ValueError when it is neither."""
    has_scheme = "://" in text
    parts = urlsplit(text if has_scheme else "http://" + text)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"has {text!r}, which has no valid port") from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "*" in text
    ):
        raise ValueError(f"has {text!r}, which is not an origin (https://host[:port])")
    try:
        host = domain_alabel(parts.hostname)
    except idna.IDNAError:
        raise ValueError(f"has {text!r}, which is not an origin (https://host[:port])") from None
    host = f"[{host}]" if ":" in host else host
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}" if has_scheme else netloc


def _parse_origins(value: object) -> tuple[str, ...]:
    items = _items(value)
    if "*" in items:
        return ("*",)
    return tuple(parse_origin(item) for item in items)


UserNames = Annotated[tuple[str, ...], BeforeValidator(_parse_user_names)]
Origins = Annotated[tuple[str, ...], BeforeValidator(_parse_origins)]

_WEBROOT_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")


def parse_webroot(value: object) -> str:
    """A path prefix as `/segment/.../`: leading and trailing slash, unreserved URL characters
    only (it is written into every page and every `Set-Cookie` path), no `.` or `..` segment."""
    segments = [part for part in str(value).strip().split("/") if part]
    if len(segments) > 8 or any(
        part in (".", "..") or not _WEBROOT_SEGMENT.match(part) for part in segments
    ):
        raise ValueError("is not a path prefix of letters, digits, '.', '_', '~', '-' and '/'")
    return "/" + "".join(f"{part}/" for part in segments)


WebRoot = Annotated[str, BeforeValidator(parse_webroot)]


class WebSettings(SettingsGroup):
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
    connection_limit: int = int_setting(
        100,
        env="MXRELAY_HTTP_CONNECTION_LIMIT",
        least=1,
        most=10_000,
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
    ui_auth: Literal["basic", "none"] = setting(
        "basic",
        env="MXRELAY_UI_AUTH",
        form="basic or none",
        help="basic: HTTP Basic with the users of MXRELAY_UI_AUTH_FILE (without that file, the UI "
        "and API may listen on loopback only, and are open there). none: no login of mxrelay's "
        "own, for an authenticating proxy in front; needed to listen elsewhere without users.",
    )
    ui_auth_file: Path | None = setting(
        None,
        env="MXRELAY_UI_AUTH_FILE",
        form="a file of user:bcrypt-hash lines (htpasswd -B)",
        help="Users of the web UI and API; each may read (viewer) unless named in "
        "MXRELAY_UI_OPERATORS. Others get 401.",
    )
    ui_operators: UserNames = setting(
        "",
        env="MXRELAY_UI_OPERATORS",
        form="comma-separated user names of MXRELAY_UI_AUTH_FILE, or *",
        help="Users who may also act (delete, mark read, tag, release, retry, send); a viewer "
        "gets 403 for those. * names every user.",
    )
    send_api_auth_file: Path | None = setting(
        None,
        env="MXRELAY_SEND_API_AUTH_FILE",
        form="a file of user:bcrypt-hash lines (htpasswd -B)",
        help="Users of POST /api/v1/send alone, instead of the UI's operators (as Mailpit's "
        "send API auth).",
    )
    ui_auth_failure_limit: int = int_setting(
        10,
        env="MXRELAY_UI_AUTH_FAILURE_LIMIT",
        least=1,
        most=10_000,
        help="Failed logins a client address (an IPv6 /64) may make per minute on the web UI and "
        "API; past it, 429 without a password check until the minute's failures age out.",
    )
    cors_origins: Origins = setting(
        "",
        env="MXRELAY_UI_CORS_ORIGINS",
        form="comma-separated origins (https://host[:port], or host[:port] for any scheme), or *",
        help="Other web origins whose pages may call the API (CORS). Requests from any other "
        "origin get 403, as do state-changing ones a browser marks cross-site.",
    )
    events_client_limit: int = int_setting(
        100,
        env="MXRELAY_HTTP_EVENTS_CLIENT_LIMIT",
        least=1,
        most=10_000,
        help="Websocket clients of /api/events at once; past it, a new one is refused.",
    )
    events_poll_interval: Duration = duration_setting(
        "250ms",
        env="MXRELAY_HTTP_EVENTS_POLL_INTERVAL",
        least="50ms",
        most="1m",
        help="How often /api/events looks for new rows in the store while clients are connected "
        "(on PostgreSQL a notification wakes it at once, and this is only the fallback).",
    )
    events_stats_interval: Duration = duration_setting(
        "1s",
        env="MXRELAY_HTTP_EVENTS_STATS_INTERVAL",
        least="100ms",
        most="1h",
        help="Least time between two `stats` frames (message and unread counts) on /api/events.",
    )
    ui_webroot: WebRoot = setting(
        "/",
        env="MXRELAY_UI_WEBROOT",
        form="path",
        help="Path prefix the web UI and API are served under (behind an ingress that forwards "
        "/mail/... as is, say /mail/); /livez, /readyz and /healthz answer at the root too.",
    )


def is_loopback(host: str) -> bool:
    """Whether a listen host accepts connections from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web_settings_problem(web: WebSettings) -> str | None:
    """Why the web UI and API must not start with these settings (one line naming the variable),
    or None. Secure by default: no listening off loopback without a login."""
    if web.ui_auth == "none" and web.ui_auth_file is not None:
        return (
            "MXRELAY_UI_AUTH: none, but MXRELAY_UI_AUTH_FILE is set; expected basic with the "
            "users file, or none without it"
        )
    if web.ui_operators and web.ui_auth_file is None:
        return (
            "MXRELAY_UI_OPERATORS: set, but MXRELAY_UI_AUTH_FILE is not; expected the users file "
            "the operators are in"
        )
    if web.ui_auth_file is None and web.ui_auth != "none" and not is_loopback(web.http_listen.host):
        return (
            f"MXRELAY_HTTP_LISTEN: {str(web.http_listen)!r} is not a loopback address, and the web "
            "UI and API have no users; expected MXRELAY_UI_AUTH_FILE, MXRELAY_UI_AUTH=none behind "
            "an authenticating proxy, or a loopback address"
        )
    return None
