"""End to end in Graph mode: SMTP in → RCPT checks → calendar variants → queue → stand-in Graph.

Exchange takes recipients from To/Cc/Bcc, so in every case the recipients the stand-in records
must be exactly the envelope recipients the relay accepted.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from mxrelay.app import Relay
from mxrelay.model import QueueState
from mxrelay.store.queue.admin import QueueAdmin
from tests.support.dns_server import DnsServer
from tests.support.graph_relay import (
    crlf,
    graph_relay_environ,
    submit,
)
from tests.support.graph_standin import MAILBOX, GraphStandIn, throttle, unavailable
from tests.support.relay_app import entry_in_state, queue_entry, running_relay

SENDER = MAILBOX


@pytest.fixture
async def relay(standin: GraphStandIn, dns: DnsServer, tmp_path: Path) -> AsyncIterator[Relay]:
    async with running_relay(graph_relay_environ(standin, dns, tmp_path)) as running:
        yield running


async def test_exchange_receives_exactly_the_accepted_envelope(
    relay: Relay, standin: GraphStandIn
) -> None:
    data = crlf(
        f"From: Relay <{SENDER}>\n"
        'To: "Alice" <alice@example.net>, Eve <eve@nx.example.net>\n'
        "Cc: =?utf-8?q?B=C3=B6b_M=C3=BCller?= <bob@example.org>, Team: carol@example.net;\n"
        "Subject: hello\n\nbody\n"
    )
    envelope = ["alice@example.net", "bob@example.org", "eve@nx.example.net", "hidden@example.net"]
    message_id, refused = await submit(relay, SENDER, envelope, data)
    assert refused == {"eve@nx.example.net": (550, refused["eve@nx.example.net"][1])}
    assert refused["eve@nx.example.net"][1].startswith("5.1.2")
    [sent] = await standin.arrived(1)
    # Bcc-only hidden@ arrives; eve@ (refused at RCPT) and carol@ (never in the envelope) do not.
    assert sorted(sent.recipients) == ["alice@example.net", "bob@example.org", "hidden@example.net"]
    parsed = email.message_from_bytes(sent.mime, policy=email.policy.default)
    assert "Müller" in str(parsed["Cc"])  # encoded display names survive
    await entry_in_state(relay, message_id, QueueState.DELIVERED)


async def test_calendar_policy_applies_per_recipient(
    standin: GraphStandIn, dns: DnsServer, tmp_path: Path
) -> None:
    environ = graph_relay_environ(standin, dns, tmp_path, MXRELAY_ICS_STRIP="@example.org")
    data = crlf(
        f"From: {SENDER}\nTo: alice@example.net, bob@example.org\nSubject: Meeting\n"
        'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="b1"\n\n'
        "--b1\nContent-Type: text/plain; charset=utf-8\n\nLet us meet.\n"
        "--b1\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\n\n"
        "BEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nUID:1@app\n"
        "ATTENDEE:mailto:alice@example.net\nATTENDEE:mailto:bob@example.org\n"
        "END:VEVENT\nEND:VCALENDAR\n--b1--\n"
    )
    async with running_relay(environ) as relay:
        await submit(relay, SENDER, ["alice@example.net", "bob@example.org"], data)
        sent = await standin.arrived(2)
    by_recipients = {m.recipients: m.mime for m in sent}
    assert set(by_recipients) == {("alice@example.net",), ("bob@example.org",)}
    assert b"text/calendar" in by_recipients[("alice@example.net",)]
    assert b"text/calendar" not in by_recipients[("bob@example.org",)]
    assert b"BEGIN:VCALENDAR" not in by_recipients[("bob@example.org",)]


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_retries_honour_retry_after_and_send_the_same_bytes(
    relay: Relay, standin: GraphStandIn, form: str
) -> None:
    retry_after = (
        "1"
        if form == "seconds"
        else format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    )
    standin.script(throttle(retry_after), unavailable())
    data = crlf(f"From: {SENDER}\nTo: alice@example.net\nSubject: retried\n\nbody\n")
    message_id, _ = await submit(relay, SENDER, ["alice@example.net"], data)
    await standin.arrived(1, within=20)
    delivered = await entry_in_state(relay, message_id, QueueState.DELIVERED)
    throttled, failed, accepted = standin.send_requests()
    assert [r.status for r in (throttled, failed, accepted)] == [429, 503, 202]
    assert throttled.body == failed.body == accepted.body  # byte-identical on every attempt
    assert failed.at - throttled.at >= 0.95  # not before Retry-After (1 s, or the date)
    assert delivered.attempts == 2  # the 429 waited its Retry-After; only the 503 and the 202 count


async def test_token_expiry_mid_run_refreshes_within_the_attempt(
    relay: Relay, standin: GraphStandIn
) -> None:
    await submit(relay, SENDER, ["alice@example.net"], crlf("Subject: 1\n\nx\n"))
    await standin.arrived(1)
    standin.expire_tokens()
    second, _ = await submit(relay, SENDER, ["alice@example.net"], crlf("Subject: 2\n\nx\n"))
    await standin.arrived(2)
    assert [r.status for r in standin.send_requests()] == [202, 401, 202]
    assert len(standin.token_requests()) == 2
    assert (await entry_in_state(relay, second, QueueState.DELIVERED)).attempts == 1


async def test_configuration_fault_holds_then_recovers(relay: Relay, standin: GraphStandIn) -> None:
    standin.app.roles = ()  # admin consent withdrawn
    data = crlf(f"From: {SENDER}\nTo: alice@example.net\nSubject: held\n\nbody\n")
    message_id, _ = await submit(relay, SENDER, ["alice@example.net"], data)
    held = await entry_in_state(relay, message_id, QueueState.HELD)
    assert held.attempts == 0  # a configuration fault burns no retries
    assert "Mail.Send" in (held.hold_reason or "")
    assert relay.health.ready  # held, not refused: the relay goes on accepting
    assert "Mail.Send" in relay.health.degraded()["graph"]
    assert (
        relay.metrics.registry.get_sample_value(
            "mxrelay_graph_configuration_fault", {"fault": "access_denied"}
        )
        == 1
    )
    standin.app.roles = ("Mail.Send",)  # consent granted again: the probe notices
    await standin.arrived(1)
    await entry_in_state(relay, message_id, QueueState.DELIVERED)
    assert relay.health.failing() == {}


async def test_restart_mid_backoff_keeps_attempts_and_next_attempt_time(
    standin: GraphStandIn, dns: DnsServer, tmp_path: Path
) -> None:
    environ = graph_relay_environ(
        standin, dns, tmp_path, MXRELAY_RETRY_INITIAL="1h", MXRELAY_RETRY_MAX="1h"
    )
    standin.script(unavailable())
    data = crlf(f"From: {SENDER}\nTo: alice@example.net\nSubject: backoff\n\nbody\n")
    async with running_relay(environ) as relay:
        message_id, _ = await submit(relay, SENDER, ["alice@example.net"], data)
        before = await entry_in_state(relay, message_id, QueueState.DEFERRED)
    async with running_relay(environ) as relay:
        after = await queue_entry(relay, message_id)
        assert after.state is QueueState.DEFERRED
        assert after.attempts == before.attempts == 1
        assert after.next_attempt_at == before.next_attempt_at
        assert relay.queue_stage is not None
        assert relay.queue_stage.queue is not None
        await QueueAdmin(relay.queue_stage.queue.db).retry(
            [after], now=after.queued_at
        )  # operator: now
        await standin.arrived(1)
        done = await entry_in_state(relay, message_id, QueueState.DELIVERED)
    assert done.attempts == 2
    assert [r.status for r in standin.send_requests()] == [503, 202]
