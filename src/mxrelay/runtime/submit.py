"""Mail that enters without SMTP, put through the same pipeline as SMTP mail.

`PolicySubmission` is the `Submit` the web API is handed (`submission.py`): it plays one SMTP
transaction against the relay policy the SMTP listener uses (`smtp/policy.py`, built once by
`listener.relay_policy`): MAIL (AUTH requirement, Graph's sender rules), each RCPT (the recipient
check, the sink's answer, the refusal log and its metrics), DATA (the message check, then the sink:
the store and queue with the transforms planned, or passthrough's upstream), the transaction log
line. Nothing is checked here that the policy does not check for SMTP, and nothing the policy
checks is skipped, so an address the SMTP side refuses is refused here with the same reply.

What the SMTP engine itself enforces before the policy sees a command is enforced here too: the
message size the listener advertises and the recipient limit. A submission is whole: if any
recipient is refused, the transaction is reset and nothing is sent, and the caller is told every
refusal (an API client cannot be left to guess which copies went out).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mxrelay.metrics import Metrics, ReplyClass
from mxrelay.model import MailParams, Reason, RefusedRecipient, Reply
from mxrelay.smtp import replies
from mxrelay.smtp.hooks import SmtpLimits
from mxrelay.smtp.policy import RelayPolicy
from mxrelay.smtp.session import Envelope, Session
from mxrelay.smtp.sink import DescribedTransaction
from mxrelay.submission import SubmitResult, Submitted

HELO = "http-api"
"""The client name recorded for submissions (the `Received:` field's `from`)."""


class PolicySubmission:
    """Submissions through the relay policy; call it with a `Submitted`."""

    def __init__(
        self,
        policy: RelayPolicy,
        limits: SmtpLimits,
        *,
        metrics: Metrics,
        stores: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.limits = limits
        self.metrics = metrics
        self.stores = stores
        """Whether the sink keeps the message (the queued modes) or relays it (passthrough)."""
        self.clock = clock

    async def __call__(self, submitted: Submitted) -> SubmitResult:
        policy = self.policy
        session = Session(peer=submitted.peer, helo=HELO, esmtp=True, username=submitted.username)
        params: MailParams = (("SMTPUTF8", None),) if submitted.smtputf8 else ()
        envelope = Envelope(
            submitted.mail_from,
            params,
            started=self.clock(),
            smtputf8=submitted.smtputf8,
            body_8bitmime=True,
        )
        recipients = tuple(dict.fromkeys(submitted.recipients))  # each once, in order
        early = self._limits(submitted, recipients)
        if early is None:
            early = await policy.on_mail(session, envelope)
            early = None if early.is_positive else early
        if early is not None:
            self._count(early)
            policy.transaction_ended(session, envelope, early, 0)
            return SubmitResult(early)
        refused: list[RefusedRecipient] = []
        for address in recipients:
            outcome = await policy.on_rcpt(session, envelope, f"<{address}>", ())
            if outcome.reply.is_positive:
                envelope.accepted.append(outcome.mailbox)
            else:
                refused.append(RefusedRecipient(address, outcome.reply, _reason(envelope, address)))
        if refused:
            await policy.on_reset(session, envelope)
            self._count(refused[0].reply)
            policy.transaction_ended(session, envelope, None, 0)
            return SubmitResult(refused[0].reply, tuple(refused))
        reply = await policy.on_data(session, envelope, submitted.data)
        self._count(reply, len(submitted.data))
        if not reply.is_positive:
            await policy.on_reset(session, envelope)
        policy.transaction_ended(session, envelope, reply, len(submitted.data))
        queue_id = _queue_id(envelope)
        if not reply.is_positive or queue_id is None:
            return SubmitResult(reply)
        return SubmitResult(reply, message_id=queue_id, stored=self.stores)

    def _limits(self, submitted: Submitted, recipients: tuple[str, ...]) -> Reply | None:
        """What the SMTP engine refuses before its policy is asked: too large, too many."""
        limit = self.limits.max_message_size
        if limit and len(submitted.data) > limit:
            return replies.SIZE_EXCEEDS_LIMIT
        if not recipients:
            return replies.NO_VALID_RECIPIENTS
        if len(recipients) > self.limits.recipients:
            return replies.TOO_MANY_RECIPIENTS
        return None

    def _count(self, reply: Reply, size: int = 0) -> None:
        """As the SMTP engine counts a transaction's end (what /api/v1/info's `SMTPAccepted`
        and `SMTPRejected` read, as Mailpit counts its send API there too)."""
        self.metrics.smtp_messages.labels(outcome=ReplyClass.of(reply)).inc()
        if reply.is_positive and size:
            self.metrics.smtp_message_bytes.inc(size)
            self.metrics.smtp_message_size.observe(size)


def _queue_id(envelope: Envelope) -> str | None:
    """The id the sink gave the message (the store's message id, passthrough's queue id)."""
    sink: object = envelope.sink
    if not isinstance(sink, DescribedTransaction):
        return None
    found = sink.log_fields().get("queue_id")
    return str(found) if found else None


def _reason(envelope: Envelope, address: str) -> Reason:
    """The reason the policy recorded for a refusal (UPSTREAM when it did not record one)."""
    for refusal in reversed(envelope.refused):
        if refusal.address.lower() == address.lower():
            return refusal.reason
    return Reason.UPSTREAM
