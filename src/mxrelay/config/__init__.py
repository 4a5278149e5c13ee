"""Settings: one typed, frozen object built from the environment, and the table that documents it.

Every option is declared once, in the module of the stage that reads it (`smtp.py`, `dns.py`,
`upstream.py`, `mime.py`, `store.py`, `queue.py`, `graph.py`, `web.py`, `service.py`; `Settings`
in `settings.py` holds the groups), with its environment name, default, expected form and help
text; that declaration feeds the parser, `mxrelay config`, and the README's table (a test compares
them). Names follow DESIGN.md; new ones follow
`MXRELAY_<STAGE>_<OBJECT>_<KIND>` as Postfix's parameters do.

pydantic-settings' own environment source maps one variable to one field by prefix; mxrelay also needs
the reference validator's names (`LISTEN_ADDR=:25`, `UPSTREAM_HOST` + `UPSTREAM_PORT`), `*_FILE`
variants for secrets, and error messages that name the variable. So `load_settings()` (in `load.py`)
reads the injected environment through the table and hands the values to the settings class as init
values; pydantic does the parsing and validation. The value parsers and types are in `values.py`.
"""

from __future__ import annotations

__all__ = [
    "PRIVATE_AND_LOOPBACK",
    "Address",
    "Addresses",
    "ConfigError",
    "DnsSettings",
    "Domains",
    "Duration",
    "GraphSettings",
    "HostPatterns",
    "HostPort",
    "IPAddress",
    "IPNetwork",
    "LowerList",
    "MimeSettings",
    "NameServers",
    "Networks",
    "Option",
    "PolicySettings",
    "QueueSettings",
    "ServiceSettings",
    "Settings",
    "Size",
    "SmtpSettings",
    "StoreSettings",
    "Upstream",
    "UpstreamSettings",
    "UpstreamUrl",
    "WebSettings",
    "duration_setting",
    "effective",
    "format_duration",
    "format_size",
    "graph_settings_problem",
    "load_settings",
    "options",
    "parse_duration",
    "parse_host_port",
    "parse_size",
    "parse_upstream",
    "redact_url",
    "render_value",
    "setting",
    "store_url",
]

from mxrelay.config.dns import DnsSettings, PolicySettings
from mxrelay.config.graph import GraphSettings
from mxrelay.config.load import (
    Option,
    effective,
    graph_settings_problem,
    load_settings,
    options,
    redact_url,
    render_value,
)
from mxrelay.config.mime import MimeSettings
from mxrelay.config.queue import QueueSettings
from mxrelay.config.service import ServiceSettings
from mxrelay.config.settings import Settings
from mxrelay.config.smtp import PRIVATE_AND_LOOPBACK, SmtpSettings
from mxrelay.config.store import StoreSettings, store_url
from mxrelay.config.upstream import UpstreamSettings
from mxrelay.config.values import (
    Address,
    Addresses,
    ConfigError,
    Domains,
    Duration,
    HostPatterns,
    HostPort,
    IPAddress,
    IPNetwork,
    LowerList,
    NameServers,
    Networks,
    Size,
    Upstream,
    UpstreamUrl,
    duration_setting,
    format_duration,
    format_size,
    parse_duration,
    parse_host_port,
    parse_size,
    parse_upstream,
    setting,
)
from mxrelay.config.web import WebSettings
