"""Passthrough mode: relay each transaction to the upstream while the client waits.

Like Postfix's before-queue proxy (smtpd_proxy_filter), each step is forwarded as it happens: the
upstream sees MAIL at the first accepted recipient, each RCPT as the client sends it, and the data
at the end, so the client never gets a 250 the upstream did not give. An upstream 4xx stays 4xx, a
5xx stays 5xx, and an unreachable or silent upstream is `451 4.4.1`. Nothing is stored.

Upstream connections come from a small pool and are reused between transactions (Postfix's
connection cache), which halves the upstream round trips for applications that send one message
per connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import aiosmtplib

from mxrelay import log
from mxrelay.config import UpstreamSettings, UpstreamUrl
from mxrelay.metrics import Metrics
from mxrelay.mime.pipeline import Variant
from mxrelay.model import MailParams, RefusedRecipient, Reply, SessionInfo, Transaction
from mxrelay.trace import received_header

logger = logging.getLogger("mxrelay.passthrough")

UPSTREAM_UNAVAILABLE = Reply(451, "4.1", "Error: upstream server unavailable, try again later")
UPSTREAM_NO_SMTPUTF8 = Reply(553, "6.7", "Upstream server does not support SMTPUTF8")
_ENHANCED = re.compile(r"^([245])\.(\d{1,3}\.\d{1,3})\s+")

VariantPlan = Callable[[Transaction], Awaitable[Sequence[Variant]]]
"""Splits a transaction into variants (the ICS transform); without one, the message goes
unchanged to every recipient."""


def reply_from_upstream(code: int, message: str) -> Reply:
    """The upstream's reply as ours: same code, same enhanced status (class fixed), same text."""
    text = " ".join(message.split("\n")).strip() or "(no text)"
    match = _ENHANCED.match(text)
    if match:
        status, text = match.group(2), text[match.end() :] or "(no text)"
    else:
        status = "0.0"
    if not 200 <= code <= 599:
        return UPSTREAM_UNAVAILABLE
    return Reply(code, status, text.replace("\r", " "))


@dataclass(slots=True)
class _Pooled:
    client: aiosmtplib.SMTP
    idle_since: float


class UpstreamPool:
    """Open, reuse and close connections to one upstream SMTP server."""

    def __init__(
        self,
        settings: UpstreamSettings,
        *,
        local_hostname: str,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        assert settings.url is not None
        self.url: UpstreamUrl = settings.url
        self.settings = settings
        self.local_hostname = local_hostname
        self.metrics = metrics
        self.clock = clock
        self.tls_context = tls_context or ssl.create_default_context()
        self._idle: list[_Pooled] = []
        self._closing: set[asyncio.Task[None]] = set()

    async def acquire(self) -> aiosmtplib.SMTP:
        now = self.clock()
        idle_limit = self.settings.idle_timeout.total_seconds()
        while self._idle:
            pooled = self._idle.pop()
            if now - pooled.idle_since <= idle_limit and pooled.client.is_connected:
                self.metrics.upstream_connections.labels(result="reused").inc()
                return pooled.client
            self._discard(pooled.client)
        return await self._connect()

    async def _connect(self) -> aiosmtplib.SMTP:
        url = self.url
        password = self.settings.password.get_secret_value() if self.settings.password else None
        client = aiosmtplib.SMTP(
            hostname=url.host,
            port=url.port,
            local_hostname=self.local_hostname,
            timeout=self.settings.command_timeout.total_seconds(),
            use_tls=url.scheme == "smtps",
            start_tls={"opportunistic": None, "required": True, "off": False}[url.starttls],
            tls_context=self.tls_context,
            username=self.settings.username,
            password=password,
        )
        started = self.clock()
        try:
            await client.connect(timeout=self.settings.connect_timeout.total_seconds())
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self.metrics.upstream_connections.labels(result="failed").inc()
            log.event(
                logger,
                "upstream connection failed",
                logging.WARNING,
                upstream=f"{url.host}:{url.port}",
                error=_describe(exc),
            )
            raise UpstreamError(_describe(exc)) from None
        self.metrics.upstream_latency.labels(command="connect").observe(self.clock() - started)
        self.metrics.upstream_connections.labels(result="opened").inc()
        return client

    def release(self, client: aiosmtplib.SMTP, *, reusable: bool) -> None:
        if reusable and client.is_connected and len(self._idle) < self.settings.idle_connections:
            self._idle.append(_Pooled(client, self.clock()))
        else:
            self._discard(client)

    def _discard(self, client: aiosmtplib.SMTP) -> None:
        if not client.is_connected:
            return
        task = asyncio.get_running_loop().create_task(_quit(client))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        while self._idle:
            self._discard(self._idle.pop().client)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit(timeout=2)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()


class UpstreamError(Exception):
    pass


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]


