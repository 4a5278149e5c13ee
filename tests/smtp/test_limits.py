"""Every SMTP limit is configurable and enforced with the documented reply."""

from __future__ import annotations

import contextlib
import gc
import logging
import select
import smtplib
import socket
import time

import pytest

from mxrelay import log
from mxrelay.model import Reply
from mxrelay.rates import ThrottledLog
from tests.support.polling import eventually
from tests.support.smtp_relay import (
    RecordingSink,
    RelayFactory,
    RelayThread,
    ScriptedCheck,
    Wire,
    dialogue,
    smtp_settings,
)


def test_client_outside_allow_list_is_refused_at_connect(make_relay: RelayFactory) -> None:
    relay = make_relay(settings=smtp_settings(allowed_clients="10.0.0.0/8"))
    wire = Wire(relay)
    try:
        assert wire.read() == "554 5.7.1 <127.0.0.1>: Client host rejected: Access denied"
        assert wire.closed()
    finally:
        wire.close()
    assert relay.metric("mxrelay_smtp_connections_total", result="denied") == 1


def test_denied_clients_are_counted_each_but_logged_once_per_interval(
    make_relay: RelayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    relay = make_relay(settings=smtp_settings(allowed_clients="10.0.0.0/8"))
    with caplog.at_level(logging.INFO, logger="mxrelay.smtp"):
        for n in range(50):
            wire = Wire(relay, source=f"127.0.0.{n % 5 + 1}")
            try:
                assert wire.read().startswith("554 5.7.1")
            finally:
                wire.close()
    assert relay.metric("mxrelay_smtp_connections_total", result="denied") == 50
    [line] = [r for r in caplog.records if r.getMessage() == "client denied"]
    assert getattr(line, log.FIELDS_ATTR)["client"].startswith("127.0.0.1:")


def test_a_throttled_log_line_carries_what_it_stood_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    denied = ThrottledLog(
        logging.getLogger("mxrelay.smtp"),
        "client denied",
        logging.WARNING,
        10,
        clock=lambda: now[0],
    )
    with caplog.at_level(logging.INFO, logger="mxrelay.smtp"):
        for n in range(1000):
            now[0] = n * 0.05
            denied.event(client=f"192.0.2.{n % 20}:25")
    fields = [getattr(r, log.FIELDS_ATTR) for r in caplog.records]
    assert len(fields) == 5  # 50 seconds, one line per 10
    assert "suppressed" not in fields[0]
    assert [f["suppressed"] for f in fields[1:]] == [199, 199, 199, 199]
    assert len(fields[1]["suppressed_clients"]) == 8


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
    eventually(lambda: relay.server is None or not relay.server.active_connections)
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


def flood_without_reading(relay: RelayThread) -> socket.socket:
    """A client that pipelines `EHLO x` lines (each answered with 14 times its size) and never
    reads: it sends until the relay stops taking them, 2 MiB at most (28 MiB of replies)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((relay.host, relay.port))
    sock.settimeout(0.2)
    with contextlib.suppress(OSError):  # TimeoutError: the relay stopped reading
        for _ in range(32):
            sock.sendall(b"EHLO x\r\n" * 8192)
    return sock


async def unsent_bytes(relay: RelayThread) -> int:
    """What the relay's TCP transports hold unsent: sessions over or not, counted or not."""
    return sum(
        transport.get_write_buffer_size()
        for transport in gc.get_objects()
        if type(transport).__name__ == "TCPTransport"
        and (transport.get_extra_info("sockname") or ("", 0))[1] == relay.port
    )


def test_a_client_that_does_not_read_its_replies_is_not_read_and_times_out(
    make_relay: RelayFactory,
) -> None:
    """Past 64 KiB of unsent replies the relay takes no command and reads nothing until the
    client reads; a client that never does times out. (The relay read on and held 28 MiB.)"""
    relay = make_relay(settings=smtp_settings(junk_command_limit=100_000, command_timeout="0.5s"))
    peak = 0

    def ended() -> bool:
        nonlocal peak
        peak = max(peak, relay.call(unsent_bytes(relay)))
        return relay.server is None or not relay.server.active_connections

    sock = flood_without_reading(relay)
    try:
        eventually(ended)
    finally:
        sock.close()
    assert peak < 1024 * 1024
    assert relay.metric("mxrelay_smtp_sessions_ended_total", end="timeout") == 1


def test_an_ended_session_whose_client_does_not_read_is_dropped_and_counted_until_then(
    make_relay: RelayFactory,
) -> None:
    """The last replies get the command timeout to be read, then the connection is dropped; it
    holds its slot until then. (An ended session freed its slot at once and kept its socket and
    unsent replies for as long as the client liked: one client held 34 MB on three sockets.)"""
    relay = make_relay(
        settings=smtp_settings(
            junk_command_limit=100_000, command_timeout="1s", client_connection_limit=1
        )
    )
    sock = flood_without_reading(relay)
    try:
        second = Wire(relay)
        assert second.read() == "421 4.7.0 Error: too many connections from your address"
        second.close()
        eventually(lambda: relay.server is None or not relay.server.active_connections)
        assert relay.call(unsent_bytes(relay)) == 0
        third = Wire(relay)
        assert third.read().startswith("220")
        third.close()
    finally:
        sock.close()


def in_transaction(relay: RelayThread) -> Wire:
    """A session whose MAIL FROM has just been accepted."""
    wire = Wire(relay)
    wire.read()
    wire.command("EHLO c.example")
    assert wire.command("MAIL FROM:<a@example.org>").startswith("250")
    return wire


def in_data(relay: RelayThread) -> Wire:
    """A session that has just been told 354."""
    wire = in_transaction(relay)
    wire.command("RCPT TO:<b@example.net>")
    assert wire.command("DATA").startswith("354")
    return wire


def test_data_timeout_delivers_nothing(make_relay: RelayFactory) -> None:
    sink = RecordingSink()
    relay = make_relay(settings=smtp_settings(data_timeout="0.3s"), sink=sink)
    wire = in_data(relay)
    try:
        wire.send(b"Subject: half a message\r\n")
        assert wire.read() == "421 4.4.2 Error: timeout exceeded"
    finally:
        wire.close()
    assert sink.transactions == []
    assert sink.aborted == 1


def trickle(wire: Wire, seconds: float) -> tuple[str, float]:
    """Send one byte every 0.1 s (far inside the idle timeout) until the server answers or
    `seconds` pass; the answer and how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        with contextlib.suppress(OSError):
            wire.send(b"X")
        if select.select([wire.sock], [], [], 0.1)[0]:
            return wire.read(), time.monotonic() - started
    return "", time.monotonic() - started


def test_a_trickled_command_line_meets_the_command_deadline(make_relay: RelayFactory) -> None:
    """Every byte restarts the idle timeout; the deadline covers the whole line (Postfix
    smtpd_per_request_deadline), so a client cannot hold a session by trickling."""
    relay = make_relay(settings=smtp_settings(command_timeout="2s", command_deadline="1s"))
    wire = Wire(relay)
    try:
        wire.read()
        answer, took = trickle(wire, seconds=6)
        assert answer == "421 4.4.2 Error: timeout exceeded"
        assert 0.9 <= took < 3
    finally:
        wire.close()
    assert relay.metric("mxrelay_smtp_sessions_ended_total", end="timeout") == 1


def test_trickled_message_data_meets_the_data_deadline(make_relay: RelayFactory) -> None:
    sink = RecordingSink()
    relay = make_relay(settings=smtp_settings(data_timeout="2s", data_deadline="1s"), sink=sink)
    wire = in_data(relay)
    try:
        answer, took = trickle(wire, seconds=6)
        assert answer == "421 4.4.2 Error: timeout exceeded"
        assert 0.9 <= took < 3
    finally:
        wire.close()
    assert sink.transactions == []
    assert sink.aborted == 1


def test_a_command_within_its_deadline_restarts_it(make_relay: RelayFactory) -> None:
    """The deadline is per command: a session of many prompt commands lasts as long as it likes."""
    relay = make_relay(settings=smtp_settings(command_deadline="1s"))
    wire = Wire(relay)
    try:
        wire.read()
        for _ in range(6):
            time.sleep(0.3)
            assert wire.command("NOOP").startswith("250")
    finally:
        wire.close()


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


NX = Reply(550, "1.2", "Recipient address rejected: Domain not found")


def nx_relay(make_relay: RelayFactory, **settings: object) -> tuple[RelayThread, RecordingSink]:
    """A relay whose check refuses every recipient in nx.example.net, and what it records."""
    sink = RecordingSink()
    check = ScriptedCheck(replies={"nx.example.net": NX})
    return make_relay(settings=smtp_settings(**settings), check=check, sink=sink), sink


def test_refused_recipients_count_as_errors(make_relay: RelayFactory) -> None:
    """As Postfix counts every reject toward smtpd_hard_error_limit."""
    relay, sink = nx_relay(make_relay, error_limit=3)
    wire = in_transaction(relay)
    try:
        assert wire.command("RCPT TO:<u1@nx.example.net>").startswith("550 5.1.2")
        assert wire.command("RCPT TO:<ok@example.net>").startswith("250 2.1.5")
        assert wire.command("RCPT TO:<u2@nx.example.net>").startswith("550 5.1.2")
        assert wire.command("RCPT TO:<u3@nx.example.net>").startswith("550 5.1.2")
        assert wire.read() == "421 4.7.0 Error: too many errors"
        assert wire.closed()
    finally:
        wire.close()
    assert len(sink.refusals) == 3
    assert relay.metric("mxrelay_smtp_sessions_ended_total", end="error_limit") == 1


def test_an_accepted_message_starts_the_error_count_again(make_relay: RelayFactory) -> None:
    """Errors count "without delivering mail" (Postfix): a client that delivers its mail, each
    message with a bad recipient or two, is never cut off."""
    relay, sink = nx_relay(make_relay, error_limit=3)
    steps: list[tuple[str, str]] = [("EHLO c.example", "250 ")]
    for n in range(4):
        steps += [
            ("MAIL FROM:<a@example.org>", "250 2.1.0"),
            (f"RCPT TO:<x{n}@nx.example.net>", "550 5.1.2"),
            (f"RCPT TO:<y{n}@nx.example.net>", "550 5.1.2"),
            ("RCPT TO:<ok@example.net>", "250 2.1.5"),
            ("DATA", "354"),
            ("Subject: s\r\n\r\nbody\r\n.", "250 2.0.0"),
        ]
    dialogue(relay, steps)
    assert len(sink.transactions) == 4


def test_recipients_past_the_overshoot_limit_count_as_errors(make_relay: RelayFactory) -> None:
    """452 4.5.3 past the recipient limit is what a client that splits big lists expects (RFC
    5321 4.5.3.1.10); only RCPTs past the overshoot limit count as errors, as in Postfix."""
    relay = make_relay(
        settings=smtp_settings(recipient_limit=1, recipient_overshoot_limit=2, error_limit=2)
    )
    wire = in_transaction(relay)
    try:
        assert wire.command("RCPT TO:<a@example.net>").startswith("250")
        for n in range(4):
            assert wire.command(f"RCPT TO:<b{n}@example.net>").startswith("452 4.5.3"), n
        assert wire.read() == "421 4.7.0 Error: too many errors"
    finally:
        wire.close()


def test_junk_commands_past_their_limit_count_as_errors(make_relay: RelayFactory) -> None:
    """Postfix's smtpd_junk_command_limit: a session that only says NOOP or RSET ends too."""
    relay = make_relay(settings=smtp_settings(junk_command_limit=3, error_limit=2))
    steps = [("EHLO c.example", "250-"), ("NOOP", "250"), ("RSET", "250"), ("VRFY x", "252")]
    steps += [  # an accepted message starts both counts again
        ("MAIL FROM:<a@example.org>", "250"),
        ("RCPT TO:<b@example.net>", "250"),
        ("DATA", "354"),
        ("Subject: s\r\n\r\nbody\r\n.", "250"),
    ]
    steps += [("NOOP", "250")] * 3 + [("HELP", "214"), ("NOOP", "250")]
    wire = Wire(relay)
    try:
        wire.read()
        for command, expected in steps:
            assert wire.command(command).startswith(expected), command
        assert wire.read() == "421 4.7.0 Error: too many errors"
    finally:
        wire.close()


def test_a_repeated_hello_is_a_junk_command(make_relay: RelayFactory) -> None:
    """EHLO ends a transaction as RSET does: MAIL, RCPT, EHLO in a loop had recipients looked
    up and logged without end, and was never cut off. The 421 follows the EHLO's own reply."""
    check = ScriptedCheck()
    relay = make_relay(settings=smtp_settings(junk_command_limit=2, error_limit=2), check=check)
    wire = Wire(relay, timeout=3)
    try:
        wire.read()
        assert wire.command("EHLO c.example").startswith("250-")  # the first is no junk
        for n in range(4):
            assert wire.command("MAIL FROM:<a@example.org>").startswith("250")
            assert wire.command(f"RCPT TO:<x@d{n}.example.net>").startswith("250")
            assert wire.command("HELO c.example" if n % 2 else "EHLO c.example").startswith("250")
        assert wire.read() == "421 4.7.0 Error: too many errors"
    finally:
        wire.close()
    assert len(check.seen) == 4


def test_replies_wait_past_the_soft_error_limit(make_relay: RelayFactory) -> None:
    relay = make_relay(
        settings=smtp_settings(soft_error_limit=2, error_sleep_time="0.4s", error_limit=10)
    )
    wire = Wire(relay)
    try:
        wire.read()
        for n in range(2):
            started = time.monotonic()
            assert wire.command(f"BOGUS {n}").startswith("500")
            assert time.monotonic() - started < 0.4, n
        started = time.monotonic()
        assert wire.command("BOGUS 2").startswith("500")  # the third error: over the soft limit
        assert wire.command("NOOP").startswith("250")  # every reply waits from now on
        assert time.monotonic() - started >= 0.8
    finally:
        wire.close()


def test_a_pipelined_flood_of_refused_recipients_is_cut_off(make_relay: RelayFactory) -> None:
    """Default limits (but the error sleep): 2,000 refused RCPTs in one write get 20 replies and
    a 421; only 20 recipients are looked up, recorded and logged."""
    check = ScriptedCheck(replies={"nx.example.net": NX})
    sink = RecordingSink()
    relay = make_relay(settings=smtp_settings(error_sleep_time="0s"), check=check, sink=sink)
    flood = b"".join(b"RCPT TO:<u%d@nx.example.net>\r\n" % n for n in range(2000))
    with socket.create_connection((relay.host, relay.port), timeout=10) as sock:
        answers = sock.makefile("rb")
        answers.readline()
        sock.sendall(b"HELO c.example\r\nMAIL FROM:<a@example.org>\r\n")
        answers.readline()
        answers.readline()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(flood)
        lines = answers.read().splitlines()
    assert [line[:3] for line in lines] == [b"550"] * 20 + [b"421"]
    assert len(check.seen) == 20
    assert len(sink.refusals) == 20


def test_one_transaction_records_and_logs_at_most_the_refusal_log_limit(
    make_relay: RelayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    relay, sink = nx_relay(make_relay, error_limit=1000, error_sleep_time="0s", refusal_log_limit=5)
    steps = [("EHLO c.example", "250 "), ("MAIL FROM:<a@example.org>", "250 2.1.0")]
    steps += [(f"RCPT TO:<u{n}@nx.example.net>", "550 5.1.2") for n in range(50)]
    steps += [("RCPT TO:<ok@example.net>", "250"), ("DATA", "354"), ("s: s\r\n\r\nb\r\n.", "250")]
    with caplog.at_level(logging.INFO, logger="mxrelay.smtp"):
        dialogue(relay, steps)
    assert [r.address for r in sink.refusals] == [f"u{n}@nx.example.net" for n in range(5)]
    [transaction] = sink.transactions
    assert len(transaction.refused) == 5
    assert len([r for r in caplog.records if r.getMessage() == "recipient refused"]) == 5
    [line] = [r for r in caplog.records if r.getMessage() == "transaction"]
    fields = getattr(line, log.FIELDS_ATTR)
    assert (len(fields["refused"]), fields["refused_more"]) == (5, 45)
    assert (
        relay.metric("mxrelay_smtp_recipients_total", verdict="rejected", reason="nxdomain") == 50
    )


def test_garbage_bytes_do_not_break_the_server(relay: object) -> None:
    from tests.support.smtp_relay import RelayThread

    assert isinstance(relay, RelayThread)
    with socket.create_connection((relay.host, relay.port), timeout=10) as sock:
        sock.recv(1024)
        sock.sendall(b"\xff\xfe\x00\x01 garbage \x80\r\n")
        assert sock.recv(1024).startswith(b"500 5.5.2")
    dialogue(relay, [("NOOP", "250")])
