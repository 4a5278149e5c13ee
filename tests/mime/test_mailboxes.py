"""Address lists with display names, as Mailpit's From, To, Cc, Bcc and ReplyTo."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime.mailboxes import LIST_LIMIT, Mailbox, mailboxes


def test_common_forms_quoted_commas_encoded_names_and_groups() -> None:
    value = (
        'Alex <alex@example.net>, "Doe, Jane" <jane@example.net>, bob@example.net, '
        "=?utf-8?q?J=C3=BCrgen?= <j@example.net>, Team: t1@example.net, t2@example.net;, "
        "not an address, (comment only)"
    )
    assert mailboxes(value) == [
        Mailbox("Alex", "alex@example.net"),
        Mailbox("Doe, Jane", "jane@example.net"),
        Mailbox("", "bob@example.net"),
        Mailbox("Jürgen", "j@example.net"),
        Mailbox("", "t1@example.net"),
        Mailbox("", "t2@example.net"),
    ]
    assert mailboxes("undisclosed-recipients:;") == []
    assert mailboxes("") == []


def test_bounded() -> None:
    value = ", ".join(f"u{n}@example.net" for n in range(LIST_LIMIT + 10))
    assert len(mailboxes(value)) == LIST_LIMIT
    assert mailboxes("(" * 5000 + "a@b.test") == []


@given(st.text(max_size=200))
def test_any_text(value: str) -> None:
    for box in mailboxes(value):
        assert "@" in box.address
