"""The engine's contracts: its limits, the policy hooks it calls, and what a connection needs.

`SessionPolicy` is what the engine asks at each step (policy.py's `RelayPolicy` is the relay's
answer); `SmtpLimits` is every limit it enforces; `ConnectionHost` is the little of the listener a
connection uses (the limits, the policy, the shared budgets, AUTH's rules, admission), so a
connection never holds the server itself. Both the engine and the policy import this module; it imports neither.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mxrelay.config import SmtpSettings
from mxrelay.metrics import Metrics
from mxrelay.model import MailParams, Peer, Reply
from mxrelay.smtp.auth import SmtpAuth
from mxrelay.smtp.memory import DataBudget
from mxrelay.smtp.session import Envelope, Session


@dataclass(frozen=True, slots=True)
class SmtpLimits:
    """Every limit of the SMTP side, filled from settings (Postfix-like defaults there)."""

    max_message_size: int
    data_memory: int
    """Bytes of message data all transactions over DATA_FREE_BYTES may hold at once."""
    connections: int
    connections_per_client: int
    command_timeout: float
    """Idle seconds allowed while a command line is awaited (every byte restarts it)."""
    data_timeout: float
    command_deadline: float
    """Seconds one command line may take in total, from the moment it is awaited."""
    data_deadline: float
    """Seconds the message data may take in total, from 354 to the final dot."""
    recipients: int
    recipient_overshoot: int
    """RCPTs past `recipients` answered 452 before each further one counts as an error."""
    line_length: int
    errors: int
    """Errors without an accepted message before 421 (Postfix smtpd_hard_error_limit)."""
    soft_errors: int
    """Errors past which every reply waits `error_sleep` seconds (smtpd_soft_error_limit)."""
    error_sleep: float
    junk_commands: int
    """NOOP, RSET, VRFY, HELP and HELO/EHLO after the first (since STARTTLS) allowed before each
    counts as an error (smtpd_junk_command_limit)."""
    auth_failures: int
    """Failed AUTH per client address per minute before AUTH is refused unchecked."""

    @classmethod
    def from_settings(cls, smtp: SmtpSettings, max_message_size: int | None = None) -> SmtpLimits:
        return cls(
            max_message_size=max_message_size or smtp.max_message_size,
            data_memory=smtp.data_memory_limit,
            connections=smtp.connection_limit,
            connections_per_client=smtp.client_connection_limit,
            command_timeout=smtp.command_timeout.total_seconds(),
            data_timeout=smtp.data_timeout.total_seconds(),
            command_deadline=smtp.command_deadline.total_seconds(),
            data_deadline=smtp.data_deadline.total_seconds(),
            recipients=smtp.recipient_limit,
            recipient_overshoot=smtp.recipient_overshoot_limit,
            line_length=smtp.line_length_limit,
            errors=smtp.error_limit,
            soft_errors=smtp.soft_error_limit,
            error_sleep=smtp.error_sleep_time.total_seconds(),
            junk_commands=smtp.junk_command_limit,
            auth_failures=smtp.auth_failure_limit,
        )


@dataclass(frozen=True, slots=True)
class RcptOutcome:
    reply: Reply
    mailbox: str = ""


class SessionPolicy(Protocol):
    """The decisions the engine asks for; `smtp/policy.py:RelayPolicy` is the relay's."""

    async def on_connect(self, session: Session) -> Reply | None: ...

    async def on_mail(self, session: Session, envelope: Envelope) -> Reply: ...

    async def on_rcpt(
        self, session: Session, envelope: Envelope, path: str, params: MailParams
    ) -> RcptOutcome: ...

    async def on_data(self, session: Session, envelope: Envelope, message: bytes) -> Reply: ...

    async def on_reset(self, session: Session, envelope: Envelope) -> None: ...

    async def authenticate(self, username: str, password: str) -> bool | None:
        """Whether the credentials are right; None when they cannot be checked now (454)."""
        ...

    def transaction_ended(
        self, session: Session, envelope: Envelope, outcome: Reply | None, size: int
    ) -> None: ...


class ClientConnection(Protocol):
    """A connection as its host counts and stops it."""

    @property
    def peer(self) -> Peer: ...

    def request_shutdown(self) -> None:
        """End the session at its next command outside a transaction (421)."""
        ...

    def abort(self) -> None:
        """End the session now, whatever it is doing."""
        ...


class ConnectionHost(Protocol):
    """What a connection uses of the listener that accepted it."""

    hostname: str
    limits: SmtpLimits
    policy: SessionPolicy
    metrics: Metrics
    tls_context: ssl.SSLContext | None
    clock: Callable[[], float]
    data_budget: DataBudget
    auth: SmtpAuth
    shutting_down: bool

    def admit(self, connection: ClientConnection) -> Reply | None:
        """Count a new connection; a reply when it must be turned away for a limit."""
        ...

    def release(self, connection: ClientConnection) -> None: ...
