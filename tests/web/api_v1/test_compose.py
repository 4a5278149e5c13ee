"""Mailpit's SendRequest read as Go reads it and built as Mailpit builds it, with its error texts."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from mxrelay.web.api_v1.compose import (
    SEND_REQUEST,
    Composed,
    ComposeError,
    compose,
    read_send_request,
)
from mxrelay.web.api_v1.gojson import GoJsonError, decode

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BASE: dict[str, Any] = {
    "From": {"Email": "app@example.org", "Name": "App"},
    "To": [{"Email": "alex@example.net", "Name": "Alex"}],
    "Subject": "Hello",
    "Text": "Test",
}


def build(request: dict[str, Any] | str) -> Composed:
    raw = request if isinstance(request, str) else json.dumps(request)
    body = decode(raw.encode(), SEND_REQUEST)
    return compose(read_send_request(body), now=NOW, hostname="relay.example.net")


def parsed(composed: Composed) -> EmailMessage:
    message = email.message_from_bytes(composed.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_keys_match_case_insensitively_and_the_last_one_wins() -> None:
    composed = build(
        '{"from": {"email": "app@example.org"}, "TO": [{"EMAIL": "first@example.net"}],'
        ' "to": [{"Email": "second@example.net"}], "subject": "Hi", "text": null, "bcc": null}'
    )
    assert composed.recipients == ("second@example.net",)
    assert parsed(composed)["Subject"] == "Hi"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("", "EOF"),
        ('{"From": {"Email": "a@example.org"},', "unexpected EOF"),
        ("{'From': {}}", "invalid character '\\'' looking for beginning of object key string"),
        (
            "[]",
            "json: cannot unmarshal array into Go value of type struct { "
            "From struct { Name string; Email string }; "
            "To []struct { Name string; Email string }; "
            "Cc []struct { Name string; Email string }; "
            "Bcc []string; "
            "ReplyTo []struct { Name string; Email string }; "
            "Subject string; Text string; HTML string; "
            "Attachments []struct { Content string; Filename string; ContentType string; "
            "ContentID string }; "
            "Tags []string; "
            "Headers map[string]string }",
        ),
        (
            '{"From": {"Email": 5}}',
            "json: cannot unmarshal number into Go struct field .From.Email of type string",
        ),
        (
            '{"To": "a@example.net"}',
            "json: cannot unmarshal string into Go struct field .To of type "
            "[]struct { Name string; Email string }",
        ),
        (
            '{"Attachments": [{"Content": "aGk=", "Filename": ["a.txt"]}]}',
            "json: cannot unmarshal array into Go struct field .Attachments.Filename of type string",
        ),
        (
            '{"Headers": {"X-A": true}}',
            "json: cannot unmarshal bool into Go struct field .Headers of type string",
        ),
    ],
)
def test_a_body_go_could_not_read_is_refused_as_go_words_it(body: str, error: str) -> None:
    with pytest.raises(GoJsonError) as refused:
        build(body)
    assert str(refused.value) == error


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"To": [{"Email": "not an address"}]}, "invalid To address: not an address"),
        ({"Cc": [{"Email": "@example.net"}]}, "invalid Cc address: @example.net"),
        ({"Bcc": ["x"]}, "invalid Bcc address: x"),
        ({"ReplyTo": [{"Email": "a@"}]}, "invalid Reply-To address: a@"),
        ({"Headers": {"Subject": "x"}}, 'cannot overwrite header: "Subject"'),
        ({"Tags": ["a"], "Headers": {"X-Tags": "b"}}, 'cannot overwrite header: "X-Tags"'),
        (
            {"Headers": {"X-Evil": "a\r\nBcc: victim@example.net"}},
            'invalid value for header "X-Evil"',
        ),
        ({"Headers": {"Bad Name": "a"}}, 'invalid header name: "Bad Name"'),
        # every line boundary `str.splitlines` knows, and values the standard library cannot
        # parse (IndexError) or write in ASCII (UnicodeEncodeError): 400, never a 500
        ({"Headers": {"X-Foo": "a\u2028b"}}, 'invalid value for header "X-Foo"'),
        ({"Headers": {"X-Foo": "a\x0bb"}}, 'invalid value for header "X-Foo"'),
        ({"Headers": {"X-Foo": "a\x85b"}}, 'invalid value for header "X-Foo"'),
        ({"Headers": {"Sender": "a@"}}, 'invalid value for header "Sender"'),
        ({"Headers": {"Resent-To": "a@"}}, 'invalid value for header "Resent-To"'),
        ({"Headers": {"Resent-Cc": "=?x?b?###?="}}, 'invalid value for header "Resent-Cc"'),
        ({"Headers": {"Message-ID": "\u00e9"}}, 'invalid value for header "Message-ID"'),
        ({"Tags": ["a\nb"]}, 'invalid value for header "X-Tags"'),
        (
            {"Attachments": [{"Content": "%%%", "Filename": "a.bin"}]},
            'error decoding base64 attachment "a.bin": illegal base64 data',
        ),
        ({"From": {"Email": ""}}, "error building message: from not set"),
        ({"From": {"Email": "nope"}}, "invalid From address: nope"),
        ({"Subject": ""}, "error building message: subject not set"),
        ({"To": []}, "error building message: no recipients (to, cc, bcc) set"),
        # Mailpit checks the addresses before the rest: a bad To wins over a missing subject.
        ({"To": [{"Email": "x"}], "Subject": ""}, "invalid To address: x"),
    ],
)
def test_mailpits_checks_and_texts(change: dict[str, Any], error: str) -> None:
    with pytest.raises(ComposeError) as refused:
        build({**BASE, **change})
    assert str(refused.value).startswith(error)


def test_the_message_mailpit_builds() -> None:
    composed = build(
        {
            **BASE,
            "Cc": [{"Email": "cc@example.net"}],
            "Bcc": ["hidden@example.net"],
            "ReplyTo": [{"Email": "reply@example.org", "Name": "Desk"}],
            "HTML": "<p>Hi <img src='cid:logo'></p>",
            "Attachments": [
                {"Content": "aGVsbG8=", "Filename": "a.txt"},
                {
                    "Content": "data:image/png;base64,iVBORw==",
                    "Filename": "l.png",
                    "ContentID": "logo",
                },
            ],
            "Tags": ["one", "two words"],
            "Headers": {"X-Custom": "value"},
        }
    )
    assert composed.mail_from == "app@example.org"
    assert composed.recipients == ("alex@example.net", "cc@example.net", "hidden@example.net")
    assert not composed.smtputf8
    assert b"hidden@example.net" not in composed.data  # a Bcc is the envelope's only
    assert composed.data.isascii()
    message = parsed(composed)
    assert message["From"] == "App <app@example.org>"
    assert message["To"] == "Alex <alex@example.net>"
    assert message["Reply-To"] == "Desk <reply@example.org>"
    assert message["X-Tags"] == "one, two words"
    assert message["X-Custom"] == "value"
    assert message["Message-ID"].endswith("@relay.example.net>")
    assert message["Date"] == "Sun, 01 Mar 2026 12:00:00 +0000"
    assert message.get_content_type() == "multipart/mixed"
    related, attached = message.iter_parts()
    assert related.get_content_type() == "multipart/related"
    alternative, inline = related.iter_parts()
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert inline["Content-ID"] == "<logo>"
    assert inline.get_content_disposition() == "inline"
    assert attached.get_filename() == "a.txt"
    assert attached.get_content() in (b"hello", "hello")


def test_text_goes_exactly_as_given() -> None:
    """No line end is added to the text (clients compare it with what they sent)."""
    message = parsed(build({**BASE, "Text": "Test"}))
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == "Test"
    accented = parsed(build({**BASE, "Text": "Grüße\nzwei"}))
    assert accented["Content-Transfer-Encoding"] == "quoted-printable"
    assert accented.get_content() == "Grüße\r\nzwei"


def test_an_address_that_needs_smtputf8_says_so() -> None:
    composed = build({**BASE, "To": [{"Email": "jörg@example.net"}]})
    assert composed.smtputf8
    assert composed.recipients == ("jörg@example.net",)
