"""What the relay decides during an SMTP session, separate from how the protocol is spoken.

`RelayPolicy` implements the engine's `SessionPolicy` hooks: the client allow-list at connect,
AUTH requirements at MAIL, the recipient check at RCPT, the sink at DATA, and the transaction log
line. The recipient check and the message sink arrive as a callable and a protocol typed in
`sink.py`, so the SMTP package never imports DNS, MIME or storage code: `app.py` wires the real
ones in.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from mxrelay import log
from mxrelay.config import IPNetwork
from mxrelay.metrics import Metrics, ReplyClass
from mxrelay.model import MailParams, Reason, RefusedRecipient, Reply, Transaction, utc_now
from mxrelay.passwords import UserTable
from mxrelay.rates import ThrottledLog
from mxrelay.smtp import replies
from mxrelay.smtp.hooks import RcptOutcome
from mxrelay.smtp.session import Envelope, Session
from mxrelay.smtp.sink import (
    DescribedTransaction,
    MessageCheck,
    RecipientCheck,
    SenderCheck,
    Sink,
)

logger = logging.getLogger("mxrelay.smtp")

DENIED_LOG_INTERVAL = 10.0
"""Seconds between two "client denied" lines; denials in between are counted into the next."""


class RelayPolicy:
    """The relay's answers to the engine's questions."""

    def __init__(
        self,
        *,
        allowed_clients: tuple[IPNetwork, ...],
        check: RecipientCheck,
        sink: Sink,
        metrics: Metrics,
        users: UserTable | None = None,
        auth_required: bool = False,
        sender_check: SenderCheck | None = None,
        message_check: MessageCheck | None = None,
        refusal_log_limit: int = 100,
        now: Callable[[], datetime] = utc_now,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed_clients = allowed_clients
        self.check = check
        self.sink = sink
        self.metrics = metrics
        self.users = users
        self.auth_required = auth_required
        self.sender_check = sender_check
        self.message_check = message_check
        self.refusal_log_limit = refusal_log_limit
        self.now = now
        self.clock = clock
        self._denied_log = ThrottledLog(
            logger, "client denied", logging.WARNING, DENIED_LOG_INTERVAL, clock=clock
        )

    async def on_connect(self, session: Session) -> Reply | None:
        try:
            address = ipaddress.ip_address(session.peer.host.split("%", 1)[0])
        except ValueError:
            return replies.access_denied(session.peer.host)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed_clients):
            return None
        self._denied_log.event(client=str(session.peer))
        return replies.access_denied(session.peer.host)

    async def on_mail(self, session: Session, envelope: Envelope) -> Reply:
        if self.auth_required and session.username is None:
            return replies.AUTH_REQUIRED
        if self.sender_check is not None:
            refusal = self.sender_check(envelope.mail_from, session.info())
            if refusal is not None:
                return refusal
        return replies.SENDER_OK

    async def on_rcpt(
        self, session: Session, envelope: Envelope, path: str, params: MailParams
    ) -> RcptOutcome:
        verdict = await self.check(path, envelope.smtputf8)
        reply, reason = verdict.reply, verdict.reason
        if verdict.accepted:
            if envelope.sink is None:
                envelope.sink = self.sink.begin(session.info(), envelope.mail_from, envelope.params)
            reply = await envelope.sink.add_recipient(verdict.mailbox, params)
            if reply.is_positive:
                self.metrics.smtp_recipients.labels(
                    verdict=ReplyClass.ACCEPTED, reason=reason
                ).inc()
                return RcptOutcome(reply, verdict.mailbox)
            reason = Reason.UPSTREAM
        self.metrics.smtp_recipients.labels(verdict=ReplyClass.of(reply), reason=reason).inc()
        if len(envelope.refused) >= self.refusal_log_limit:
            envelope.refused_more += 1  # one transaction's record and log lines stay bounded
            return RcptOutcome(reply)
        refused = RefusedRecipient(verdict.mailbox or path.strip("<>"), reply, reason)
        envelope.refused.append(refused)
        log.event(
            logger,
            "recipient refused",
            client=str(session.peer),
            sender=envelope.mail_from,
            recipient=refused.address,
            reply=str(reply),
            reason=reason.value,
            stage=verdict.stage,
        )
        await self.sink.record_refusal(session.info(), envelope.mail_from, refused)
        return RcptOutcome(reply)

    async def on_data(self, session: Session, envelope: Envelope, message: bytes) -> Reply:
        if envelope.sink is None:  # cannot happen: DATA needs an accepted recipient
            return replies.NO_VALID_RECIPIENTS
        if self.message_check is not None:
            refusal = self.message_check(envelope.mail_from, message)
            if refusal is not None:
                return refusal
        transaction = Transaction(
            session=session.info(),
            mail_from=envelope.mail_from,
            recipients=tuple(envelope.accepted),
            data=message,
            received_at=self.now(),
            mail_params=envelope.params,
            refused=tuple(envelope.refused),
            smtputf8=envelope.smtputf8,
            body_8bitmime=envelope.body_8bitmime,
        )
        return await envelope.sink.finish(transaction)

    async def on_reset(self, session: Session, envelope: Envelope) -> None:
        if envelope.sink is not None:
            await envelope.sink.abort()

    async def authenticate(self, username: str, password: str) -> bool | None:
        return self.users is not None and await self.users.verify(username, password)

    def transaction_ended(
        self, session: Session, envelope: Envelope, outcome: Reply | None, size: int
    ) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return  # the fields below cost more than the rest of the transaction's bookkeeping
        log.event(
            logger,
            "transaction",
            client=str(session.peer),
            helo=session.helo,
            tls=session.tls.version if session.tls else None,
            user=session.username,
            sender=envelope.mail_from,
            accepted=list(envelope.accepted),
            refused=[
                {"recipient": r.address, "reply": str(r.reply), "reason": r.reason.value}
                for r in envelope.refused
            ],
            **({"refused_more": envelope.refused_more} if envelope.refused_more else {}),
            size=size,
            outcome=str(outcome) if outcome is not None else "aborted",
            duration_ms=round((self.clock() - envelope.started) * 1000, 1),
            **_sink_fields(envelope),
        )


def _sink_fields(envelope: Envelope) -> Mapping[str, object]:
    sink = envelope.sink
    return sink.log_fields() if isinstance(sink, DescribedTransaction) else {}
