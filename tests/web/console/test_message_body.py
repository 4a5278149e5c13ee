"""What the body tabs of a message show, read as the API reads it (`mime.parts`): the parts by
the API's part ids (the ones its part route serves), attachments apart from inline images, the
header fields decoded in order, and the remote references the preview blocks."""

from __future__ import annotations

from mxrelay.web.console.message import read_body
from tests.web.console.conftest import hostile, rich


def test_the_parts_are_the_apis() -> None:
    body = read_body(rich())
    assert [(p.part_id, p.content_type) for p in body.parts] == [
        ("1.1.1", "text/plain"),
        ("1.1.2", "text/html"),
        ("1.2", "image/png"),
        ("2", "text/csv"),
    ]
    assert [(p.part_id, p.filename) for p in body.files] == [("2", "figures.csv")]
    assert [(p.part_id, p.content_id, p.image) for p in body.images] == [
        ("1.2", "logo@example.org", True)
    ]
    assert body.text == "The figures are in the attachment."
    assert body.has_html
    assert body.remote == 0
    assert not body.truncated


def test_headers_are_decoded_in_order_and_remote_references_counted() -> None:
    body = read_body(b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nX-A: 1\r\n\r\nbody")
    assert body.headers == [("Subject", "Grüße"), ("X-A", "1")]
    assert (body.text, body.has_html, body.parts[0].part_id) == ("body", False, "0")
    assert read_body(hostile("http://192.0.2.1")).remote >= 4
