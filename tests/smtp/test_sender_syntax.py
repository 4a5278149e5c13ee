"""MAIL FROM with control characters is refused at MAIL with 501 5.1.7, quoted or not.

The sender is written into log lines, the store, a From header (Graph mode, when the message has
none) and the next hop's MAIL command; a CR, NUL, TAB, ESC or DEL in it once got a 250 and then
failed every delivery attempt (smtp mode), ended a passthrough session with a traceback, or, as a
bare CR, injected a Bcc: into the header Graph reads recipients from.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.smtp.commands import valid_reverse_path
from tests.support.dns_server import DnsServer
from tests.support.relay_app import running_relay
from tests.support.smarthost import Smarthost
from tests.support.smtp_relay import RelayThread, Wire

BAD_SENDER = "501 5.1.7 Bad sender address syntax"

CONTROL_SENDERS = [
    pytest.param(b"<a\rBcc: victim@example.org@example.org>", id="bare-cr"),
    pytest.param(b'<"a\rBcc: victim@example.org"@example.org>', id="quoted-bare-cr"),
    pytest.param(b"<a\x00b@example.org>", id="nul"),
    pytest.param(b'<"a\x00b"@example.org>', id="quoted-nul"),
    pytest.param(b"<a\tb@example.org>", id="tab"),
    pytest.param(b'<"a\tb"@example.org>', id="quoted-tab"),
    pytest.param(b"<a\x1b[31mb@example.org>", id="esc"),
    pytest.param(b'<"\\\x1b"@example.org>', id="quoted-pair-esc"),
    pytest.param(b"<ab\x7f@example.org>", id="del"),
    pytest.param(b"<a@exam\x00ple.org>", id="nul-in-domain"),
    pytest.param(b"<a@[192.0.2.1\r]>", id="cr-in-address-literal"),
    pytest.param(b"a\x1bb@example.org", id="esc-without-brackets"),
    pytest.param("<a\u2028b@example.org> SMTPUTF8".encode(), id="unicode-line-separator"),
    pytest.param("<a\u0085b@example.org> SMTPUTF8".encode(), id="c1-next-line"),
]


@pytest.mark.parametrize("path", CONTROL_SENDERS)
def test_control_characters_in_the_sender_are_refused_at_mail(
    relay: RelayThread, path: bytes
) -> None:
    wire = Wire(relay)
    try:
        wire.read()
        wire.command("EHLO c.example")
        wire.send(b"MAIL FROM:" + path + b"\r\n")
        assert wire.read() == BAD_SENDER
        # The session goes on: a well-formed sender is accepted next.
        assert wire.command("MAIL FROM:<a@example.org>").startswith("250 2.1.0")
    finally:
        wire.close()


@pytest.mark.parametrize(
    "path",
    [
        '<"a b"@example.org>',
        '<"a\\"b"@example.org>',
        "<o'brien+tag@example.org>",
        "<a@[192.0.2.1]>",
        "<@relay.example,@other.example:a@example.org>",
    ],
)
def test_well_formed_senders_are_still_accepted(relay: RelayThread, path: str) -> None:
    wire = Wire(relay)
    try:
        wire.read()
        wire.command("EHLO c.example")
        assert wire.command(f"MAIL FROM:{path}").startswith("250 2.1.0"), path
    finally:
        wire.close()


async def test_passthrough_refuses_the_sender_and_the_session_goes_on(
    dns_server: DnsServer, smarthost: Smarthost, caplog: pytest.LogCaptureFixture
) -> None:
    dns_server.mx("example.net", "10 mx.example.net")
    dns_server.a("mx.example.net", "192.0.2.10")
    env = {
        "UPSTREAM_HOST": "127.0.0.1",
        "UPSTREAM_PORT": str(smarthost.port),
        "MXRELAY_DNS_SERVERS": dns_server.address,
    }
    async with running_relay(env) as relay:

        def run() -> list[bytes]:
            with socket.create_connection(("127.0.0.1", relay.smtp_port), timeout=30) as sock:
                answers = sock.makefile("rb")
                answers.readline()
                sock.sendall(b"EHLO c.example\r\n")
                while answers.readline()[3:4] == b"-":
                    pass
                seen = []
                for command in (
                    b"MAIL FROM:<app\x00@example.org>\r\n",
                    b"MAIL FROM:<app@example.org>\r\n",
                    b"RCPT TO:<ok@example.net>\r\n",
                    b"DATA\r\n",
                    b"Subject: after a refused sender\r\n\r\nbody\r\n.\r\n",
                    b"QUIT\r\n",
                ):
                    sock.sendall(command)
                    seen.append(answers.readline().rstrip())
                return seen

        with caplog.at_level(logging.ERROR, logger="mxrelay"):
            seen = await asyncio.to_thread(run)
    assert seen[0] == BAD_SENDER.encode()
    assert [line[:3] for line in seen[1:]] == [b"250", b"250", b"354", b"250", b"221"]
    assert [m.mail_from for m in smarthost.received] == ["app@example.org"]
    assert not [r for r in caplog.records if r.exc_info], "no traceback"


@given(st.text(max_size=40), st.text(min_size=1, max_size=20))
def test_no_path_with_a_control_character_is_valid(local: str, domain: str) -> None:
    path = f"<{local}@{domain}>"
    if any(not (c.isprintable() or c == " ") for c in path):
        assert not valid_reverse_path(path)
