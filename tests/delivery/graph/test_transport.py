"""The Graph transport against the HTTPS stand-in: what is sent, to whom, from which mailbox."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from mxrelay.delivery.errors import PermanentFailure, UpstreamUnavailable
from mxrelay.delivery.graph.transport import record_headers
from mxrelay.delivery.transport import RecipientStatus
from mxrelay.metrics import Metrics
from mxrelay.mime.headers import reconcile_headers
from tests.support.graph_harness import graph_transport, job, message, relay_environ
from tests.support.graph_standin import MAILBOX, SECRET, GraphStandIn, unavailable


async def test_sends_the_message_base64_encoded_and_records_the_request_id(
    standin: GraphStandIn,
) -> None:
    data = message(to="alice@example.net")
    async with graph_transport(standin) as transport:
        outcome = await transport.deliver(job(data))
    [sent] = standin.sent()
    assert sent.mime == data  # complete and already agreeing with the envelope: untouched
    assert base64.b64decode(sent.body) == data
    assert sent.mailbox == MAILBOX
    assert outcome.remote_id == sent.request_id
    assert outcome.http_status == 202
    assert [(r.recipient, r.status) for r in outcome.recipients] == [
        ("alice@example.net", RecipientStatus.DELIVERED)
    ]
    [request] = standin.send_requests()
    assert request.headers["content-type"] == "text/plain"
    assert request.headers["authorization"].startswith("Bearer ")
    assert request.headers["client-request-id"]


async def test_exchange_gets_exactly_the_accepted_envelope(standin: GraphStandIn) -> None:
    """Bcc-only recipients arrive; a To: naming a recipient refused at RCPT does not."""
    data = message(
        to='"Alice" <alice@example.net>, refused@nonexistent.example',
        cc="=?utf-8?q?J=C3=BCrgen?= <jurgen@example.org>",
    )
    envelope = ("alice@example.net", "jurgen@example.org", "hidden@example.com")
    async with graph_transport(standin) as transport:
        await transport.deliver(job(data, envelope))
    [sent] = standin.sent()
    assert set(sent.recipients) == set(envelope)
    assert b"refused@nonexistent.example" not in sent.mime


async def test_groups_and_undisclosed_recipients(standin: GraphStandIn) -> None:
    data = message(to="undisclosed-recipients:;", cc="Team: bob@example.net, eve@example.org;")
    envelope = ("bob@example.net", "carol@example.net")
    async with graph_transport(standin) as transport:
        await transport.deliver(job(data, envelope))
    [sent] = standin.sent()
    assert sorted(sent.recipients) == sorted(envelope)


async def test_reject_policy_refuses_header_recipients_outside_the_envelope(
    standin: GraphStandIn,
) -> None:
    environ = relay_environ(standin, MXRELAY_HEADER_RECIPIENTS="reject")
    data = message(to="alice@example.net, refused@nonexistent.example")
    async with graph_transport(standin, environ=environ) as transport:
        with pytest.raises(PermanentFailure, match="MXRELAY_HEADER_RECIPIENTS=reject"):
            await transport.deliver(job(data))
    assert standin.send_requests() == []


async def test_missing_headers_are_added_the_same_way_on_every_attempt(
    standin: GraphStandIn,
) -> None:
    data = message(sender="", headers=(), to="alice@example.net")
    accepted = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    attempt = job(data, mail_from="app@contoso.example", received_at=accepted)
    standin.add_mailbox("app@contoso.example")
    standin.script(unavailable())
    async with graph_transport(standin) as transport:
        with pytest.raises(UpstreamUnavailable, match="503"):
            await transport.deliver(attempt)
        await transport.deliver(attempt)
    first, second = standin.send_requests()
    assert first.body == second.body  # a retry sends exactly the first attempt's bytes
    assert first.headers["client-request-id"] != second.headers["client-request-id"]
    [sent] = standin.sent()
    assert sent.mime.startswith(
        b"From: app@contoso.example\r\n"
        b"Date: Fri, 27 Nov 2026 09:30:00 +0000\r\n"
        b"Message-ID: <" + attempt.message_id.encode() + b"@relay.test>\r\n"
    )
    assert sent.mime.endswith(data)


async def test_an_envelope_sender_with_a_bare_cr_never_becomes_a_header(
    standin: GraphStandIn,
) -> None:
    """A message queued without a From, its envelope sender carrying a bare CR and a Bcc: (as
    SMTP accepted before MAIL refused control characters): the From added for Exchange must not
    turn the sender's tail into a header field, so the Bcc never becomes a recipient."""
    data = message(sender="", to="alice@example.net")
    attempt = job(data, mail_from="app\rBcc: victim@example.org@contoso.example")
    environ = relay_environ(standin, MXRELAY_GRAPH_MAILBOX=MAILBOX)
    async with graph_transport(standin, environ=environ) as transport:
        await transport.deliver(attempt)
    [sent] = standin.sent()
    assert sent.recipients == ("alice@example.net",)
    assert b"victim" not in sent.mime


