"""Passthrough mode: relay each transaction to the upstream while the client waits.

Like Postfix's before-queue proxy (smtpd_proxy_filter), each step is forwarded as it happens: the
upstream sees MAIL at the first accepted recipient, each RCPT as the client sends it, and the data
at the end, so the client never gets a 250 the upstream did not give. An upstream 4xx stays 4xx, a
5xx stays 5xx, and an unreachable or silent upstream is `451 4.4.1`. Nothing is stored.

Upstream connections come from the shared pool (`mxrelay.upstream`) and are reused between
transactions (Postfix's connection cache), which halves the upstream round trips for applications
that send one message per connection.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import aiosmtplib

from mxrelay import log
from mxrelay.metrics import Metrics, PassthroughResult, UpstreamCommand
from mxrelay.mime.pipeline import Variant
from mxrelay.model import MailParams, RefusedRecipient, Reply, SessionInfo, Transaction
from mxrelay.received import received_header
from mxrelay.smtp import replies
from mxrelay.upstream.errors import UpstreamError, map_upstream_errors
from mxrelay.upstream.pool import UpstreamPool
from mxrelay.upstream.replies import UpstreamReply, parse_reply, send_data

logger = logging.getLogger("mxrelay.passthrough")


VariantPlan = Callable[[Transaction], Awaitable[Sequence[Variant]]]
"""Splits a transaction into variants (the ICS transform); without one, the message goes
unchanged to every recipient."""


def reply_from_upstream(reply: UpstreamReply) -> Reply:
    """The upstream's reply as ours: same code, same enhanced status, same text."""
    if not 200 <= reply.code <= 599:
        return replies.UPSTREAM_UNAVAILABLE
    return Reply(reply.code, reply.enhanced[2:] or "0.0", reply.text or "(no text)")


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

    async def _command(self, name: UpstreamCommand, verb: bytes, *arguments: bytes) -> Reply:
        assert self.client is not None
        started = self.sink.clock()
        try:
            with map_upstream_errors():
                response = await self.client.execute_command(verb, *arguments)
        except UpstreamError as exc:
            self._broken(str(exc))
            return replies.UPSTREAM_UNAVAILABLE
        self.sink.metrics.upstream_latency.labels(command=name).observe(self.sink.clock() - started)
        return reply_from_upstream(parse_reply(response.code, response.message))

    def _broken(self, error: str) -> None:
        log.event(logger, "upstream failed", logging.WARNING, error=error)
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
                    return replies.UPSTREAM_NO_SMTPUTF8
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
            return replies.UPSTREAM_UNAVAILABLE
        argument = self._mail_argument(self.client)
        if isinstance(argument, Reply):
            return argument
        reply = await self._command(UpstreamCommand.MAIL, b"MAIL", argument)
        if reply.code == 421:
            self._broken("ConnectionError: upstream closed the connection")
        return reply

    async def add_recipient(self, mailbox: str, params: MailParams) -> Reply:
        if self.failed:
            return replies.UPSTREAM_UNAVAILABLE
        if self.mail_reply is None:
            self.mail_reply = await self._open()
        if not self.mail_reply.is_positive:
            return self.mail_reply
        reply = await self._command(UpstreamCommand.RCPT, b"RCPT", f"TO:<{mailbox}>".encode())
        if reply.is_positive:
            self.recipients.append(mailbox)
        return reply

    async def finish(self, transaction: Transaction) -> Reply:
        metrics = self.sink.metrics
        if self.client is None or self.failed:
            metrics.passthrough_transactions.labels(result=PassthroughResult.UNAVAILABLE).inc()
            return replies.UPSTREAM_UNAVAILABLE
        queue_id = self.queue_id = secrets.token_hex(6).upper()
        variants = await self._variants(transaction)
        answers: list[Reply] = []
        for index, (recipients, data) in enumerate(variants):
            if index > 0 or len(variants) > 1:
                reply = await self._restart(recipients)
                if not reply.is_positive:
                    answers.append(reply)
                    break
            header = received_header(
                dataclasses.replace(transaction, recipients=recipients),
                hostname=self.sink.hostname,
                queue_id=queue_id,
            )
            answers.append(await self._data(header + data))
            if not answers[-1].is_positive:
                break
        final = _combine(answers)
        result = (
            PassthroughResult.ACCEPTED
            if final.is_positive
            else PassthroughResult.UNAVAILABLE
            if final is replies.UPSTREAM_UNAVAILABLE
            else PassthroughResult.TEMPFAIL
            if final.is_transient
            else PassthroughResult.PERMFAIL
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
        reply = await self._command(UpstreamCommand.RSET, b"RSET")
        if not reply.is_positive:
            return reply
        assert self.client is not None
        argument = self._mail_argument(self.client)
        if isinstance(argument, Reply):
            return argument
        reply = await self._command(UpstreamCommand.MAIL, b"MAIL", argument)
        if not reply.is_positive:
            return reply
        for mailbox in recipients:
            reply = await self._command(UpstreamCommand.RCPT, b"RCPT", f"TO:<{mailbox}>".encode())
            if not reply.is_positive:
                return reply.with_code(451) if reply.is_permanent else reply
        return reply

    async def _data(self, message: bytes) -> Reply:
        if self.client is None:
            return replies.UPSTREAM_UNAVAILABLE
        started = self.sink.clock()
        try:
            with map_upstream_errors():
                reply = await send_data(self.client, message)
        except UpstreamError as exc:
            self._broken(str(exc))
            return replies.UPSTREAM_UNAVAILABLE
        self.sink.metrics.upstream_latency.labels(command=UpstreamCommand.DATA).observe(
            self.sink.clock() - started
        )
        return reply_from_upstream(reply)

    async def abort(self) -> None:
        if self.client is None:
            return
        client, self.client = self.client, None
        reusable = False
        if not self.failed:
            try:
                with map_upstream_errors():
                    response = await client.execute_command(b"RSET", timeout=5)
                reusable = response.code == 250
            except UpstreamError:
                reusable = False
        self.sink.pool.release(client, reusable=reusable)


def _combine(answers: list[Reply]) -> Reply:
    """One reply for several upstream transactions: 250 only if every variant was accepted.

    When a later variant fails after an earlier one was accepted, the failure is made temporary:
    a retry by the client duplicates the accepted variant, a permanent refusal would lose the rest.
    """
    failures = [reply for reply in answers if not reply.is_positive]
    if not failures:
        return answers[-1]
    failure = failures[0]
    if len(answers) > 1 and any(reply.is_positive for reply in answers) and failure.is_permanent:
        return failure.with_code(451)
    return failure
