"""SMTP dialogues with real clients against the engine and the relay policy.

Table-driven where the dialogue is a list of (command, expected reply) pairs, as in Mailpit's
smtpd tests; raw sockets where a client library would hide what is on the wire.
"""

from __future__ import annotations

import smtplib

import pytest

from mxrelay.model import Reply
from tests.support.smtp_relay import (
    RecordingSink,
    RelayFactory,
    RelayThread,
    ScriptedCheck,
    Wire,
    dialogue,
)

NXDOMAIN = Reply(550, "1.2", "Recipient address rejected: Domain not found")
TEMPFAIL = Reply(451, "4.3", "Recipient address rejected: Temporary DNS failure")


SEQUENCE_CASES = [
    pytest.param(
        [("MAIL FROM:<a@example.org>", "503 5.5.1 Error: send HELO/EHLO first")],
        id="mail-before-helo",
    ),
    pytest.param(
        [
            ("EHLO c.example", "250 "),
            ("RCPT TO:<b@example.net>", "503 5.5.1 Error: need MAIL command"),
        ],
        id="rcpt-before-mail",
    ),
    pytest.param(
        [("EHLO c.example", "250 "), ("DATA", "503 5.5.1 Error: need MAIL command")],
        id="data-before-mail",
    ),
    pytest.param(
        [
            ("EHLO c.example", "250 "),
            ("MAIL FROM:<a@example.org>", "250 2.1.0"),
            ("DATA", "503 5.5.1 Error: need RCPT command"),
        ],
        id="data-before-rcpt",
    ),
    pytest.param(
        [
            ("EHLO c.example", "250 "),
            ("MAIL FROM:<a@example.org>", "250 2.1.0"),
            ("MAIL FROM:<a@example.org>", "503 5.5.1 Error: nested MAIL command"),
        ],
        id="nested-mail",
    ),
    pytest.param([("EHLO", "501 5.5.4 Syntax: EHLO hostname")], id="ehlo-without-name"),
    pytest.param([("HELO", "501 5.5.4 Syntax: HELO hostname")], id="helo-without-name"),
    pytest.param([("FOO bar", "500 5.5.2 Error: command not recognized")], id="unknown-command"),
    pytest.param(
        [("EHLO c.example", "250 "), ("MAIL FROM:a@example.org", "250 2.1.0")],
        id="sender-without-brackets",
    ),
    pytest.param(
        [
            ("EHLO c.example", "250 "),
            ("MAIL FROM:<a b@example.org>", "501 5.1.7 Bad sender address syntax"),
        ],
        id="bad-sender",
    ),
    pytest.param([("EHLO c.example", "250 "), ("MAIL FROM:<>", "250 2.1.0")], id="null-sender"),
    pytest.param(
        [
            ("EHLO c.example", "250 "),
            (
                "MAIL FROM:<a@example.org> SIZE=999999999999",
                "552 5.3.4 Message size exceeds fixed limit",
            ),
        ],
        id="declared-size-too-big",
    ),
    pytest.param(
        [
            ("EHLO c.example", "250 "),
            ("MAIL FROM:<a@example.org> SIZE=abc", "501 5.5.4 Bad SIZE parameter syntax"),
        ],
        id="bad-size",
    ),
    pytest.param(
        [
            ("EHLO c.example", "250 "),
            # str.isdigit() but not int(): the session ended with 421 and a traceback
            ("MAIL FROM:<a@example.org> SIZE=\u00b2", "501 5.5.4 Bad SIZE parameter syntax"),
            # int() reads these as 123, and passthrough forwarded them as written
            ("MAIL FROM:<a@example.org> SIZE=\u0661\u0662\u0663", "501 5.5.4 Bad SIZE"),
            ("MAIL FROM:<a@example.org> SIZE=1" + "0" * 20, "501 5.5.4 Bad SIZE"),  # 21 digits
            ("MAIL FROM:<a@example.org> SIZE=" + "0" * 16 + "1000", "250 2.1.0"),  # 20 digits
        ],
        id="size-is-1-to-20-ascii-digits",
    ),
    pytest.param(
        [
            ("EHLO c.example", "250 "),
            ("MAIL FROM:<a@example.org> RET=FULL", "555 5.5.4 Unsupported option: RET"),
        ],
        id="unsupported-param",
    ),
    pytest.param(
        [("EHLO c.example", "250 "), ("MAIL FROM:<a@example.org> BODY=BINARYMIME", "555 5.5.4")],
        id="binarymime",
    ),
    pytest.param(
        [
            ("HELO c.example", "250 relay.example.net"),
            ("MAIL FROM:<a@example.org> BODY=8BITMIME", "555 5.5.4"),
        ],
        id="params-after-helo",
    ),
    pytest.param(
        [
            ("EHLO c.example", "250 "),
            ("MAIL FROM:<ü@example.org>", "553 5.6.7 Must declare SMTPUTF8"),
        ],
        id="utf8-sender-without-smtputf8",
    ),
    pytest.param(
        [("EHLO c.example", "250 "), ("MAIL FROM:<ü@example.org> SMTPUTF8", "250 2.1.0")],
        id="utf8-sender-with-smtputf8",
    ),
    pytest.param(
        [
            ("EHLO c.example", "250 "),
            ("MAIL FROM:<a@example.org>", "250 2.1.0"),
            ("RCPT TO:<b@example.net> NOTIFY=NEVER", "555 5.5.4 Unsupported option: NOTIFY"),
        ],
        id="rcpt-param",
    ),
    pytest.param(
        [
            ("EHLO c.example", "250 "),
            ("MAIL FROM:<a@example.org>", "250 2.1.0"),
            ("RCPT TO:<b@example.net", "501 5.5.4 Syntax: RCPT TO:<address>"),
        ],
        id="unbalanced-bracket",
    ),
    pytest.param(
        [
            ("EHLO c.example", "250 "),
            ("MAIL FROM:<a@example.org>", "250 2.1.0"),
            ("RSET", "250 2.0.0 Ok"),
            ("RCPT TO:<b@example.net>", "503 5.5.1"),
        ],
        id="rset-ends-transaction",
    ),
    pytest.param(
        [
            ("RSET x", "501 5.5.4"),
            ("NOOP", "250 2.0.0 Ok"),
            ("VRFY someone", "252 2.0.0"),
            ("EXPN list", "502 5.5.1"),
            ("BDAT 10", "502 5.5.1"),
            ("HELP", "214 2.0.0"),
        ],
        id="other-commands",
    ),
    pytest.param([("QUIT", "221 2.0.0 Bye")], id="quit"),
    pytest.param(
        [
            ("noop", "250 2.0.0 Ok"),
            ("VRFY", "501 5.5.4 Syntax: VRFY address"),
            ("TURN", "502 5.5.1 Error: command not implemented"),
            ("ETRN example.org", "502 5.5.1 Error: command not implemented"),
            ("STARTTLS", "502 5.5.1 Error: command not implemented"),  # no certificate configured
            ("AUTH PLAIN", "503 5.5.1 Error: authentication not enabled"),
            ("ehlo c.example", "250 "),
            ("MAIL <a@example.org>", "501 5.5.4 Syntax: MAIL FROM:<address>"),
            ("mail from:<a@example.org>", "250 2.1.0"),
            ("RCPT <b@example.net>", "501 5.5.4 Syntax: RCPT TO:<address>"),
            ("RCPT TO:<b@example.net> NOTIFY=NEVER", "555 5.5.4 Unsupported option: NOTIFY"),
            ("rcpt to: <b@example.net>", "250 2.1.5"),
            ("Data x", "501 5.5.4 Syntax error: no arguments allowed"),
        ],
        id="verbs-in-any-case-and-their-arguments",
    ),
]


