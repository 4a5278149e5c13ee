"""The smarthost transport against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mxrelay.config import load_settings
from mxrelay.delivery.errors import UpstreamUnavailable
from mxrelay.delivery.smarthost import SmarthostTransport
from mxrelay.delivery.transport import (
    DeliveryJob,
    RecipientStatus,
)
from mxrelay.metrics import Metrics
from mxrelay.upstream.pool import UpstreamPool
from tests.support.smarthost import Smarthost

DATA = b"From: a@example.net\r\nTo: b@example.org\r\nSubject: t\r\n\r\n.leading dot\r\nbody\r\n"


def job(*recipients: str, data: bytes = DATA) -> DeliveryJob:
    return DeliveryJob(
        message_id="01TEST", variant=0, mail_from="a@example.net", recipients=recipients, data=data
    )


@pytest.fixture
async def transport(smarthost: Smarthost) -> AsyncIterator[SmarthostTransport]:
    settings = load_settings(
        {"MXRELAY_UPSTREAM": smarthost.url, "MXRELAY_UPSTREAM_CONNECT_TIMEOUT": "2s"}
    )
    pool = UpstreamPool(settings.upstream, local_hostname="relay.example.net", metrics=Metrics())
    transport = SmarthostTransport(pool)
    yield transport
    await transport.aclose()


async def test_delivers_bytes_unchanged_and_keeps_the_queue_id(
    smarthost: Smarthost, transport: SmarthostTransport
) -> None:
    outcome = await transport.deliver(job("b@example.org", "c@example.org"))
    assert [r.status for r in outcome.recipients] == [RecipientStatus.DELIVERED] * 2
    assert outcome.remote_id == "Q1"
    [message] = smarthost.received
    assert message.data.replace(b"\r\n", b"\n") == DATA.replace(b"\r\n", b"\n")
    assert message.recipients == ("b@example.org", "c@example.org")
    assert message.mail_from == "a@example.net"


async def test_reuses_the_connection(smarthost: Smarthost, transport: SmarthostTransport) -> None:
    for _ in range(5):
        await transport.deliver(job("b@example.org"))
    assert len(smarthost.received) == 5
    assert smarthost.connections == 1


async def test_per_recipient_results(smarthost: Smarthost, transport: SmarthostTransport) -> None:
    smarthost.script.rcpt = {
        "busy@example.org": "450 4.2.1 Mailbox busy",
        "gone@example.org": "550 5.1.1 No such user",
    }
    outcome = await transport.deliver(job("ok@example.org", "busy@example.org", "gone@example.org"))
    by = {r.recipient: r for r in outcome.recipients}
    assert by["ok@example.org"].status is RecipientStatus.DELIVERED
    assert by["busy@example.org"].status is RecipientStatus.DEFERRED
    assert (by["busy@example.org"].code, by["busy@example.org"].enhanced) == (450, "4.2.1")
    assert by["busy@example.org"].text == "Mailbox busy"
    assert by["gone@example.org"].status is RecipientStatus.FAILED
    assert by["gone@example.org"].code == 550
    assert smarthost.delivered_to() == ["ok@example.org"]


async def test_all_recipients_refused_sends_no_data(
    smarthost: Smarthost, transport: SmarthostTransport
) -> None:
    smarthost.script.rcpt = {"gone@example.org": "550 5.1.1 No such user"}
    outcome = await transport.deliver(job("gone@example.org"))
    assert [r.status for r in outcome.recipients] == [RecipientStatus.FAILED]
    assert smarthost.received == []
    outcome = await transport.deliver(job("ok@example.org"))  # the connection is still usable
    assert [r.status for r in outcome.recipients] == [RecipientStatus.DELIVERED]


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("451 4.3.0 Queue full", RecipientStatus.DEFERRED),
        ("554 5.7.1 Spam", RecipientStatus.FAILED),
    ],
)
async def test_end_of_data_reply_settles_every_accepted_recipient(
    smarthost: Smarthost, transport: SmarthostTransport, reply: str, status: RecipientStatus
) -> None:
    smarthost.script.data = reply
    outcome = await transport.deliver(job("b@example.org", "c@example.org"))
    assert [r.status for r in outcome.recipients] == [status, status]
    assert outcome.remote_id is None


async def test_unreachable_smarthost_is_a_temporary_failure(
    smarthost: Smarthost, transport: SmarthostTransport
) -> None:
    await smarthost.stop()
    with pytest.raises(UpstreamUnavailable):
        await transport.deliver(job("b@example.org"))


async def test_a_connection_closed_while_idle_is_replaced(
    smarthost: Smarthost, transport: SmarthostTransport
) -> None:
    await transport.deliver(job("b@example.org"))
    await smarthost.stop()  # drops the pooled connection
    await smarthost.start()  # same port
    outcome = await transport.deliver(job("c@example.org"))
    assert [r.status for r in outcome.recipients] == [RecipientStatus.DELIVERED]
    assert smarthost.delivered_to() == ["b@example.org", "c@example.org"]


async def test_a_smarthost_silent_after_the_data_is_unavailable_naming_the_stage(
    smarthost: Smarthost,
) -> None:
    smarthost.script.hang_data = True
    settings = load_settings(
        {"MXRELAY_UPSTREAM": smarthost.url, "MXRELAY_UPSTREAM_COMMAND_TIMEOUT": "0.3s"}
    )
    pool = UpstreamPool(settings.upstream, local_hostname="relay.example.net", metrics=Metrics())
    transport = SmarthostTransport(pool)
    try:
        with pytest.raises(UpstreamUnavailable) as raised:
            await transport.deliver(job("b@example.org"))
    finally:
        await transport.aclose()
    assert str(raised.value) == "smarthost connection lost during DATA: SMTPReadTimeoutError"


async def test_mail_refused_settles_every_recipient_with_that_reply(
    smarthost: Smarthost, transport: SmarthostTransport
) -> None:
    smarthost.script.mail = "451 4.3.0 Try again"
    outcome = await transport.deliver(job("b@example.org", "c@example.org"))
    assert [(r.status, r.code, r.enhanced, r.text) for r in outcome.recipients] == [
        (RecipientStatus.DEFERRED, 451, "4.3.0", "Try again")
    ] * 2
    assert outcome.detail == "MAIL refused: 451 Try again"
    assert smarthost.received == []