class PassthroughSink:
    """The `Sink` for passthrough mode."""

    def __init__(
        self,
        pool: UpstreamPool,
        *,
        hostname: str,
        metrics: Metrics,
        plan: VariantPlan | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.hostname = hostname
        self.metrics = metrics
        self.plan = plan
        self.clock = clock

    def begin(
        self, session: SessionInfo, mail_from: str, params: MailParams
    ) -> PassthroughTransaction:
        return PassthroughTransaction(self, mail_from, params)

    async def record_refusal(
        self, session: SessionInfo, mail_from: str, refused: RefusedRecipient
    ) -> None:
        return None  # passthrough keeps no record beyond the log line the policy writes


class PassthroughTransaction:
    """One client transaction mirrored on one upstream connection."""

    def __init__(self, sink: PassthroughSink, mail_from: str, params: MailParams) -> None:
        self.sink = sink
        self.mail_from = mail_from
        self.params = params
        self.client: aiosmtplib.SMTP | None = None
        self.mail_reply: Reply | None = None
        self.recipients: list[str] = []
        self.failed = False
        self.queue_id = ""
        self.transforms: list[str] = []

    async def _command(self, name: str, verb: bytes, *arguments: bytes) -> Reply:
        assert self.client is not None
        started = self.sink.clock()
        try:
            response = await self.client.execute_command(verb, *arguments)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._broken(exc)
            return UPSTREAM_UNAVAILABLE
        self.sink.metrics.upstream_latency.labels(command=name).observe(self.sink.clock() - started)
        return reply_from_upstream(response.code, response.message)

    def _broken(self, exc: BaseException) -> None:
        log.event(logger, "upstream failed", logging.WARNING, error=_describe(exc))
        self.failed = True
        if self.client is not None:
            self.client.close()
            self.sink.pool.release(self.client, reusable=False)
            self.client = None

    def _mail_argument(self, client: aiosmtplib.SMTP) -> bytes | Reply:
        options: list[str] = []
        for keyword, value in self.params:
            if keyword == "SMTPUTF8":
                if not client.supports_extension("smtputf8"):
                    return UPSTREAM_NO_SMTPUTF8
                options.append("SMTPUTF8")
            elif keyword == "BODY" and client.supports_extension("8bitmime"):
                options.append(f"BODY={value}")
            elif keyword == "SIZE" and client.supports_extension("size"):
                options.append(f"SIZE={value}")
        argument = f"FROM:<{self.mail_from}>" + "".join(f" {o}" for o in options)
        return argument.encode("utf-8")

    async def _open(self) -> Reply:
        """Connect (or reuse a connection) and send MAIL; the reply answers every later RCPT."""
        try:
            self.client = await self.sink.pool.acquire()
        except UpstreamError:
            self.failed = True
            return UPSTREAM_UNAVAILABLE
        argument = self._mail_argument(self.client)
        if isinstance(argument, Reply):
            return argument
        reply = await self._command("mail", b"MAIL", argument)
        if reply.code == 421:
            self._broken(ConnectionError("upstream closed the connection"))
        return reply

    async def add_recipient(self, mailbox: str, params: MailParams) -> Reply:
        if self.failed:
            return UPSTREAM_UNAVAILABLE
        if self.mail_reply is None:
            self.mail_reply = await self._open()
        if not self.mail_reply.is_positive:
            return self.mail_reply
        reply = await self._command("rcpt", b"RCPT", f"TO:<{mailbox}>".encode())
        if reply.is_positive:
            self.recipients.append(mailbox)
        return reply

    async def finish(self, transaction: Transaction) -> Reply:
        metrics = self.sink.metrics
        if self.client is None or self.failed:
            metrics.passthrough_transactions.labels(result="unavailable").inc()
            return UPSTREAM_UNAVAILABLE
        queue_id = self.queue_id = secrets.token_hex(6).upper()
        variants = await self._variants(transaction)
        replies: list[Reply] = []
        for index, (recipients, data) in enumerate(variants):
            if index > 0 or len(variants) > 1:
                reply = await self._restart(recipients)
                if not reply.is_positive:
                    replies.append(reply)
                    break
            header = received_header(
                dataclasses.replace(transaction, recipients=recipients),
                hostname=self.sink.hostname,
                queue_id=queue_id,
            )
            replies.append(await self._data(header + data))
            if not replies[-1].is_positive:
                break
        final = _combine(replies)
        result = (
            "accepted"
            if final.is_positive
            else "unavailable"
            if final is UPSTREAM_UNAVAILABLE
            else "tempfail"
            if final.is_transient
            else "permfail"
        )
        metrics.passthrough_transactions.labels(result=result).inc()
        if self.client is not None:
            self.sink.pool.release(self.client, reusable=not self.failed)
            self.client = None
        return final

    async def _variants(self, transaction: Transaction) -> list[tuple[tuple[str, ...], bytes]]:
        accepted = tuple(self.recipients)
        if self.sink.plan is None:
            return [(accepted, transaction.data)]
        variants = await self.sink.plan(dataclasses.replace(transaction, recipients=accepted))
        self.transforms = [v.report.describe() for v in variants if v.in_scope]
        return [(variant.recipients, variant.data) for variant in variants]

    def log_fields(self) -> Mapping[str, object]:
        fields: dict[str, object] = {"queue_id": self.queue_id} if self.queue_id else {}
        if self.transforms:
            fields["transforms"] = self.transforms
        return fields

    async def _restart(self, recipients: tuple[str, ...]) -> Reply:
        """Start a fresh upstream transaction for one variant (after the first one's RCPTs)."""
        reply = await self._command("rset", b"RSET")
        if not reply.is_positive:
            return reply
        assert self.client is not None
        argument = self._mail_argument(self.client)
        if isinstance(argument, Reply):
            return argument
        reply = await self._command("mail", b"MAIL", argument)
        if not reply.is_positive:
            return reply
        for mailbox in recipients:
            reply = await self._command("rcpt", b"RCPT", f"TO:<{mailbox}>".encode())
            if not reply.is_positive:
                return reply.with_code(451) if reply.is_permanent else reply
        return reply

    async def _data(self, message: bytes) -> Reply:
        if self.client is None:
            return UPSTREAM_UNAVAILABLE
        started = self.sink.clock()
        try:
            response = await self.client.data(message)
        except aiosmtplib.SMTPDataError as exc:
            return reply_from_upstream(exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._broken(exc)
            return UPSTREAM_UNAVAILABLE
        self.sink.metrics.upstream_latency.labels(command="data").observe(
            self.sink.clock() - started
        )
        return reply_from_upstream(response.code, response.message)

    async def abort(self) -> None:
        if self.client is None:
            return
        client, self.client = self.client, None
        reusable = False
        if not self.failed:
            try:
                response = await client.execute_command(b"RSET", timeout=5)
                reusable = response.code == 250
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                reusable = False
        self.sink.pool.release(client, reusable=reusable)


def _combine(replies: list[Reply]) -> Reply:
    """One reply for several upstream transactions: 250 only if every variant was accepted.

    When a later variant fails after an earlier one was accepted, the failure is made temporary:
    a retry by the client duplicates the accepted variant, a permanent refusal would lose the rest.
    """
    failures = [reply for reply in replies if not reply.is_positive]
    if not failures:
        return replies[-1]
    failure = failures[0]
    if len(replies) > 1 and any(reply.is_positive for reply in replies) and failure.is_permanent:
        return failure.with_code(451)
    return failure
