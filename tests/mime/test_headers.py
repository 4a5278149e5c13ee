"""Envelope-authoritative To/Cc/Bcc: a table of real header shapes, and properties judged by the
stdlib's RFC 5322 parser (the set of header recipients after the change is the envelope)."""

from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime import addresses, headers
from mxrelay.mime.headers import (
    ENTRY_COUNT_LIMIT,
    LABEL_LENGTH,
    PARSER_CHARACTERS,
    REPORTED_CHANGES,
    HeaderPolicy,
    reconcile_headers,
)
from mxrelay.mime.parse import HEADER_LIMIT
from mxrelay.model import Mailbox, RecipientChange
from tests.support.stdlib_parser import RecordingParser

BODY = b"\r\nbody line\r\n"


def _recipients(data: bytes) -> set[Mailbox]:
    """Every address Exchange would see in To/Cc/Bcc, by the stdlib's parser."""
    # Parsed from text: the bytes parser would keep non-ASCII header bytes as surrogate escapes.
    msg = email.message_from_string(data.decode("utf-8"), policy=email.policy.default)
    found: set[Mailbox] = set()
    for name in ("to", "cc", "bcc"):
        for header in msg.get_all(name) or []:
            for address in header.addresses:
                found.add(Mailbox.parse(f"{address.username}@{address.domain}"))
    return found


def _envelope(recipients: list[str]) -> set[Mailbox]:
    return {Mailbox.parse(r) for r in recipients}


def test_nothing_to_change_keeps_the_bytes() -> None:
    data = (
        b"From: a@example.org\r\nTo: =?utf-8?B?SsO2cmc=?=\r\n <Joerg@Example.COM>,\r\n"
        b' "Doe, John" <john@example.com>\r\nCc: Team: t@example.com;\r\n' + BODY
    )
    result = reconcile_headers(data, ["Joerg@example.com", "john@EXAMPLE.com", "t@example.com"])
    assert result.data == data
    assert not result.report.changes


def test_bcc_only_recipient_is_added() -> None:
    data = b"From: a@example.org\r\nTo: x@example.com\r\nSubject: s\r\n" + BODY
    result = reconcile_headers(data, ["x@example.com", "hidden@example.net"])
    assert result.data == (
        b"From: a@example.org\r\nTo: x@example.com\r\nSubject: s\r\nBcc: hidden@example.net\r\n"
        + BODY
    )
    assert [(c.field, c.entry, c.change) for c in result.report.changes] == [
        ("bcc", "hidden@example.net", RecipientChange.ADDED)
    ]


def test_existing_bcc_field_is_extended() -> None:
    data = b"To: x@example.com\r\nBcc: one@example.com\r\n" + BODY
    result = reconcile_headers(data, ["x@example.com", "one@example.com", "two@example.com"])
    assert result.data == (
        b"To: x@example.com\r\nBcc: one@example.com,\r\n two@example.com\r\n" + BODY
    )


def test_header_only_recipient_is_removed_and_folding_kept() -> None:
    data = (
        b"From: a@example.org\r\n"
        b'To: "Doe, John" <john@example.com>,\r\n intruder@refused.example,\r\n'
        b" =?utf-8?Q?J=C3=B6rg?= <joerg@example.com>\r\n"
        b"Subject: s\r\n" + BODY
    )
    result = reconcile_headers(data, ["john@example.com", "joerg@example.com"])
    assert result.data == (
        b"From: a@example.org\r\n"
        b'To: "Doe, John" <john@example.com>,\r\n =?utf-8?Q?J=C3=B6rg?= <joerg@example.com>\r\n'
        b"Subject: s\r\n" + BODY
    )
    assert [(c.field, c.entry) for c in result.report.changes] == [
        ("to", "intruder@refused.example")
    ]


def test_reject_policy_refuses_and_keeps_bytes() -> None:
    data = b"To: ok@example.com, intruder@refused.example\r\n" + BODY
    result = reconcile_headers(data, ["ok@example.com", "new@example.com"], HeaderPolicy.REJECT)
    assert result.refused
    assert result.data == data
    assert [(c.entry, c.change) for c in result.report.changes] == [
        ("intruder@refused.example", RecipientChange.REFUSED)
    ]


