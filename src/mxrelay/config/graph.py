"""The Graph delivery group (tenant, credentials, sending limits): the largest, so on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from mxrelay.config.values import (
    Duration,
    LowerList,
    SettingsGroup,
    Size,
    duration_setting,
    setting,
)


class GraphSettings(SettingsGroup):
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
    connect_timeout: Duration = duration_setting(
        "10s",
        env="MXRELAY_GRAPH_CONNECT_TIMEOUT",
        least="100ms",
        most="5m",
        help="Time allowed to connect to the identity platform or Graph.",
    )
    timeout: Duration = duration_setting(
        "30s",
        env="MXRELAY_GRAPH_TIMEOUT",
        least="100ms",
        most="1h",
        help="Total time allowed for a token request, or a sendMail request of a small message.",
    )
    timeout_per_mib: Duration = duration_setting(
        "10s",
        env="MXRELAY_GRAPH_TIMEOUT_PER_MIB",
        least="0s",
        most="10m",
        help="Extra time a sendMail request is allowed per MiB of request body.",
    )
