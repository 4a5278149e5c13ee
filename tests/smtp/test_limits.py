"""Every SMTP limit is configurable and enforced with the documented reply."""

from __future__ import annotations

import smtplib
import socket
import time

import pytest

from tests.smtp.conftest import RelayFactory
from tests.smtp.test_dialogue import Wire, dialogue
from tests.support.smtp_relay import RecordingSink, smtp_settings


def test_client_outside_allow_list_is_refused_at_connect(make_relay: RelayFactory) -> None:
    relay = make_relay(settings=smtp_settings(allowed_clients="10.0.0.0/8"))
    wire = Wire(relay)
    try:
        assert wire.read() == "554 5.7.1 <127.0.0.1>: Client host rejected: Access denied"
        assert wire.closed()
    finally:
        wire.close()
    assert relay.metric("mxrelay_smtp_connections_total", result="denied") == 1


def test_total_connection_limit(make_relay: RelayFactory) -> None:
    relay = make_relay(settings=smtp_settings(connection_limit=2))
    first, second = Wire(relay), Wire(relay)
    try:
        assert first.read().startswith("220")
        assert second.read().startswith("220")
        third = Wire(relay)
        assert third.read() == "421 4.7.0 Error: too many connections"
        assert third.closed()
        third.close()
    finally:
        first.close()
        second.close()


def test_per_client_connection_limit(make_relay: RelayFactory) -> None:
    relay = make_relay(settings=smtp_settings(client_connection_limit=1))
    first = Wire(relay)
    try:
        assert first.read().startswith("220")
        second = Wire(relay)
        assert second.read() == "421 4.7.0 Error: too many connections from your address"
        second.close()
        first.command("QUIT")
    finally:
        first.close()
    deadline = time.monotonic() + 5
    while (
        relay.server is not None and relay.server.active_connections and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    third = Wire(relay)  # the slot was released when the first one quit
    assert third.read().startswith("220")
    third.close()


def test_command_timeout(make_relay: RelayFactory) -> None:
    relay = make_relay(settings=smtp_settings(command_timeout="0.3s"))
    wire = Wire(relay)
    try:
        wire.read()
        started = time.monotonic()
        assert wire.read() == "421 4.4.2 Error: timeout exceeded"
        assert time.monotonic() - started < 3
        assert wire.closed()
    finally:
        wire.close()
    assert relay.metric("mxrelay_smtp_sessions_ended_total", end="timeout") == 1


def test_data_timeout_delivers_nothing(make_relay: RelayFactory) -> None:
    sink = RecordingSink()
    relay = make_relay(settings=smtp_settings(data_timeout="0.3s"), sink=sink)
    wire = Wire(relay)
    try:
        wire.read()
        wire.command("EHLO c.example")
        wire.command("MAIL FROM:<a@example.org>")
        wire.command("RCPT TO:<b@example.net>")
        assert wire.command("DATA").startswith("354")
        wire.send(b"Subject: half a message\r\n")
        assert wire.read() == "421 4.4.2 Error: timeout exceeded"
    finally:
        wire.close()
    assert sink.transactions == []
    assert sink.aborted == 1


def test_recipient_limit(make_relay: RelayFactory) -> None:
    relay = make_relay(settings=smtp_settings(recipient_limit=2))
    dialogue(
        relay,
        [
            ("EHLO c.example", "250 "),
            ("MAIL FROM:<a@example.org>", "250 2.1.0"),
            ("RCPT TO:<a@example.net>", "250 2.1.5"),
            ("RCPT TO:<b@example.net>", "250 2.1.5"),
            ("RCPT TO:<c@example.net>", "452 4.5.3 Error: too many recipients"),
            ("DATA", "354"),
        ],
    )


def test_long_command_line_is_refused_and_the_session_goes_on(make_relay: RelayFactory) -> None:
    relay = make_relay(settings=smtp_settings(line_length_limit=512))
    dialogue(
        relay,
        [
            ("EHLO " + "x" * 600, "500 5.5.2 Error: line too long"),
            ("NOOP", "250 2.0.0 Ok"),
        ],
    )


def test_message_size_limit(make_relay: RelayFactory) -> None:
    sink = RecordingSink()
    relay = make_relay(settings=smtp_settings(max_message_size="2KiB"), sink=sink)
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as client:
        client.ehlo("c.example")
        assert client.esmtp_features["size"] == "2048"
        # Declared in advance (smtplib sends SIZE=): refused at MAIL.
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail(
                "a@example.org", ["b@example.net"], b"Subject: big\r\n\r\n" + b"x" * 4000 + b"\r\n"
            )
        assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (552, b"5.3.4")
        # Not declared: the data is read to its end, then refused.
        client.mail("a@example.org")
        client.rcpt("b@example.net")
        code, text = client.data(b"Subject: big\r\n\r\n" + b"x" * 4000 + b"\r\n")
        assert (code, text) == (552, b"5.3.4 Error: message file too big")
        # The session is still usable, and a message within the limit goes through.
        client.sendmail("a@example.org", ["b@example.net"], b"Subject: small\r\n\r\nok\r\n")
    assert [t.data for t in sink.transactions] == [b"Subject: small\r\n\r\nok\r\n"]


def test_error_limit_disconnects(make_relay: RelayFactory) -> None:
    relay = make_relay(settings=smtp_settings(error_limit=3))
    wire = Wire(relay)
    try:
        wire.read()
        assert wire.command("BOGUS 1").startswith("500")
        assert wire.command("BOGUS 2").startswith("500")
        answer = wire.command("BOGUS 3")
        assert answer.startswith("500")
        assert wire.read() == "421 4.7.0 Error: too many errors"
        assert wire.closed()
    finally:
        wire.close()


def test_refused_recipients_do_not_count_as_errors(make_relay: RelayFactory) -> None:
    from mxrelay.model import Reply
    from tests.support.smtp_relay import ScriptedCheck

    refusal = Reply(550, "1.2", "Domain not found")
    relay = make_relay(
        settings=smtp_settings(error_limit=2),
        check=ScriptedCheck(replies={"nx.example.net": refusal}),
    )
    steps = [("EHLO c.example", "250 "), ("MAIL FROM:<a@example.org>", "250 2.1.0")]
    steps += [(f"RCPT TO:<u{i}@nx.example.net>", "550 5.1.2") for i in range(5)]
    steps += [("RCPT TO:<ok@example.net>", "250 2.1.5")]
    dialogue(relay, steps)


def test_garbage_bytes_do_not_break_the_server(relay: object) -> None:
    from tests.support.smtp_relay import RelayThread

    assert isinstance(relay, RelayThread)
    with socket.create_connection((relay.host, relay.port), timeout=10) as sock:
        sock.recv(1024)
        sock.sendall(b"\xff\xfe\x00\x01 garbage \x80\r\n")
        assert sock.recv(1024).startswith(b"500 5.5.2")
    dialogue(relay, [("NOOP", "250")])
