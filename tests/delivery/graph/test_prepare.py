"""Sending mailbox, sender allow-list, size limit, completed headers and a job prepared (pure)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ulid import ULID

from mxrelay.config import load_settings
from mxrelay.delivery.errors import PermanentFailure
from mxrelay.delivery.graph.prepare import (
    RECEIVED_ALLOWANCE,
    MailboxSource,
    address_allowed,
    choose_mailbox,
    complete_headers,
    field_names,
    graph_size_limit,
    header_address,
    header_from,
    message_id_for,
    message_sender_allowed,
    over_graph_size,
    prepare,
    received_at,
    sender_allowed,
    stored_author,
)
from mxrelay.delivery.transport import DeliveryJob
from mxrelay.mime.headers import HeaderPolicy, reconcile_headers
from mxrelay.model import Peer, SessionInfo, Transaction
from mxrelay.received import received_header

ACCEPTED = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fixed", "source", "envelope", "author", "expected"),
    [
        ("relay@c.example", MailboxSource.HEADER, "a@c.example", "b@c.example", "relay@c.example"),
        (None, MailboxSource.HEADER, "a@c.example", "b@c.example", "b@c.example"),
        (None, MailboxSource.ENVELOPE, "a@c.example", "b@c.example", "a@c.example"),
        (None, MailboxSource.HEADER, "<a@c.example>", None, "a@c.example"),
        (None, MailboxSource.ENVELOPE, "", "b@c.example", "b@c.example"),
        (None, MailboxSource.ENVELOPE, "<>", None, None),
    ],
)
def test_choose_mailbox(
    fixed: str | None,
    source: MailboxSource,
    envelope: str,
    author: str | None,
    expected: str | None,
) -> None:
    assert choose_mailbox(fixed, source, envelope, author) == expected


@pytest.mark.parametrize(
    ("envelope", "author", "allowed"),
    [
        ("app@contoso.example", "app@contoso.example", True),
        ("APP@Contoso.Example", "noreply@contoso.example", True),  # @domain entry, any case
        ("bounce@contoso.example", "ceo@evil.example", False),  # the spoofing gap, closed
        ("spoof@evil.example", "app@contoso.example", False),
        ("", "app@contoso.example", True),  # null sender: the From alone decides
        ("", None, False),
        ("x@bücher.example", None, True),  # IDN compares in A-label form
    ],
)
def test_both_identities_must_be_allowed(envelope: str, author: str | None, allowed: bool) -> None:
    entries = ("@contoso.example", "x@xn--bcher-kva.example")
    assert sender_allowed(envelope, author, entries) is allowed


def test_empty_allow_list_allows_everyone() -> None:
    assert sender_allowed("anyone@anywhere.example", None, ())
    assert address_allowed("a@b.example", ("a@b.example",))
    assert not address_allowed("a@b.example", ("b@b.example", "@c.example"))


def test_graph_size_limit_applies_only_in_graph_mode() -> None:
    graph = load_settings(
        {
            "MXRELAY_DELIVERY": "graph",
            "MXRELAY_GRAPH_TENANT_ID": "t",
            "MXRELAY_GRAPH_CLIENT_ID": "c",
            "MXRELAY_GRAPH_CLIENT_SECRET": "s",
            "MXRELAY_GRAPH_MAX_MESSAGE_SIZE": "3MiB",
        }
    )
    assert graph_size_limit(graph) == 3 * 1024 * 1024
    hold = load_settings({"MXRELAY_DELIVERY": "hold"})
    assert graph_size_limit(hold) == hold.smtp.max_message_size


def test_header_from_reads_the_first_address() -> None:
    data = b'From: "Sales, Team" <Sales@Contoso.example>\r\nTo: a@b.example\r\n\r\nbody'
    assert header_from(data) == "Sales@Contoso.example"
    assert header_from(b"To: a@b.example\r\n\r\nFrom: x@y.example\r\n") is None
    assert header_from(b"From: undisclosed:;\r\n\r\n") is None


@pytest.mark.parametrize(
    ("data", "allowed"),
    [
        (b"From: app@contoso.example\r\n\r\n", True),
        (b"From: ceo@elsewhere.example\r\n\r\n", False),
        (b"Subject: no From at all\r\n\r\n", True),  # the envelope sender alone decides
        # A From beyond the parsing bounds is on no list (earlier versions: 1.5 GB, or a
        # RecursionError and a 451, for these two).
        (b"From: " + b"=?utf-8?q?a?= " * 10_000 + b"<app@contoso.example>\r\n\r\n", False),
        (b"From: " + b"(" * 5000 + b")" * 5000 + b" app@contoso.example\r\n\r\n", False),
    ],
)
def test_the_allow_list_at_the_end_of_data(data: bytes, allowed: bool) -> None:
    entries = ("@contoso.example",)
    assert message_sender_allowed("app@contoso.example", data, entries) is allowed
    assert message_sender_allowed("app@contoso.example", data, ())  # no list: anyone


def test_the_stored_author_is_the_first_stored_address() -> None:
    assert stored_author("a@example.net, b@example.net") == "a@example.net"
    assert stored_author('"x, y"@example.net, b@example.net') == '"x, y"@example.net'
    assert stored_author("") is None


def test_complete_message_comes_back_unchanged() -> None:
    data = (
        b"From: a@b.example\r\nDate: Fri, 27 Nov 2026 09:00:00 +0000\r\n"
        b"message-id: <x@y>\r\n\r\nbody\r\n"
    )
    assert (
        complete_headers(
            data, stored_id="01J", hostname="relay.test", received_at=ACCEPTED, sender="s@b.example"
        )
        is data
    )


def test_missing_fields_are_added_in_front_with_the_message_line_ends() -> None:
    data = b"To: a@b.example\nSubject: hi\n\nbody\n"
    result = complete_headers(
        data, stored_id="01JDX", hostname="relay.test", received_at=ACCEPTED, sender="s@b.example"
    )
    assert result == (
        b"From: s@b.example\nDate: Fri, 27 Nov 2026 09:30:00 +0000\n"
        b"Message-ID: <01JDX@relay.test>\n" + data
    )


def test_body_only_message_gets_a_header_block() -> None:
    result = complete_headers(
        b"just text\r\n", stored_id="id", hostname="h", received_at=ACCEPTED, sender="s@b.example"
    )
    parsed = email.message_from_bytes(result, policy=email.policy.default)
    assert parsed["From"] == "s@b.example"
    assert parsed.get_content().strip() == "just text"


@pytest.mark.parametrize(
    "sender",
    [
        "a\rBcc: victim@example.org@b.example",
        '"a\rBcc: victim@example.org"@b.example',
        "a\nBcc: victim@example.org@b.example",
        "a\x00b@b.example",
        "a\tb@b.example",
        "a\x1b[2Jb@b.example",
        "a\x7f@b.example",
        "a\u2028b@b.example",
        "not an address",
    ],
)
def test_an_envelope_sender_that_is_no_addr_spec_is_never_written_into_a_header(
    sender: str,
) -> None:
    data = b"To: a@b.example\r\nSubject: hi\r\n\r\nbody\r\n"
    result = complete_headers(
        data, stored_id="01JDX", hostname="relay.test", received_at=ACCEPTED, sender=sender
    )
    assert not header_address(sender)
    assert result.endswith(data)
    assert result[: -len(data)] == (
        b"Date: Fri, 27 Nov 2026 09:30:00 +0000\r\nMessage-ID: <01JDX@relay.test>\r\n"
    )


@pytest.mark.parametrize(
    "sender",
    ["s@b.example", '"a b"@b.example', '"a\\"b"@b.example', "a@[192.0.2.1]", "jörg@bücher.example"],
)
def test_addr_spec_senders_are_written_as_they_are(sender: str) -> None:
    result = complete_headers(
        b"\r\nbody\r\n", stored_id="id", hostname="h", received_at=ACCEPTED, sender=sender
    )
    assert result.startswith(b"From: " + sender.encode() + b"\r\nDate: ")


@given(st.text(max_size=40))
def test_a_written_from_is_always_one_header_line(sender: str) -> None:
    result = complete_headers(
        b"\r\nbody\r\n", stored_id="id", hostname="h", received_at=ACCEPTED, sender=sender
    )
    header = result[: result.index(b"\r\n\r\n")].decode("utf-8")
    lines = header.split("\r\n")
    assert [line.split(":", 1)[0] for line in lines] in (
        ["From", "Date", "Message-ID"],
        ["Date", "Message-ID"],
    )
    assert all(c.isprintable() for line in lines for c in line)


def test_message_id_is_a_valid_msg_id_whatever_the_inputs() -> None:
    assert message_id_for("01JDX/../<x>", "relay host!.") == "<01JDX/./x@relayhost>"
    assert message_id_for("", "") == "<message@mxrelay.invalid>"


@given(st.text(max_size=30), st.text(max_size=30))
def test_message_id_is_always_a_dot_atom_msg_id(stored_id: str, hostname: str) -> None:
    atom = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
    pattern = rf"<{atom}(\.{atom})*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*>"
    assert re.fullmatch(pattern, message_id_for(stored_id, hostname))


@given(
    st.lists(
        st.sampled_from(
            [
                b"From: a@b.example",
                b"Date: Fri, 27 Nov 2026 09:00:00 +0000",
                b"Message-ID: <m@x>",
                b"To: c@d.example",
                b"Subject: s",
                b"X-Long: folded\r\n continued",
            ]
        ),
        max_size=6,
    ),
    st.binary(max_size=200),
)
def test_completion_is_idempotent_and_keeps_the_original_bytes(
    fields: list[bytes], body: bytes
) -> None:
    data = b"\r\n".join(fields) + b"\r\n\r\n" + body if fields else body
    once = complete_headers(
        data, stored_id="01JDX", hostname="relay.test", received_at=ACCEPTED, sender="s@b.example"
    )
    assert once.endswith(data)
    assert {"from", "date", "message-id"} <= field_names(once)
    twice = complete_headers(
        once, stored_id="other", hostname="x", received_at=datetime.now(UTC), sender="t@b.example"
    )
    assert twice == once


GRAPH = {"MXRELAY_HOSTNAME": "relay.test"}  # the Graph settings whatever the mode
PLAIN = b"Subject: hi\r\nTo: a@c.example\r\n\r\nbody\r\n"


def prepared_job(job: DeliveryJob, **environ: str) -> tuple[bytes, str]:
    settings = load_settings({**GRAPH, **environ})
    reconciled = reconcile_headers(job.data, job.recipients, HeaderPolicy.STRIP)
    result = prepare(job, reconciled, settings, now=ACCEPTED)
    return result.data, result.mailbox


def test_a_job_gets_its_mailbox_and_missing_headers_the_same_way_every_time() -> None:
    job = DeliveryJob(
        "01JTEST", 0, "<app@c.example>", ("a@c.example",), PLAIN, received_at=ACCEPTED
    )
    data, mailbox = prepared_job(job)
    assert mailbox == "app@c.example"
    assert data.startswith(b"From: app@c.example\r\nDate: Fri, 27 Nov 2026 09:30:00 +0000\r\n")
    assert data.endswith(PLAIN)
    assert prepared_job(job) == (data, mailbox)


def test_a_job_without_any_sender_has_no_mailbox() -> None:
    job = DeliveryJob("01JTEST", 0, "<>", ("a@c.example",), PLAIN)
    with pytest.raises(PermanentFailure, match="no sending mailbox"):
        prepared_job(job)


def test_the_acceptance_time_comes_from_the_job_else_the_ulid_else_now() -> None:
    ulid = ULID.from_datetime(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    job = DeliveryJob(str(ulid), 0, "", (), b"", received_at=ACCEPTED)
    assert received_at(job, now=ACCEPTED) == ACCEPTED
    later = datetime(2030, 1, 1, tzinfo=UTC)
    assert received_at(DeliveryJob(str(ulid), 0, "", (), b""), later) == ulid.datetime
    assert received_at(DeliveryJob("not-a-ulid", 0, "", (), b""), later) == later


def test_a_message_accepted_at_the_size_limit_is_delivered() -> None:
    # The SMTP server accepts a message of exactly graph_size_limit bytes; every attempt then
    # sends the relay's Received field in front, and a missing Date and Message-ID.
    environ = {
        **GRAPH,
        "MXRELAY_DELIVERY": "graph",
        "MXRELAY_GRAPH_TENANT_ID": "t",
        "MXRELAY_GRAPH_CLIENT_ID": "c",
        "MXRELAY_GRAPH_CLIENT_SECRET": "s",
        "MXRELAY_GRAPH_MAX_MESSAGE_SIZE": "64KiB",
    }
    limit = graph_size_limit(load_settings(environ))
    head = b"From: app@c.example\r\nTo: a@c.example\r\nSubject: s\r\n\r\n"
    data = head + b"x" * (limit - len(head))
    session = SessionInfo(Peer("2001:db8::1", 40000), helo="h" * 300, esmtp=True)
    recipient = "a" * 240 + "@c.example"
    accepted = Transaction(session, "app@c.example", (recipient,), data, received_at=ACCEPTED)
    received = received_header(accepted, hostname="relay." + "r" * 240, queue_id=str(ULID()))
    job = DeliveryJob("01JTEST", 0, "app@c.example", (recipient,), received + data)
    sent, _ = prepared_job(job, **environ)
    assert len(sent) > limit  # the Received field, Date and Message-ID
    with pytest.raises(PermanentFailure, match="larger than MXRELAY_GRAPH_MAX_MESSAGE_SIZE"):
        prepared_job(
            DeliveryJob("01JTEST", 0, "app@c.example", (recipient,), received + data + b"x" * 2048),
            **environ,
        )


def test_the_size_at_delivery_is_the_size_at_smtp_time() -> None:
    assert not over_graph_size(10_000 + RECEIVED_ALLOWANCE, 10_000)
    assert over_graph_size(10_001 + RECEIVED_ALLOWANCE, 10_000)
    assert not over_graph_size(10**9, 0)  # no Graph limit
