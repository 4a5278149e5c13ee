"""SMTP smuggling and bare line endings (2023 attacks; Postfix's smtpd_forbid_bare_newline).

Whatever the client sends, only <CRLF>.<CRLF> ends DATA, a message with a bare LF or bare CR is
refused with a 5xx, and nothing of it reaches the sink.
"""

from __future__ import annotations

import pytest

from tests.support.smtp_relay import RecordingSink, RelayFactory, RelayThread, Wire


def open_data(relay: RelayThread) -> Wire:
    wire = Wire(relay)
    wire.read()
    wire.command("EHLO attacker.example")
    assert wire.command("MAIL FROM:<a@example.org>").startswith("250")
    assert wire.command("RCPT TO:<b@example.net>").startswith("250")
    assert wire.command("DATA").startswith("354")
    return wire


SMUGGLING_ENDINGS = [
    pytest.param(b"\n.\n", id="lf-dot-lf"),
    pytest.param(b"\n.\r\n", id="lf-dot-crlf"),
    pytest.param(b"\r\n.\n", id="crlf-dot-lf"),
    pytest.param(b"\r.\r\n", id="cr-dot-crlf"),
    pytest.param(b"\r\n.\r\r\n", id="crlf-dot-cr-crlf"),
]


@pytest.mark.parametrize("fake_end", SMUGGLING_ENDINGS)
def test_smuggled_second_message_is_never_delivered(
    make_relay: RelayFactory, fake_end: bytes
) -> None:
    sink = RecordingSink()
    relay = make_relay(sink=sink)
    wire = open_data(relay)
    try:
        wire.send(
            b"Subject: first\r\n\r\nhello"
            + fake_end
            + b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nevil\r\n.\r\n"
        )
        answer = wire.read()
        assert answer.startswith("550 5.5.2"), answer
        # Nothing further is answered: the smuggled commands were message data.
        wire.sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            wire.read()
    finally:
        wire.close()
    assert sink.transactions == []


def test_bare_lf_inside_a_crlf_message_is_refused_and_the_session_goes_on(
    make_relay: RelayFactory,
) -> None:
    sink = RecordingSink()
    relay = make_relay(sink=sink)
    wire = open_data(relay)
    try:
        wire.send(b"Subject: x\r\n\r\nline one\nline two\r\n.\r\n")
        assert wire.read() == "550 5.5.2 Error: bare <LF> or <CR> received in message data"
        assert wire.command("MAIL FROM:<a@example.org>").startswith("250")
    finally:
        wire.close()
    assert sink.transactions == []


def test_bare_cr_is_refused(make_relay: RelayFactory) -> None:
    sink = RecordingSink()
    relay = make_relay(sink=sink)
    wire = open_data(relay)
    try:
        wire.send(b"Subject: x\r\n\r\nline one\rline two\r\n.\r\n")
        assert wire.read().startswith("550 5.5.2")
    finally:
        wire.close()
    assert sink.transactions == []


def test_lf_only_client_gets_an_answer_and_is_disconnected(make_relay: RelayFactory) -> None:
    sink = RecordingSink()
    relay = make_relay(sink=sink)
    wire = open_data(relay)
    try:
        wire.send(b"Subject: x\n\nLF-only software\n.\n")
        assert wire.read().startswith("550 5.5.2")
        assert wire.closed()
    finally:
        wire.close()
    assert sink.transactions == []


def test_bare_lf_in_a_command_is_refused(relay: RelayThread) -> None:
    wire = Wire(relay)
    try:
        wire.read()
        wire.send(b"NOOP\n")
        assert wire.read() == "500 5.5.2 Error: bare <LF> received"
    finally:
        wire.close()


def test_dot_stuffing_round_trip(make_relay: RelayFactory) -> None:
    sink = RecordingSink()
    relay = make_relay(sink=sink)
    wire = open_data(relay)
    try:
        wire.send(b"..starts with a dot\r\n...two dots\r\n.\r\n")
        assert wire.read().startswith("250")
    finally:
        wire.close()
    assert sink.transactions[0].data == b".starts with a dot\r\n..two dots\r\n"


def test_empty_message(make_relay: RelayFactory) -> None:
    sink = RecordingSink()
    relay = make_relay(sink=sink)
    wire = open_data(relay)
    try:
        wire.send(b".\r\n")
        assert wire.read().startswith("250")
    finally:
        wire.close()
    assert sink.transactions[0].data == b""