def test_groups() -> None:
    data = (
        b"To: undisclosed-recipients:;\r\n"
        b"Cc: Team: a@example.com, (ops) b@example.com;, c@example.com\r\n" + BODY
    )
    result = reconcile_headers(data, ["b@example.com"])
    assert result.data == (
        b"To: undisclosed-recipients:;\r\nCc: Team: (ops) b@example.com;\r\n" + BODY
    )
    assert _recipients(result.data) == _envelope(["b@example.com"])
    # A group that loses every member stays, empty.
    emptied = reconcile_headers(data, ["z@example.com"])
    assert b"Cc: Team:;\r\n" in emptied.data
    assert _recipients(emptied.data) == _envelope(["z@example.com"])


def test_multiple_to_fields_and_mixed_case() -> None:
    data = b"TO: A@Example.COM\r\nto: b@EXAMPLE.com\r\ncc: C@example.com\r\n" + BODY
    result = reconcile_headers(data, ["A@example.com", "b@example.com", "c@example.com"])
    # Domains compare case-insensitively; local parts as written.
    assert b"TO: A@Example.COM\r\nto: b@EXAMPLE.com\r\n" in result.data
    assert [(c.field, c.entry, c.change.value) for c in result.report.changes] == [
        ("cc", "C@example.com", "removed"),
        ("bcc", "c@example.com", "added"),
    ]
    assert b"\ncc:" not in result.data  # a field left empty is removed


def test_quoted_local_parts_comments_and_idn() -> None:
    data = (
        b'To: "john smith"@example.com (work), J\xc3\xb6rg <joerg@b\xc3\xbccher.example>\r\n' + BODY
    )
    recipients = ['"john smith"@example.com', "joerg@xn--bcher-kva.example"]
    result = reconcile_headers(data, recipients)
    assert result.data == data
    # An envelope IDN domain is written in A-label form when it has to be added.
    added = reconcile_headers(
        b"To: x@example.com\r\n" + BODY, ["x@example.com", "u@bücher.example"]
    )
    assert b"Bcc: u@xn--bcher-kva.example\r\n" in added.data


def test_display_names_with_periods_and_routes_are_kept() -> None:
    # RFC 5322 obs-phrase and obs-route: the stdlib parser reports them as obsolete syntax, which
    # once made the entries unreadable (removed under strip, refused under reject).
    data = (
        b"From: app@contoso.example\r\nTo: John Q. Public <john@example.net>\r\n"
        b"Cc: Dr. Alice Smith <alice@example.net>, <@relay.example:bob@example.net>\r\n" + BODY
    )
    envelope = ["john@example.net", "alice@example.net", "bob@example.net"]
    for policy in HeaderPolicy:
        result = reconcile_headers(data, envelope, policy)
        assert (result.data, result.report.changes, result.refused) == (data, (), False)


def test_unparseable_entries_are_removed() -> None:
    data = b"To: Just A Name, ok@example.com, <broken\r\n" + BODY
    result = reconcile_headers(data, ["ok@example.com"])
    assert _recipients(result.data) == _envelope(["ok@example.com"])
    assert result.report.count(RecipientChange.REMOVED) == 2


def test_lf_input_and_headers_only_messages() -> None:
    assert reconcile_headers(b"To: a@b.example\n\nx", ["c@b.example"]).data == (
        b"Bcc: c@b.example\n\nx"
    )
    assert reconcile_headers(b"Subject: s", ["c@b.example"]).data == (
        b"Subject: s\r\nBcc: c@b.example\r\n"
    )


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

_LOCAL = st.sampled_from(["a", "b", "C", "john.doe", '"x y"'])
_DOMAIN = st.sampled_from(
    ["example.com", "EXAMPLE.com", "b\u00fccher.example", "xn--bcher-kva.example"]
)
_ADDRESS = st.builds(lambda local, domain: f"{local}@{domain}", _LOCAL, _DOMAIN)
_NAME = st.sampled_from(["", "Alex", '"Doe, J."', "=?utf-8?B?SsO2cmc=?=", "(comment)"])


@st.composite
def _entry(draw: st.DrawFn) -> str:
    address = draw(_ADDRESS)
    name = draw(_NAME)
    if name.startswith("("):
        return f"{address} {name}"
    return f"{name} <{address}>" if name else address


@st.composite
def _field(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(["To", "Cc", "Bcc", "to"]))
    entries = draw(st.lists(_entry(), min_size=1, max_size=4))
    if draw(st.booleans()):
        group = draw(st.lists(_entry(), max_size=3))
        entries.append(f"Team: {', '.join(group)};")
    separator = draw(st.sampled_from([", ", ",\r\n ", ",\r\n\t"]))
    return f"{name}: {separator.join(entries)}"


