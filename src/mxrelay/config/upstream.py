"""The upstream SMTP server's settings: the smarthost in smtp mode, the target in passthrough
mode (URL, credentials, timeouts, connections kept for reuse).

Read by `upstream/`; whether a mode needs the URL is `load.py`'s.
"""

from __future__ import annotations

from pydantic import SecretStr

from mxrelay.config.values import (
    Duration,
    SettingsGroup,
    Upstream,
    duration_setting,
    int_setting,
    setting,
)


class UpstreamSettings(SettingsGroup):
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
    idle_connections: int = int_setting(
        32,
        env="MXRELAY_UPSTREAM_IDLE_CONNECTIONS",
        least=0,
        most=10_000,
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
