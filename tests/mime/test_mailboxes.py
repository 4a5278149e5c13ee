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


def test_a_byte_its_charset_refuses_is_a_replacement_character() -> None:
    # Either path: the pattern's (decode_words), and the standard library's parser (a comment,
    # a stray colon), which leaves such a byte as a lone surrogate.
    for value in (
        "=?utf-8?q?J=FCrgen?= <j@example.net>",
        "=?utf-8?q?J=FCrgen?= (team) <j@example.net>",
    ):
        assert mailboxes(value) == [Mailbox("J\ufffdrgen", "j@example.net")]
    assert mailboxes("=?UTF-8?Q?=C3=9Cn=:C3=B6?= <n@example.org>") == [
        Mailbox("Ün=:C3\ufffd", "n@example.org")
    ]


@given(st.binary(max_size=24), st.sampled_from(["", " (c)", " x:y"]))
def test_names_are_always_utf8(word: bytes, tail: str) -> None:
    escaped = "".join(f"={byte:02X}" for byte in word)
    for box in mailboxes(f"=?utf-8?q?{escaped}?={tail} <a@example.net>"):
        box.name.encode("utf-8")  # what a JSON response must encode