@given(
    st.lists(_field(), max_size=4),
    st.lists(_ADDRESS, min_size=1, max_size=4),
)
def test_headers_name_exactly_the_envelope(fields: list[str], envelope: list[str]) -> None:
    head = "From: sender@example.org\r\n" + "".join(f + "\r\n" for f in fields)
    data = head.encode("utf-8") + b"Subject: s\r\n" + BODY
    result = reconcile_headers(data, envelope)
    assert _recipients(result.data) == _envelope(envelope)
    # Never an address that is not in the envelope; everything outside To/Cc/Bcc untouched.
    assert result.data.startswith(b"From: sender@example.org\r\n")
    assert b"\r\nSubject: s\r\n" in result.data
    assert result.data.endswith(BODY)
    again = reconcile_headers(result.data, envelope)
    assert again.data == result.data
    assert not again.report.changes
    if _recipients(data) == _envelope(envelope):
        assert result.data == data


def test_a_header_block_beyond_the_limit_cannot_be_checked() -> None:
    data = (
        b"To: a@example.com\r\n"
        + b"X-A: a\r\n" * (HEADER_LIMIT // 8)
        + b"To: x@evil.example\r\n"
        + BODY
    )
    for policy in HeaderPolicy:
        result = reconcile_headers(data, ["a@example.com"], policy)
        assert result.refused
        assert result.data == data
        assert result.report.describe() == (
            f"headers: not checked: the header block is larger than {HEADER_LIMIT} bytes"
        )


def test_entries_beyond_the_bounds_name_no_recipient() -> None:
    deep = "(" * 40 + "x" + ")" * 40
    long = "=?utf-8?q?a?= " * 200
    data = f"To: {deep} a@example.com, {long}<a@example.com>, b@example.com\r\n".encode() + BODY
    result = reconcile_headers(data, ["a@example.com", "b@example.com"])
    assert _recipients(result.data) == _envelope(["a@example.com", "b@example.com"])
    assert result.report.count(RecipientChange.REMOVED) == 2
    assert result.report.count(RecipientChange.ADDED) == 1  # a@ again, in Bcc
    labels = [change.entry for change in result.report.changes]
    assert all(len(label) <= LABEL_LENGTH + 1 for label in labels)


def test_only_so_many_entries_are_parsed() -> None:
    wanted = [f"u{i}@example.com" for i in range(ENTRY_COUNT_LIMIT + 5)]
    data = ("To: " + ", ".join(wanted) + "\r\n").encode() + BODY
    result = reconcile_headers(data, wanted)
    # The entries past the limit are not read: removed from To, and put back in Bcc.
    assert result.report.count(RecipientChange.REMOVED) == 5
    assert result.report.count(RecipientChange.ADDED) == 5
    assert _recipients(result.data) == _envelope(wanted)


def test_the_report_names_so_many_changes() -> None:
    strangers = ", ".join(f"s{i}@evil.example" for i in range(REPORTED_CHANGES + 10))
    result = reconcile_headers(f"To: {strangers}\r\n".encode() + BODY, ["a@example.com"])
    assert len(result.report.changes) == REPORTED_CHANGES + 11
    assert result.report.describe().endswith("; and 11 more")


def test_the_stdlib_parser_is_handed_a_bounded_amount_per_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = RecordingParser()
    monkeypatch.setattr(addresses, "_PARSER", parser)
    monkeypatch.setattr(headers, "PARSER_CHARACTERS", 8 * 1024)  # 64 KiB takes over a second
    assert PARSER_CHARACTERS > 8 * 1024
    entry = "(a)" * 680  # within ENTRY_LIMIT and NESTING_LIMIT: ~40 ms of the parser each
    value = ",\r\n ".join([entry] * 100).encode()
    data = b"To: " + value + b"\r\nCc: Dr. Alice <alice@example.net>\r\n" + BODY
    result = reconcile_headers(data, ["alice@example.net"])
    assert 0 < sum(parser.handed) <= 8 * 1024
    assert len(parser.handed) == 4  # 4 entries fit, then Dr. Alice's does not either
    # Entries past the budget name no recipient, as past any other bound.
    assert result.report.count(RecipientChange.REMOVED) == 101
    assert result.report.count(RecipientChange.ADDED) == 1  # alice, now named in Bcc
