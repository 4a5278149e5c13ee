"""Settings of the relay as a whole: its host name, the delivery mode, logging and the
shutdown deadline.

Read where the stages are composed, and by the command line; the mode's needs (an upstream,
Graph credentials) are checked in `load.py`.
"""

from __future__ import annotations

from typing import Literal

from mxrelay.config.values import (
    Duration,
    HostName,
    SettingsGroup,
    duration_setting,
    setting,
)
from mxrelay.model import DeliveryMode


class ServiceSettings(SettingsGroup):
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
