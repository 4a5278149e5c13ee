"""The SMTP listener as a stage: the engine with the relay's policy, limits, TLS and users.

`relay_policy` fills the relay policy (`smtp/policy.py`) with what the other stages give it: the
recipient check, the sink the plan chose, Graph's sender rules (`sender_rules.py`); `smtp_server`
hands it to the engine (`smtp/server.py`) with the message size the plan allows. The same policy
answers for mail that enters without SMTP (`submit.py`). A certificate or a users file that
cannot be read is a StartupError naming the variable, before anything listens.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from mxrelay.config import Settings
from mxrelay.metrics import Metrics
from mxrelay.passwords import UserTable
from mxrelay.runtime.plan import StagePlan, StartupError
from mxrelay.runtime.sender_rules import sender_rules
from mxrelay.smtp.hooks import SmtpLimits
from mxrelay.smtp.policy import RelayPolicy
from mxrelay.smtp.server import SmtpServer
from mxrelay.smtp.sink import RecipientCheck, Sink


def relay_policy(
    settings: Settings,
    plan: StagePlan,
    *,
    check: RecipientCheck,
    sink: Sink,
    users: UserTable | None,
    metrics: Metrics,
    clock: Callable[[], float],
) -> RelayPolicy:
    """The relay's answers at MAIL, RCPT and DATA: the SMTP engine asks them, and so does mail
    that enters without SMTP (`submit.py`)."""
    smtp = settings.smtp
    sender_check, message_check = sender_rules(plan.allowed_senders)
    return RelayPolicy(
        allowed_clients=smtp.allowed_clients,
        check=check,
        sink=sink,
        metrics=metrics,
        users=users,
        auth_required=smtp.auth_required,
        sender_check=sender_check,
        message_check=message_check,
        refusal_log_limit=smtp.refusal_log_limit,
        clock=clock,
    )


def smtp_server(
    settings: Settings,
    plan: StagePlan,
    *,
    policy: RelayPolicy,
    users: UserTable | None,
    metrics: Metrics,
    clock: Callable[[], float],
) -> SmtpServer:
    """The SMTP engine with the relay's policy, not yet listening."""
    smtp = settings.smtp
    return SmtpServer(
        hostname=settings.service.hostname,
        limits=SmtpLimits.from_settings(smtp, plan.size_limit),
        policy=policy,
        metrics=metrics,
        tls_context=tls_context(settings),
        auth_enabled=users is not None,
        auth_allow_plaintext=smtp.auth_allow_plaintext,
        clock=clock,
    )


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """STARTTLS's context from MXRELAY_SMTP_TLS_CERT_FILE and KEY_FILE; None without them."""
    smtp = settings.smtp
    if smtp.tls_cert_file is None or smtp.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(smtp.tls_cert_file, smtp.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(
            f"MXRELAY_SMTP_TLS_CERT_FILE/KEY_FILE cannot be loaded: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    return context


def load_users(settings: Settings) -> UserTable | None:
    """The AUTH users of MXRELAY_SMTP_AUTH_USERS_FILE; None without one (no AUTH)."""
    path = settings.smtp.auth_users_file
    if path is None:
        return None
    try:
        return UserTable.load(path)
    except (OSError, ValueError) as exc:
        raise StartupError(f"MXRELAY_SMTP_AUTH_USERS_FILE: {path} cannot be used: {exc}") from None
