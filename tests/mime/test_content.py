"""What a reader sees in a message: bodies and attachments from the byte scanner, bounded."""

from __future__ import annotations

import base64

from hypothesis import given

from mxrelay.mime.content import Attachment, message_content, strip_tags
from tests.support.fuzzing import raw_messages
from tests.support.hostile import nested_multiparts

MIXED = (
    b"From: a@example.net\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n"
    b"--m\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n"
    b"--a\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n"
    b"--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Gr\xc3\xbc\xc3\x9fe</p>\r\n--a--\r\n"
    b'--m\r\nContent-Type: application/pdf; name="=?utf-8?q?R=C3=A9sum=C3=A9.pdf?="\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(b"%PDF" * 100)
    + b"--m\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=r.csv\r\n\r\n"
    b"a,b\r\n--m\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nhi\r\n--m--\r\n"
)


def test_bodies_and_attachments() -> None:
    content = message_content(MIXED, 1024)
    assert content.text.strip() == "Grüße"
    assert content.html.strip() == "<p>Grüße</p>"
    assert content.attachments == (
        Attachment("Résumé.pdf", "application/pdf", 400),
        Attachment("r.csv", "text/csv", 3),
        Attachment("", "message/rfc822", len(b"Subject: inner\r\n\r\nhi")),
    )
    assert content.broken is None


def test_bodies_are_cut_at_the_limit() -> None:
    data = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    data += base64.encodebytes(b"x" * 10_000)
    assert message_content(data, 100).text == "x" * 100


def test_punycode_is_no_text_charset() -> None:
    data = b"Content-Type: text/plain; charset=punycode\r\n\r\n" + b"99" * 1000
    assert message_content(data, 10_000).text == "99" * 1000  # read as UTF-8, not decoded


def test_broken_mime_has_no_bodies() -> None:
    content = message_content(b"Subject: x\r\n" + nested_multiparts(1000), 1024)
    assert content.broken == "nesting deeper than 40 levels"
    assert (content.text, content.html, content.attachments) == ("", "", ())


def test_tags_are_stripped_in_linear_time() -> None:
    assert strip_tags("<p>Hi <b>there</b></p>") == " Hi  there  "
    assert strip_tags("a < b <i>c") == "a < b  c"
    # `<[^>]*>` took quadratic time on a run of `<` (200 KB: minutes); this is one pass.
    assert strip_tags("<" * 200_000) == "<" * 200_000


@given(raw_messages)
def test_never_raises(data: bytes) -> None:
    content = message_content(data, 512)
    assert len(content.text.encode()) <= 3 * 512
    assert len(content.html.encode()) <= 3 * 512


def test_inline_parts_apart_from_attachments() -> None:
    raw = (
        b'Content-Type: multipart/related; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Type: text/html\r\n\r\n<img src=cid:c>\r\n"
        b"--r\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=c.png\r\n\r\n"
        b"iVBO\r\n"
        b"--r\r\nContent-Type: text/plain\r\nContent-Disposition: inline\r\n\r\nmore text\r\n"
        b"--r\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=a.csv\r\n\r\n"
        b"a,b\r\n--r--\r\n"
    )
    content = message_content(raw, 1000)
    assert [a.filename for a in content.inlines] == ["c.png"]
    assert [a.filename for a in content.attachments] == ["a.csv"]
