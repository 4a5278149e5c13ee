"""SMTP AUTH: the command's rules and the PLAIN/LOGIN exchange.

`SmtpAuth` decides when AUTH is offered (`MXRELAY_SMTP_AUTH_*`), throttles a client that keeps
failing, and answers the command. Credentials are a file of `user:bcrypt-hash` lines, checked off
the event loop by `passwords.UserTable` (its thread pool, its backlog: past it, AUTH gets
454 4.7.0 at once; its dummy hash for unknown users).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable

from mxrelay import log
from mxrelay.metrics import Metrics, ProtocolError
from mxrelay.model import Reply
from mxrelay.rates import FailureBudget, ThrottledLog
from mxrelay.smtp import replies
from mxrelay.smtp.session import Session

logger = logging.getLogger("mxrelay.smtp")

Challenge = Callable[[str], Awaitable[str | None]]
"""Send a 334 prompt (base64), return the client's answer; None when the client cancelled."""

Verify = Callable[[str, str], Awaitable[bool | None]]
"""(user, password) → whether they match; None when they cannot be checked now (454)."""

FAILURE_PERIOD = 60.0
"""Seconds over which MXRELAY_SMTP_AUTH_FAILURE_LIMIT failures are allowed per client."""

THROTTLED_LOG_INTERVAL = 10.0
"""Seconds between two "authentication throttled" lines; the ones between are counted."""


class SmtpAuth:
    """When AUTH is offered, and what the AUTH command answers."""

    def __init__(
        self,
        *,
        enabled: bool,
        allow_plaintext: bool,
        failure_limit: int,
        verify: Verify,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.allow_plaintext = allow_plaintext
        self.verify = verify
        self.metrics = metrics
        self.failures = FailureBudget(failure_limit, FAILURE_PERIOD, clock=clock)
        self.throttled_log = ThrottledLog(
            logger, "authentication throttled", logging.WARNING, THROTTLED_LOG_INTERVAL, clock=clock
        )

    def offered(self, session: Session) -> bool:
        return self.enabled and (session.tls is not None or self.allow_plaintext)

    async def command(
        self, session: Session, text: str, challenge: Challenge, *, in_transaction: bool
    ) -> Reply:
        """AUTH with `text` (mechanism and initial response): run the exchange, check, answer."""
        if not self.enabled:
            return replies.AUTH_NOT_ENABLED
        if not session.helo:
            return replies.NEED_HELO
        if not self.offered(session):
            return replies.AUTH_NEEDS_TLS
        if session.username is not None:
            return replies.ALREADY_AUTHENTICATED
        if in_transaction:
            return replies.TRANSACTION_IN_PROGRESS
        client = session.peer
        if self._throttled(session):  # before the exchange: a throttled client gets no 334
            return replies.AUTH_THROTTLED
        mechanism, _, initial = text.partition(" ")
        try:
            credentials = await read_credentials(mechanism, initial, challenge)
        except ValueError:
            self.metrics.smtp_protocol_errors.labels(kind=ProtocolError.AUTH).inc()
            return replies.AUTH_BAD_BASE64
        if not isinstance(credentials, tuple):
            return credentials
        if self._throttled(session):  # again: other connections' checks began meanwhile
            return replies.AUTH_THROTTLED
        username, password = credentials
        with self.failures.checking(client.host):  # concurrent connections' checks count too
            verdict = await self.verify(username, password)
        if verdict is None:
            return replies.AUTH_BUSY
        if verdict:
            session.username = username
            log.event(logger, "authenticated", client=str(client), user=username)
            return replies.AUTH_SUCCEEDED
        self.failures.failed(client.host)
        self.metrics.smtp_protocol_errors.labels(kind=ProtocolError.AUTH).inc()
        log.event(
            logger, "authentication failed", logging.WARNING, client=str(client), user=username
        )
        return replies.AUTH_FAILED

    def _throttled(self, session: Session) -> bool:
        """Whether this client's failure budget, less its checks under way, is spent (then the
        attempt counts as an error and is logged, throttled)."""
        if self.failures.allows(session.peer.host):
            return False
        session.errors += 1
        self.metrics.smtp_protocol_errors.labels(kind=ProtocolError.AUTH).inc()
        self.throttled_log.event(client=str(session.peer))
        return True


async def read_credentials(
    mechanism: str, initial: str, challenge: Challenge
) -> tuple[str, str] | Reply:
    """Run the PLAIN (RFC 4616) or LOGIN exchange: (user, password), or the reply that ends it.

    Raises ValueError when an answer is not valid base64 or UTF-8.
    """
    try:
        mechanism = mechanism.upper()
        if mechanism == "PLAIN":
            response = initial or await challenge("")
            if response is None:
                return replies.AUTH_CANCELLED
            _authzid, username, password = _decode(response).split("\0")
            return username, password
        if mechanism == "LOGIN":
            user_response = initial or await challenge("VXNlcm5hbWU6")  # "Username:"
            if user_response is None:
                return replies.AUTH_CANCELLED
            password_response = await challenge("UGFzc3dvcmQ6")  # "Password:"
            if password_response is None:
                return replies.AUTH_CANCELLED
            return _decode(user_response), _decode(password_response)
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    return replies.AUTH_BAD_MECHANISM


def _decode(answer: str) -> str:
    return base64.b64decode(answer, validate=True).decode("utf-8")