@pytest.mark.parametrize(
    ("source", "expected"),
    [("header", "sales@contoso.example"), ("envelope", "bounces@contoso.example")],
)
async def test_sending_mailbox_follows_the_policy(
    standin: GraphStandIn, source: str, expected: str
) -> None:
    standin.add_mailbox("sales@contoso.example")
    standin.add_mailbox("bounces@contoso.example", send_as=("sales@contoso.example",))
    environ = relay_environ(standin, MXRELAY_GRAPH_MAILBOX_FROM=source)
    data = message(sender="Sales <sales@contoso.example>")
    async with graph_transport(standin, environ=environ) as transport:
        await transport.deliver(job(data, mail_from="bounces@contoso.example"))
    assert [m.mailbox for m in standin.sent()] == [expected]


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("sales@contoso.example, other@contoso.example", "sales@contoso.example"),
        ("", "bounces@contoso.example"),  # no readable From at accept time: the envelope's
    ],
)
async def test_the_from_read_at_accept_time_decides(
    standin: GraphStandIn, stored: str, expected: str
) -> None:
    standin.add_mailbox("sales@contoso.example")
    standin.add_mailbox("bounces@contoso.example", send_as=("sales@contoso.example",))
    data = message(sender="Sales <sales@contoso.example>")
    async with graph_transport(standin) as transport:
        await transport.deliver(job(data, mail_from="bounces@contoso.example", header_from=stored))
    assert [m.mailbox for m in standin.sent()] == [expected]


async def test_headers_too_large_to_check_are_never_sent(standin: GraphStandIn) -> None:
    data = message(headers=tuple(f"X-Filler-{i}: {'x' * 100}" for i in range(3000)))
    async with graph_transport(standin) as transport:
        with pytest.raises(PermanentFailure, match="cannot be checked against the envelope"):
            await transport.deliver(job(data))
    assert standin.send_requests() == []


async def test_fixed_mailbox_wins_and_is_url_encoded(standin: GraphStandIn) -> None:
    standin.add_mailbox("relay+app#1@contoso.example", send_as=("app@contoso.example",))
    environ = relay_environ(standin, MXRELAY_GRAPH_MAILBOX="relay+app#1@contoso.example")
    async with graph_transport(standin, environ=environ) as transport:
        await transport.deliver(job(message(sender="app@contoso.example")))
    [request] = standin.send_requests()
    assert "/v1.0/users/relay%2Bapp%231@contoso.example/sendMail" in request.path
    assert standin.sent()[0].mailbox == "relay+app#1@contoso.example"


async def test_senders_outside_the_allow_list_are_never_sent(standin: GraphStandIn) -> None:
    environ = relay_environ(standin, MXRELAY_GRAPH_ALLOWED_SENDERS="@contoso.example")
    async with graph_transport(standin, environ=environ) as transport:
        with pytest.raises(PermanentFailure, match="ALLOWED_SENDERS"):
            await transport.deliver(job(message(sender="ceo@elsewhere.example")))
        await transport.deliver(job(message()))
    assert len(standin.sent()) == 1


async def test_messages_above_the_graph_size_limit_fail_without_a_request(
    standin: GraphStandIn,
) -> None:
    environ = relay_environ(standin, MXRELAY_GRAPH_MAX_MESSAGE_SIZE="2KiB")
    async with graph_transport(standin, environ=environ) as transport:
        with pytest.raises(PermanentFailure, match="MXRELAY_GRAPH_MAX_MESSAGE_SIZE"):
            await transport.deliver(job(message(body="x" * 4096)))
    assert standin.send_requests() == []


def test_header_changes_are_counted_by_kind() -> None:
    metrics = Metrics()
    data = message(to="alice@example.net, carol@example.net")
    record_headers(metrics, reconcile_headers(data, ["alice@example.net", "bob@example.net"]))
    value = metrics.registry.get_sample_value
    assert value("mxrelay_header_recipients_changed_total", {"change": "removed"}) == 1
    assert value("mxrelay_header_recipients_changed_total", {"change": "added"}) == 1


async def test_metrics_count_requests_bytes_and_header_changes(standin: GraphStandIn) -> None:
    metrics = Metrics()
    metrics.prime("test")
    data = message(to="alice@example.net")
    async with graph_transport(standin, metrics=metrics) as transport:
        await transport.deliver(job(data, ("alice@example.net", "bob@example.net")))
    registry = metrics.registry
    assert registry.get_sample_value("mxrelay_graph_requests_total", {"status_class": "2xx"}) == 1
    assert registry.get_sample_value("mxrelay_graph_upload_bytes_total") == len(
        standin.send_requests()[0].body
    )
    assert (
        registry.get_sample_value("mxrelay_header_recipients_changed_total", {"change": "added"})
        == 1
    )
    assert (
        registry.get_sample_value(
            "mxrelay_graph_token_acquisitions_total", {"source": "identity_provider"}
        )
        == 1
    )
    text = _exposition(metrics)
    assert SECRET not in text
    assert "alice@example.net" not in text


def _exposition(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()
