"""Passthrough mode end to end: a real client → the relay (real DNS checks) → a real upstream.

The client never gets a 250 the upstream did not give; upstream 4xx stays 4xx, 5xx stays 5xx; an
unreachable or silent upstream is 451 4.4.1 within the configured timeout; the message reaches the
upstream byte for byte, after the relay's own Received: line.
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import time

import aiosmtplib
import pytest

from mxrelay.model import Reply
from mxrelay.sinks.passthrough import reply_from_upstream
from mxrelay.smtp import replies
from mxrelay.upstream.replies import parse_reply
from tests.support.dns_server import DnsServer, Fault
from tests.support.processes import free_port
from tests.support.relay_app import running_relay
from tests.support.smarthost import Smarthost

MESSAGE = (
    b"From: App <app@example.org>\r\n"
    b"To: <ok@example.net>\r\n"
    b"Subject: passthrough\r\n"
    b"\r\n"
    b".a line that needs dot-stuffing\r\n"
    b"\xc3\xa4 8-bit text\r\n"
)


@pytest.fixture
def zones(dns_server: DnsServer) -> DnsServer:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")
    return dns_server


def env_for(dns: DnsServer, upstream_port: int, **extra: str) -> dict[str, str]:
    return {
        "UPSTREAM_HOST": "127.0.0.1",
        "UPSTREAM_PORT": str(upstream_port),
        "MXRELAY_DNS_SERVERS": dns.address,
        **extra,
    }


def send(
    port: int, recipients: list[str], message: bytes = MESSAGE
) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example")
        return client.sendmail(
            "app@example.org", recipients, message, mail_options=["BODY=8BITMIME"]
        )


async def test_envelope_and_bytes_arrive_unchanged(zones: DnsServer, smarthost: Smarthost) -> None:
    async with running_relay(env_for(zones, smarthost.port)) as relay:
        refused = await asyncio.to_thread(
            send, relay.smtp_port, ["ok@example.net", "second@example.net"]
        )
    assert refused == {}
    [received] = smarthost.received
    assert received.mail_from == "app@example.org"
    assert received.recipients == ("ok@example.net", "second@example.net")
    assert "BODY=8BITMIME" in received.mail_options
    header, _, rest = received.data.partition(
        b"\r\n\tby relay.example.net (mxrelay) with ESMTP id "
    )
    assert header == b"Received: from client.example (unknown [127.0.0.1])"
    assert rest.split(b"\r\n", 1)[1].startswith(b"\t")  # the date line, folded
    assert received.data.endswith(MESSAGE)
    assert received.data.count(b"Received:") == 1


async def test_refused_domains_never_reach_the_upstream(
    zones: DnsServer, smarthost: Smarthost
) -> None:
    zones.fault("nowhere.example.net", Fault.NXDOMAIN)
    async with running_relay(env_for(zones, smarthost.port)) as relay:
        refused = await asyncio.to_thread(
            send, relay.smtp_port, ["ok@example.net", "u@nowhere.example.net"]
        )
    assert refused["u@nowhere.example.net"][0] == 550
    assert refused["u@nowhere.example.net"][1].startswith(b"5.1.2 <u@nowhere.example.net>:")
    assert smarthost.received[0].recipients == ("ok@example.net",)


@pytest.mark.parametrize(
    ("upstream_reply", "expected"),
    [
        (
            "550 5.1.1 <bad@example.net>: Recipient address rejected: User unknown",
            (550, b"5.1.1 <bad@example.net>: Recipient address rejected: User unknown"),
        ),
        ("450 4.2.1 Mailbox busy", (450, b"4.2.1 Mailbox busy")),
        ("553 no enhanced code here", (553, b"5.0.0 no enhanced code here")),
    ],
)
async def test_upstream_rcpt_replies_pass_through(
    zones: DnsServer, smarthost: Smarthost, upstream_reply: str, expected: tuple[int, bytes]
) -> None:
    smarthost.script.rcpt["bad@example.net"] = upstream_reply
    async with running_relay(env_for(zones, smarthost.port)) as relay:
        refused = await asyncio.to_thread(
            send, relay.smtp_port, ["ok@example.net", "bad@example.net"]
        )
    assert refused == {"bad@example.net": expected}
    assert smarthost.received[0].recipients == ("ok@example.net",)


@pytest.mark.parametrize(
    ("upstream_reply", "code"),
    [("554 5.7.1 Message rejected as spam", 554), ("451 4.3.0 Try later", 451)],
)
async def test_upstream_data_reply_passes_through(
    zones: DnsServer, smarthost: Smarthost, upstream_reply: str, code: int
) -> None:
    smarthost.script.data = upstream_reply
    async with running_relay(env_for(zones, smarthost.port)) as relay:
        with pytest.raises(smtplib.SMTPDataError) as raised:
            await asyncio.to_thread(send, relay.smtp_port, ["ok@example.net"])
    assert raised.value.smtp_code == code
    assert raised.value.smtp_error == upstream_reply[4:].encode()
    assert smarthost.received == []


async def test_upstream_down_is_451(zones: DnsServer) -> None:
    async with running_relay(env_for(zones, free_port())) as relay:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as raised:
            await asyncio.to_thread(send, relay.smtp_port, ["ok@example.net"])
        passthrough = relay.metrics.registry.get_sample_value(
            "mxrelay_upstream_connections_total", {"result": "failed"}
        )
    assert raised.value.recipients["ok@example.net"] == (
        451,
        b"4.4.1 Error: upstream server unavailable, try again later",
    )
    assert passthrough == 1


async def test_silent_upstream_is_451_within_the_timeout(zones: DnsServer) -> None:
    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        env = env_for(zones, port, MXRELAY_UPSTREAM_CONNECT_TIMEOUT="0.5s")
        async with running_relay(env) as relay:
            started = time.monotonic()
            with pytest.raises(smtplib.SMTPRecipientsRefused) as raised:
                await asyncio.to_thread(send, relay.smtp_port, ["ok@example.net"])
            elapsed = time.monotonic() - started
    assert raised.value.recipients["ok@example.net"][0] == 451
    assert elapsed < 5


async def test_upstream_hanging_at_data_is_451(zones: DnsServer, smarthost: Smarthost) -> None:
    smarthost.script.hang_data = True
    env = env_for(zones, smarthost.port, MXRELAY_UPSTREAM_COMMAND_TIMEOUT="0.5s")
    async with running_relay(env) as relay:
        with pytest.raises(smtplib.SMTPDataError) as raised:
            await asyncio.to_thread(send, relay.smtp_port, ["ok@example.net"])
    assert (raised.value.smtp_code, raised.value.smtp_error[:5]) == (451, b"4.4.1")


async def test_upstream_connections_are_reused(zones: DnsServer, smarthost: Smarthost) -> None:
    async with running_relay(env_for(zones, smarthost.port)) as relay:
        for _ in range(3):
            await asyncio.to_thread(send, relay.smtp_port, ["ok@example.net"])
        reused = relay.metrics.registry.get_sample_value(
            "mxrelay_upstream_connections_total", {"result": "reused"}
        )
    assert len(smarthost.received) == 3
    assert smarthost.connections == 1
    assert reused == 2


async def test_rset_abandons_the_upstream_transaction(
    zones: DnsServer, smarthost: Smarthost
) -> None:
    async with (
        running_relay(env_for(zones, smarthost.port)) as relay,
        aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.smtp_port, start_tls=False) as client,
    ):
        await client.mail("app@example.org")
        await client.rcpt("first@example.net")
        await client.rset()
        await client.sendmail("app@example.org", ["second@example.net"], MESSAGE)
    [received] = smarthost.received
    assert received.recipients == ("second@example.net",)


async def test_smtputf8_passes_through(zones: DnsServer, smarthost: Smarthost) -> None:
    message = "Subject: Grüße\r\n\r\nhallo\r\n".encode()
    async with running_relay(env_for(zones, smarthost.port)) as relay:

        def send_utf8() -> None:
            with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as client:
                client.ehlo("client.example")
                client.sendmail(
                    "jürgen@example.org", ["zoë@example.net"], message, mail_options=["SMTPUTF8"]
                )

        await asyncio.to_thread(send_utf8)
    [received] = smarthost.received
    assert received.mail_from == "jürgen@example.org"
    assert "SMTPUTF8" in received.mail_options
    assert received.recipients == ("zoë@example.net",)
    assert b"with UTF8SMTP id" in received.data


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (250, "2.0.0 Ok: queued as ABC", Reply(250, "0.0", "Ok: queued as ABC")),
        (550, "5.1.1 User unknown\nsecond line", Reply(550, "1.1", "User unknown second line")),
        (553, "no enhanced code here", Reply(553, "0.0", "no enhanced code here")),
        (421, "4.4.2 closing\r\n", Reply(421, "4.2", "closing")),
        (250, "", Reply(250, "0.0", "(no text)")),
        # An enhanced status of another class than the code is part of the text (Postfix's reading).
        (550, "4.1.1 Mailbox busy", Reply(550, "0.0", "4.1.1 Mailbox busy")),
        (250, "2.0.0  Ok:\tqueued", Reply(250, "0.0", "Ok: queued")),
    ],
)
def test_reply_mapping_keeps_code_status_and_text(code: int, message: str, expected: Reply) -> None:
    assert reply_from_upstream(parse_reply(code, message)) == expected


def test_reply_mapping_keeps_the_enhanced_status_whole() -> None:
    assert str(reply_from_upstream(parse_reply(452, "4.5.3 Too many"))) == "452 4.5.3 Too many"


def test_a_reply_code_out_of_range_is_an_unavailable_upstream() -> None:
    assert reply_from_upstream(parse_reply(-1, "connection lost")) is replies.UPSTREAM_UNAVAILABLE
