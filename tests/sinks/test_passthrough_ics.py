"""Issue 3 end to end: a Cal.com (nodemailer) invitation to one listed and one unlisted recipient
reaches a real upstream as two transactions: the stripped copy to the listed recipient, the
original to the other, each byte for byte after the relay's Received: line."""

from __future__ import annotations

import asyncio
import email
import logging
import smtplib
from pathlib import Path

import pytest

from mxrelay.mime.ics import transform_calendar
from mxrelay.model import IcsAction
from tests.support.dns_server import DnsServer
from tests.support.relay_app import running_relay, send_mail, transaction_lines
from tests.support.smarthost import Smarthost

CORPUS = Path(__file__).resolve().parent.parent / "data" / "ics"
INVITATION = (CORPUS / "nodemailer-calcom-request.eml").read_bytes()


def body_after_trace(data: bytes) -> bytes:
    """The message without the relay's Received: field (its first, folded header)."""
    assert data.startswith(b"Received: from client.example")
    lines = data.split(b"\r\n")
    index = 1
    while lines[index].startswith(b"\t"):
        index += 1
    return b"\r\n".join(lines[index:])


def passthrough_env(dns: DnsServer, smarthost: Smarthost, **extra: str) -> dict[str, str]:
    """Passthrough to `smarthost`, with example.net resolvable through `dns`."""
    dns.mx("example.net", "10 mx.example.net")
    dns.a("mx.example.net", "192.0.2.10")
    return {
        "UPSTREAM_HOST": "127.0.0.1",
        "UPSTREAM_PORT": str(smarthost.port),
        "MXRELAY_DNS_SERVERS": dns.address,
        **extra,
    }


@pytest.mark.parametrize("action", [IcsAction.STRIP, IcsAction.ATTACH])
async def test_invitation_split_per_recipient(
    dns_server: DnsServer, smarthost: Smarthost, action: IcsAction
) -> None:
    env = passthrough_env(
        dns_server,
        smarthost,
        MXRELAY_ICS_STRIP="Listed@EXAMPLE.net",
        MXRELAY_ICS_ACTION=action.value,
    )
    async with running_relay(env) as relay:

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as client:
                client.ehlo("client.example")
                client.sendmail(
                    "notifications@cal.example",
                    ["listed@example.net", "other@example.net"],
                    INVITATION,
                )

        await asyncio.to_thread(send)
        transformed = relay.metrics.registry.get_sample_value(
            "mxrelay_ics_messages_transformed_total", {"action": action.value}
        )
    first, second = smarthost.received
    assert first.recipients == ("listed@example.net",)
    assert second.recipients == ("other@example.net",)
    expected = transform_calendar(INVITATION, action).data
    assert expected != INVITATION
    assert body_after_trace(first.data) == expected
    assert body_after_trace(second.data) == INVITATION
    assert b"for <listed@example.net>" in first.data
    parsed = email.message_from_bytes(first.data)
    types = {part.get_content_type() for part in parsed.walk()}
    assert "text/calendar" not in types
    if action is IcsAction.ATTACH:
        assert "application/ics" in types
    assert transformed == 1


async def test_upstream_refusing_the_second_variant_fails_the_whole_message(
    dns_server: DnsServer, smarthost: Smarthost
) -> None:
    env = passthrough_env(dns_server, smarthost, MXRELAY_ICS_STRIP="listed@example.net")
    async with running_relay(env) as relay:

        def send() -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as client:
                client.ehlo("client.example")
                client.mail("notifications@cal.example")
                client.rcpt("listed@example.net")
                client.rcpt("other@example.net")
                # The upstream now refuses the recipient when its own variant is sent.
                smarthost.script.rcpt["other@example.net"] = "550 5.1.1 No such user"
                return client.data(INVITATION)

        code, text = await asyncio.to_thread(send)
    # The first variant was accepted, the second refused: the client must retry, never get 250.
    assert code == 451
    assert text.startswith(b"4.1.1")
    assert len(smarthost.received) == 1


async def test_what_the_transform_left_reaches_the_log_line(
    dns_server: DnsServer, smarthost: Smarthost, caplog: pytest.LogCaptureFixture
) -> None:
    signed = (CORPUS / "python-signed-invitation.eml").read_bytes()
    env = passthrough_env(dns_server, smarthost, MXRELAY_ICS_STRIP="listed@example.net")
    caplog.set_level(logging.INFO, logger="mxrelay.smtp")
    async with running_relay(env) as relay:
        await send_mail(relay, "cal@example.net", ["listed@example.net"], signed)
    [line] = transaction_lines(caplog.records)
    assert line["transforms"] == [
        "ics strip: nothing changed; calendar data under multipart/signed left unchanged"
    ]