@pytest.mark.parametrize("steps", SEQUENCE_CASES)
def test_command_sequence_and_syntax(relay: RelayThread, steps: list[tuple[str, str]]) -> None:
    dialogue(relay, steps)


def test_ehlo_advertises_extensions(relay: RelayThread) -> None:
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as client:
        code, _ = client.ehlo("client.example")
        assert code == 250
        assert client.esmtp_features["size"] == str(25 * 1024 * 1024)
        for extension in ("8bitmime", "pipelining", "enhancedstatuscodes", "smtputf8"):
            assert extension in client.esmtp_features
        assert "starttls" not in client.esmtp_features  # no certificate configured
        assert "auth" not in client.esmtp_features  # no users configured


def test_mixed_verdicts_then_data_for_the_accepted_one(make_relay: RelayFactory) -> None:
    """T110: ok / NXDOMAIN / SERVFAIL, then DATA is accepted for the one good recipient."""
    check = ScriptedCheck(replies={"nx.example.net": NXDOMAIN, "fail.example.net": TEMPFAIL})
    sink = RecordingSink()
    relay = make_relay(check=check, sink=sink)
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as client:
        client.ehlo("client.example")
        assert client.mail("a@example.org")[0] == 250
        assert client.rcpt("ok@ok.example.net") == (250, b"2.1.5 Ok")
        code, text = client.rcpt("u@nx.example.net")
        assert (code, text[:5]) == (550, b"5.1.2")
        code, text = client.rcpt("u@fail.example.net")
        assert (code, text[:5]) == (451, b"4.4.3")
        assert client.data(b"Subject: hi\r\n\r\nbody\r\n")[0] == 250
    assert len(sink.transactions) == 1
    transaction = sink.transactions[0]
    assert transaction.recipients == ("ok@ok.example.net",)
    assert transaction.data == b"Subject: hi\r\n\r\nbody\r\n"
    assert [r.address for r in transaction.refused] == ["u@nx.example.net", "u@fail.example.net"]
    assert [r.address for r in sink.refusals] == ["u@nx.example.net", "u@fail.example.net"]
    assert relay.metric("mxrelay_smtp_recipients_total", verdict="accepted", reason="ok") == 1
    assert relay.metric("mxrelay_smtp_recipients_total", verdict="rejected", reason="nxdomain") == 1
    assert relay.metric("mxrelay_smtp_recipients_total", verdict="tempfail", reason="tempfail") == 1


