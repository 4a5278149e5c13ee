"""The HTTP listeners' settings: the web UI and API, /metrics and the probes, connection
limits, header timeout, the Host headers answered, and the live events' websocket.

Read by `web/`.
"""

from __future__ import annotations

from mxrelay.config.values import (
    Address,
    Duration,
    HostPatterns,
    SettingsGroup,
    duration_setting,
    int_setting,
    setting,
)


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
