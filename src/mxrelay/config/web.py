"""The HTTP listeners' settings: the web UI and API, /metrics and the probes, connection
limits, header timeout and the Host headers answered.

Read by `web/`.
"""

from __future__ import annotations

import re
from typing import Annotated

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
    ui_webroot: WebRoot = setting(
        "/",
        env="MXRELAY_UI_WEBROOT",
        form="path",
        help="Path prefix the web UI and API are served under (behind an ingress that forwards "
        "/mail/... as is, say /mail/); /livez, /readyz and /healthz answer at the root too.",
    )
