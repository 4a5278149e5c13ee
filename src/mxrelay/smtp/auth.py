"""SMTP AUTH: the command's rules, the PLAIN/LOGIN exchange, and the users file it checks against.

`SmtpAuth` decides when AUTH is offered (`MXRELAY_SMTP_AUTH_*`), throttles a client that keeps
failing, and answers the command. Credentials are a file of `user:bcrypt-hash` lines, checked off
the event loop. bcrypt is slow on purpose (milliseconds to a second per check, by the hash's cost), so checks run
on a small thread pool of their own: a burst of guesses queues there, not in the executor that
builds messages and fetches Graph tokens. An unknown user is checked against a dummy hash of the
users' own cost, so timing does not reveal which users exist. As with `htpasswd -B` (and every
bcrypt implementation that does not refuse them), only a password's first 72 bytes count.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bcrypt

from mxrelay import log
from mxrelay.metrics import Metrics, ProtocolError
from mxrelay.model import Reply
from mxrelay.smtp import replies
from mxrelay.smtp.rates import FailureBudget, ThrottledLog
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

PASSWORD_BYTES = 72
"""bcrypt's input limit: longer passwords are cut here, as htpasswd -B does (bcrypt 5 raises)."""

CHECK_THREADS = 2
"""Threads for bcrypt checks: two cores' worth; a wider pool only queues inside the CPU."""

CHECK_BACKLOG = 32
"""Checks waiting for a thread at most; past it, AUTH gets 454 4.7.0 at once (a few seconds of
work at common costs), so a burst of guesses cannot make a legitimate login wait minutes."""

_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_LAST_CHAR = ".Oeu"  # the 22nd salt and 31st hash characters carry 2 and 4 unused bits: zero


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
        if not self.failures.allows(client.host):
            session.errors += 1
            self.metrics.smtp_protocol_errors.labels(kind=ProtocolError.AUTH).inc()
            self.throttled_log.event(client=str(client))
            return replies.AUTH_THROTTLED
        mechanism, _, initial = text.partition(" ")
        try:
            credentials = await read_credentials(mechanism, initial, challenge)
        except ValueError:
            self.metrics.smtp_protocol_errors.labels(kind=ProtocolError.AUTH).inc()
            return replies.AUTH_BAD_BASE64
        if not isinstance(credentials, tuple):
            return credentials
        username, password = credentials
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


class UserTableError(ValueError):
    pass


class UserTable:
    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = users
        self._dummy = dummy_hash(users.values())
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0

    @classmethod
    def load(cls, path: Path) -> UserTable:
        users: dict[str, bytes] = {}
        text = path.read_text(encoding="utf-8")
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user or _cost(hashed.encode("ascii", "replace")) is None:
                raise UserTableError(f"line {number} is not user:bcrypt-hash")
            users[user] = hashed.encode("ascii")
        return cls(users)

    def __len__(self) -> int:
        return len(self._users)

    @property
    def dummy(self) -> bytes:
        """The hash an unknown user is checked against (same prefix and cost as the users')."""
        return self._dummy

    async def verify(self, username: str, password: str) -> bool | None:
        """True or False; None when CHECK_BACKLOG checks are already waiting (try later)."""
        if self._pending >= CHECK_BACKLOG:
            return None
        hashed = self._users.get(username)
        candidate = password.encode("utf-8")[:PASSWORD_BYTES]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="mxrelay-auth")
        self._pending += 1
        try:
            matched = await asyncio.get_running_loop().run_in_executor(
                self._executor, bcrypt.checkpw, candidate, hashed or self._dummy
            )
        finally:
            self._pending -= 1
        return hashed is not None and matched

    def close(self) -> None:
        """Stop the check threads (a later check starts new ones)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _cost(hashed: bytes) -> tuple[bytes, int] | None:
    """(`$2b$`-style prefix, cost) of a bcrypt hash, or None if it is not one."""
    if len(hashed) != 60 or hashed[:1] != b"$" or hashed[3:4] != b"$" or hashed[6:7] != b"$":
        return None
    prefix, cost = hashed[:4], hashed[4:6]
    if prefix not in (b"$2a$", b"$2b$", b"$2y$") or not cost.isdigit():
        return None
    return prefix, int(cost)


def dummy_hash(hashes: Iterable[bytes], default_cost: int = 12) -> bytes:
    """A well-formed bcrypt hash that matches no password, with the prefix and cost most users
    have (the cost is what a check's time depends on). Made from random characters: computing a
    real one would cost a full bcrypt at start-up, which is a second or more at high costs."""
    kinds = collections.Counter(kind for kind in map(_cost, hashes) if kind is not None)
    prefix, cost = max(kinds, key=lambda k: (kinds[k], k[1])) if kinds else (b"$2b$", default_cost)

    def chars(count: int) -> str:
        text = "".join(secrets.choice(_BCRYPT_ALPHABET) for _ in range(count - 1))
        return text + secrets.choice(_LAST_CHAR)

    return prefix + b"%02d$" % cost + (chars(22) + chars(31)).encode("ascii")


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