def test_every_recipient_refused_then_data(make_relay: RelayFactory) -> None:
    """T111: DATA after only refused recipients gets 554 5.5.1."""
    relay = make_relay(check=ScriptedCheck(replies={"nx.example.net": NXDOMAIN}))
    dialogue(
        relay,
        [
            ("EHLO c.example", "250 "),
            ("MAIL FROM:<a@example.org>", "250 2.1.0"),
            ("RCPT TO:<u@nx.example.net>", "550 5.1.2"),
            ("RCPT TO:<v@nx.example.net>", "550 5.1.2"),
            ("DATA", "554 5.5.1 Error: no valid recipients"),
            ("MAIL FROM:<a@example.org>", "250 2.1.0"),
        ],
    )


def test_pipelined_rcpts_answer_in_order_despite_slow_lookup(make_relay: RelayFactory) -> None:
    """T114: replies come back in command order; a slow lookup does not reorder them."""
    check = ScriptedCheck(
        replies={"nx.example.net": NXDOMAIN, "fail.example.net": TEMPFAIL},
        delays={"slow.example.net": 0.3},
    )
    sink = RecordingSink()
    relay = make_relay(check=check, sink=sink)
    wire = Wire(relay)
    try:
        wire.read()
        assert wire.command("EHLO c.example").startswith("250-relay.example.net")
        wire.send(
            b"MAIL FROM:<a@example.org>\r\n"
            b"RCPT TO:<a@slow.example.net>\r\n"
            b"RCPT TO:<b@nx.example.net>\r\n"
            b"RCPT TO:<c@fail.example.net>\r\n"
            b"RCPT TO:<d@ok.example.net>\r\n"
            b"DATA\r\n"
        )
        answers = [wire.read() for _ in range(6)]
        assert [a[:9] for a in answers] == [
            "250 2.1.0",
            "250 2.1.5",
            "550 5.1.2",
            "451 4.4.3",
            "250 2.1.5",
            "354 End d",
        ]
        wire.send(b"Subject: x\r\n\r\n.leading dot\r\n..two\r\n.\r\nQUIT\r\n")
        assert wire.read().startswith("250 ")
        assert wire.read().startswith("221 ")
    finally:
        wire.close()
    assert sink.transactions[0].recipients == ("a@slow.example.net", "d@ok.example.net")
    assert sink.transactions[0].data == b"Subject: x\r\n\r\nleading dot\r\n.two\r\n"


def test_reply_classes_agree_with_enhanced_codes(make_relay: RelayFactory) -> None:
    """T112: every reply's enhanced class equals its code's first digit; refusals name the address."""
    relay = make_relay(
        check=ScriptedCheck(replies={"nx.example.net": NXDOMAIN, "t.example.net": TEMPFAIL})
    )
    wire = Wire(relay)
    try:
        wire.read()
        answers = [
            wire.command(line)
            for line in (
                "EHLO c.example",
                "MAIL FROM:<a@example.org>",
                "RCPT TO:<x@nx.example.net>",
                "RCPT TO:<x@t.example.net>",
                "RCPT TO:<x@ok.example.net>",
                "VRFY x",
                "FOO",
                "RSET",
            )
        ]
    finally:
        wire.close()
    for answer in answers:
        last = answer.splitlines()[-1]
        code, enhanced = last[:3], last[4:9]
        if enhanced[:1].isdigit() and enhanced[1:2] == ".":
            assert enhanced[0] == code[0], last


def test_8bit_and_smtputf8_message(make_relay: RelayFactory) -> None:
    sink = RecordingSink()
    relay = make_relay(sink=sink)
    body = "Subject: Grüße\r\n\r\nÄrger über 8-bit Daten\r\n".encode()
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as client:
        client.ehlo("client.example")
        client.sendmail(
            "jürgen@exämple.org",
            ["zoë@example.net"],
            body,
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )
    transaction = sink.transactions[0]
    assert transaction.data == body
    assert transaction.smtputf8
    assert transaction.body_8bitmime
    assert transaction.mail_from == "jürgen@exämple.org"
