"""Mail from the HTTP API goes through the relay policy SMTP mail goes through: the same sender
rules, recipient checks, refusal records and sink, and the engine's own limits; a submission with
a refused recipient sends nothing."""

from __future__ import annotations

from typing import Any

from mxrelay.metrics import Metrics, ReplyClass
from mxrelay.model import Peer, Reason, Reply, SessionInfo
from mxrelay.runtime.submit import HELO, PolicySubmission
from mxrelay.smtp import replies
from mxrelay.smtp.hooks import SmtpLimits
from mxrelay.smtp.policy import RelayPolicy
from mxrelay.submission import Submitted
from tests.support.smtp_relay import QUEUED, RecordingSink, ScriptedCheck, smtp_settings

NXDOMAIN = Reply(550, "1.2", "<x@nope.example>: Recipient address rejected: Domain not found")
MESSAGE = b"From: app@example.org\r\nSubject: s\r\n\r\nbody\r\n"


def submission(
    *, limits: dict[str, Any] | None = None, **policy: Any
) -> tuple[PolicySubmission, ScriptedCheck, RecordingSink, Metrics]:
    check = ScriptedCheck(replies={"nope.example": NXDOMAIN})
    sink = RecordingSink()
    metrics = Metrics()
    relay = RelayPolicy(
        allowed_clients=(), check=check, sink=sink, metrics=metrics, clock=lambda: 0.0, **policy
    )
    settings = smtp_settings(**(limits or {}))
    submit = PolicySubmission(
        relay, SmtpLimits.from_settings(settings), metrics=metrics, stores=True, clock=lambda: 0.0
    )
    return submit, check, sink, metrics


def submitted(*recipients: str, data: bytes = MESSAGE, username: str | None = None) -> Submitted:
    return Submitted(
        peer=Peer("192.0.2.9", 51000),
        mail_from="app@example.org",
        recipients=recipients,
        data=data,
        username=username,
    )


def accepted(metrics: Metrics, outcome: ReplyClass) -> float:
    value = metrics.registry.get_sample_value(
        "mxrelay_smtp_messages_total", {"outcome": outcome.value}
    )
    return value or 0.0


async def test_an_accepted_submission_reaches_the_sink_as_an_smtp_transaction_would() -> None:
    submit, check, sink, metrics = submission()
    result = await submit(
        submitted("a@example.net", "b@example.net", "a@example.net", username="ops")
    )
    assert result.reply == QUEUED
    assert result.accepted
    assert check.seen == ["<a@example.net>", "<b@example.net>"]  # each recipient once
    [transaction] = sink.transactions
    assert transaction.recipients == ("a@example.net", "b@example.net")
    assert transaction.mail_from == "app@example.org"
    assert transaction.data == MESSAGE
    assert transaction.session == SessionInfo(
        Peer("192.0.2.9", 51000), helo=HELO, esmtp=True, username="ops"
    )
    assert accepted(metrics, ReplyClass.ACCEPTED) == 1


async def test_a_refused_recipient_refuses_the_whole_submission() -> None:
    submit, _, sink, metrics = submission()
    result = await submit(submitted("a@example.net", "x@nope.example"))
    assert not result.accepted
    assert result.reply == NXDOMAIN
    assert [(r.address, r.reply, r.reason) for r in result.refused] == [
        ("x@nope.example", NXDOMAIN, Reason.NXDOMAIN)
    ]
    assert sink.transactions == []
    assert sink.aborted == 1
    assert [r.address for r in sink.refusals] == ["x@nope.example"]  # logged as at RCPT
    assert accepted(metrics, ReplyClass.REJECTED) == 1


async def test_the_sender_rules_apply_before_any_recipient_is_checked() -> None:
    refused = Reply(550, "7.1", "Sender address rejected")
    submit, check, sink, _ = submission(sender_check=lambda sender, session: refused)
    result = await submit(submitted("a@example.net"))
    assert result.reply == refused
    assert check.seen == []
    assert sink.transactions == []


async def test_the_message_check_runs_on_the_message() -> None:
    refused = Reply(550, "7.1", "From not allowed")
    seen: list[bytes] = []

    def message_check(sender: str, data: bytes) -> Reply:
        seen.append(data)
        return refused

    submit, _, sink, _ = submission(message_check=message_check)
    result = await submit(submitted("a@example.net"))
    assert result.reply == refused
    assert seen == [MESSAGE]
    assert sink.transactions == []
    assert sink.aborted == 1


async def test_authentication_required_for_smtp_is_required_here_too() -> None:
    submit, _, _, _ = submission(auth_required=True)
    assert (await submit(submitted("a@example.net"))).reply == replies.AUTH_REQUIRED
    assert (await submit(submitted("a@example.net", username="ops"))).accepted


async def test_the_listeners_limits_hold() -> None:
    submit, check, sink, _ = submission(limits={"max_message_size": 1024, "recipient_limit": 2})
    too_big = await submit(submitted("a@example.net", data=b"x" * 1025))
    assert too_big.reply == replies.SIZE_EXCEEDS_LIMIT
    too_many = await submit(submitted("a@example.net", "b@example.net", "c@example.net"))
    assert too_many.reply == replies.TOO_MANY_RECIPIENTS
    assert (await submit(submitted())).reply == replies.NO_VALID_RECIPIENTS
    assert check.seen == []
    assert sink.transactions == []
