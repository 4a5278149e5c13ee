"""The one reading of an upstream reply: enhanced status of the code's class, text on one line."""

from __future__ import annotations

import pytest

from mxrelay.upstream.replies import UpstreamReply, parse_reply, remote_id


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (250, "2.0.0 Ok: queued as ABC", UpstreamReply(250, "2.0.0", "Ok: queued as ABC")),
        (450, "4.2.1 Mailbox busy", UpstreamReply(450, "4.2.1", "Mailbox busy")),
        (
            550,
            "5.1.1 User unknown\nsecond line",
            UpstreamReply(550, "5.1.1", "User unknown second line"),
        ),
        (553, "no enhanced code here", UpstreamReply(553, "", "no enhanced code here")),
        (250, "2.0.0", UpstreamReply(250, "", "2.0.0")),  # a status needs text after it
        (250, "", UpstreamReply(250, "", "")),
        (554, "5.123.456 three digits", UpstreamReply(554, "5.123.456", "three digits")),
        (554, "5.1234.1 too long", UpstreamReply(554, "", "5.1234.1 too long")),
        # A status of another class than the reply's stays in the text, as Postfix reads it.
        (550, "4.1.1 Mailbox busy", UpstreamReply(550, "", "4.1.1 Mailbox busy")),
        (451, "2.0.0 Ok", UpstreamReply(451, "", "2.0.0 Ok")),
        # Line breaks and runs of whitespace fold to one space.
        (250, "2.0.0  Ok:\tqueued\r\n", UpstreamReply(250, "2.0.0", "Ok: queued")),
    ],
)
def test_parse_reply(code: int, message: str, expected: UpstreamReply) -> None:
    assert parse_reply(code, message) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.0.0 Ok: queued as 4XyZ12", "4XyZ12"),
        ("OK queued as <abc.def@host>", "abc.def@host"),
        ("Ok: Queued As ABC", "ABC"),
        ("2.6.0 Message accepted", None),
    ],
)
def test_remote_id(text: str, expected: str | None) -> None:
    assert remote_id(text) == expected
