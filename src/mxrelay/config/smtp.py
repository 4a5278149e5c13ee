"""The SMTP listener's settings: where it listens, who may connect, the limits of a session
and of a message, TLS and AUTH.

Read by the SMTP engine (`smtp/`) and its policy; the rule between two of them (the data
memory limit holds the largest message) is `load.py`'s.
"""

from __future__ import annotations

from pathlib import Path

from mxrelay.config.values import (
    Address,
    Duration,
    Networks,
    SettingsGroup,
    Size,
    duration_setting,
    int_setting,
    setting,
)

PRIVATE_AND_LOOPBACK = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"


class SmtpSettings(SettingsGroup):
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
    connection_limit: int = int_setting(
        500,
        env="MXRELAY_SMTP_CONNECTION_LIMIT",
        least=1,
        most=100_000,
        help="Concurrent SMTP connections in total; past it, new ones get 421 4.7.0.",
    )
    client_connection_limit: int = int_setting(
        50,
        env="MXRELAY_SMTP_CLIENT_CONNECTION_LIMIT",
        least=1,
        most=100_000,
        help="Concurrent connections per client address (Postfix's default: 50).",
    )
    command_timeout: Duration = duration_setting(
        "300s",
        env="MXRELAY_SMTP_COMMAND_TIMEOUT",
        least="100ms",
        most="1h",
        help="Idle time allowed while waiting for a command, or for the client to read its "
        "replies (Postfix smtpd_timeout).",
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
    recipient_limit: int = int_setting(
        1000,
        env="MXRELAY_SMTP_RECIPIENT_LIMIT",
        least=1,
        most=100_000,
        help="Recipients per message; past it, RCPT gets 452 4.5.3 (Postfix: 1000).",
    )
    line_length_limit: int = int_setting(
        2048,
        env="MXRELAY_SMTP_LINE_LENGTH_LIMIT",
        least=512,
        most=65536,
        help="Longest command line accepted (500 5.5.2 past it); message lines are not limited.",
    )
    recipient_overshoot_limit: int = int_setting(
        1000,
        env="MXRELAY_SMTP_RECIPIENT_OVERSHOOT_LIMIT",
        least=0,
        most=100_000,
        help="RCPTs past the recipient limit answered 452 4.5.3 without counting as errors; "
        "each one beyond counts as one (Postfix smtpd_recipient_overshoot_limit).",
    )
    error_limit: int = int_setting(
        20,
        env="MXRELAY_SMTP_ERROR_LIMIT",
        least=1,
        most=1000,
        help="Errors a client may make without delivering mail (bad commands, refused senders "
        "and recipients, failed AUTH) before it is disconnected with 421 4.7.0; an accepted "
        "message starts the count again (Postfix smtpd_hard_error_limit).",
    )
    soft_error_limit: int = int_setting(
        10,
        env="MXRELAY_SMTP_SOFT_ERROR_LIMIT",
        least=1,
        most=1000,
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
    junk_command_limit: int = int_setting(
        100,
        env="MXRELAY_SMTP_JUNK_COMMAND_LIMIT",
        least=0,
        most=100_000,
        help="NOOP, RSET, VRFY, HELP and repeated HELO/EHLO a client may send without delivering "
        "mail before each one counts as an error (Postfix smtpd_junk_command_limit).",
    )
    refusal_log_limit: int = int_setting(
        100,
        env="MXRELAY_SMTP_REFUSAL_LOG_LIMIT",
        least=1,
        most=10_000,
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
    auth_failure_limit: int = int_setting(
        10,
        env="MXRELAY_SMTP_AUTH_FAILURE_LIMIT",
        least=1,
        most=10_000,
        help="Failed AUTH attempts a client address (an IPv6 /64) may make per minute; past it, "
        "AUTH gets 454 4.7.0 without a password check until the minute's failures age out.",
    )
    auth_required: bool = setting(
        False,
        env="MXRELAY_SMTP_AUTH_REQUIRED",
        form="true or false",
        help="Require AUTH before MAIL (530 5.7.0 otherwise), on top of the client allow-list.",
    )
