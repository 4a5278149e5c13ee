"""A stored message read for display: parts numbered as IMAP numbers them, header fields decoded,
and the HTML preview with its inline images embedded and its refresh removed."""

from __future__ import annotations

import base64

from mxrelay.web.console.parts import header_fields, html_preview, leaf_parts, part_body
from tests.web.console.conftest import PNG, hostile, rich


def test_parts_are_numbered_as_imap_does() -> None:
    parts, broken = leaf_parts(rich())
    assert broken is None
    assert [(p.part_id, p.content_type, p.filename) for p, _ in parts] == [
        ("1.1.1", "text/plain", ""),
        ("1.1.2", "text/html", ""),
        ("1.2", "image/png", ""),
        ("2", "text/csv", "figures.csv"),
    ]
    image, entity = parts[2]
    assert image.content_id == "logo@example.org"
    assert image.is_inline_image
    assert not image.is_attachment
    assert parts[3][0].is_attachment
    assert part_body(rich(), entity, 1000) == PNG
    single, _ = leaf_parts(b"Subject: x\r\n\r\nhello\r\n")
    assert [p.part_id for p, _ in single] == ["1"]


def test_broken_mime_has_no_parts() -> None:
    parts, broken = leaf_parts(
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + b"--b\r\n" * 20_000
    )
    assert parts == [] or broken is None  # bounded either way; never raises


def test_header_fields_are_decoded_in_order() -> None:
    fields = header_fields(b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nX-A: 1\r\n\r\nbody")
    assert fields == [("Subject", "Grüße"), ("X-A", "1")]


def test_the_preview_embeds_inline_images_and_drops_refresh() -> None:
    shown = html_preview(rich())
    assert shown is not None
    encoded = base64.b64encode(PNG).decode()
    assert f'src="data:image/png;base64,{encoded}"' in shown.html
    assert shown.remote == 0
    bad = html_preview(hostile("http://192.0.2.1"))
    assert bad is not None
    assert "http-equiv" not in bad.html
    assert bad.remote >= 4
    assert html_preview(b"Subject: x\r\n\r\nplain\r\n") is None
