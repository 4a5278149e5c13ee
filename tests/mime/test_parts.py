"""The part tree, numbering and classification of real messages, as Mailpit (enmime) reads them."""

from __future__ import annotations

import base64
import hashlib

from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime.parts import Attachment, PartLimits, decode_base64, read_parts
from tests.data.mailpit import corpus
from tests.support.mime_trees import Leaf, Multi, render, tree_leaves, trees


def tree(data: bytes) -> list[tuple[str, str, str, str, str]]:
    reading = read_parts(data)
    return [
        (p.part_id, p.content_type, p.disposition, p.filename, p.content_id)
        for p in reading.root.depth_first()
    ]


def test_nested_related_alternative_and_attachments_are_numbered_as_enmime_numbers_them() -> None:
    assert tree(corpus("related")) == [
        ("0", "multipart/mixed", "", "", ""),
        ("1.0", "multipart/related", "", "", ""),
        ("1.1.0", "multipart/alternative", "", "", ""),
        ("1.1.1", "text/plain", "", "", ""),
        ("1.1.2", "text/html", "", "", ""),
        ("1.2", "image/png", "", "", "logo@example.org"),
        ("1.3", "image/png", "inline", "chart.png", "chart@example.org"),
        ("2", "application/pdf", "attachment", "Résumé 2026.pdf", ""),  # RFC 2231, continued
        ("3", "text/csv", "attachment", "prices.csv", ""),
        ("4", "text/html", "attachment", "page.html", ""),
    ]


def test_bodies_and_classification() -> None:
    reading = read_parts(corpus("related"))
    assert reading.text == "Thank you for your order ✓.\r\nLine two."  # CRLF kept, none added
    assert reading.html.startswith("<html><body><p>Thank you for your order ✓.</p>")
    # Inline parts first, then the other parts (a cid image of multipart/related).
    assert [p.part_id for p in reading.inline] == ["1.3", "1.2"]
    assert [p.part_id for p in reading.attachments] == ["2", "3", "4"]
    assert reading.part("1.2") is reading.inline[1]
    assert reading.part("1.1.1") is None  # a body is not a part one can fetch
    # A text attachment is converted to UTF-8 from its charset, as enmime converts it.
    prices = reading.part("3")
    assert prices is not None
    assert prices.content == "Prix: 10 EUR? non: café crème".encode()


def test_attachment_checksums_and_size_are_of_the_decoded_content() -> None:
    reading = read_parts(corpus("related"))
    pdf = reading.part("2")
    assert pdf is not None
    assert pdf.content.startswith(b"%PDF-1.4")
    summary = Attachment.of(pdf)
    assert summary.size == len(pdf.content) == 45
    assert summary.sha256 == hashlib.sha256(pdf.content).hexdigest()
    assert summary.md5 == hashlib.md5(pdf.content, usedforsecurity=False).hexdigest()
    logo = Attachment.of(reading.inline[1])
    assert logo.filename == "logo@example.org"  # no file name: the Content-ID stands in


def test_attached_messages_are_one_part_and_named_inline_text_is_both_text_and_inline() -> None:
    reading = read_parts(corpus("forward"))
    assert tree(corpus("forward")) == [
        ("0", "multipart/mixed", "", "", ""),
        ("1", "text/plain", "", "", ""),
        ("2", "text/plain", "inline", "notes.txt", ""),
        ("3", "message/rfc822", "attachment", "original.eml", ""),
        ("4", "message/rfc822", "", "", ""),
    ]
    assert reading.text == "See below.\n--\nInline notes."  # every text part of a mixed message
    assert [p.part_id for p in reading.inline] == ["2"]
    # An attached message without a file name is not listed (Mailpit lists only named parts).
    assert [p.part_id for p in reading.attachments] == ["3"]
    original = reading.part("3")
    assert original is not None
    assert original.content.startswith(b"From: Origin <origin@example.org>\r\n")


def test_broken_mime_is_read_leniently() -> None:
    reading = read_parts(corpus("broken"))
    assert tree(corpus("broken")) == [
        ("0", "multipart/mixed", "", "", ""),
        ("1", "text/plain", "", "", ""),
        ("2", "", "", "", ""),  # no Content-Type: no type at all
        ("3", "application/octet-stream", "", "data.bin", ""),
    ]
    assert reading.text == "First part."
    data = reading.part("3")
    assert data is not None
    assert data.content == bytes(range(6))  # never closed: runs to the end; junk skipped
    assert not reading.truncated


def test_html_only_message_gets_text_from_its_html() -> None:
    reading = read_parts(corpus("html-only"))
    assert reading.html.startswith("<html>")
    assert reading.text == "*****\nHello\n*****\n\nRead the news ( https://example.org/a )."


def test_single_part_messages() -> None:
    plain = b"Subject: hi\r\n\r\ncaf\xe9\r\n"  # no Content-Type: us-ascii, read as windows-1252
    assert read_parts(plain).text == "café\r\n"
    pdf = base64.b64encode(b"%PDF-1.4")
    binary = (
        b"Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + pdf
    )
    reading = read_parts(binary)
    assert (reading.text, [p.part_id for p in reading.attachments]) == ("", ["0"])
    assert reading.part("0") is not None
    text_attachment = b"Content-Disposition: attachment; filename=x.txt\r\n\r\nhello"
    assert [p.part_id for p in read_parts(text_attachment).attachments] == ["0"]
    unnamed = b"Content-Type: application/pdf\r\n\r\nxx"
    assert read_parts(unnamed).attachments == ()  # only named parts are listed


def test_content_id_is_unescaped_as_enmime_does() -> None:
    message = (
        b'Content-Type: multipart/related; boundary="r"\r\n\r\n--r\r\nContent-Type: text/html\r\n'
        b"\r\n<img src=cid:a>\r\n--r\r\nContent-Type: image/gif\r\nContent-ID: <a%20b+c@x>\r\n\r\n"
        b"GIF\r\n--r--\r\n"
    )
    assert [p.content_id for p in read_parts(message).inline] == ["a b c@x"]


def many_parts(count: int) -> bytes:
    body = b"".join(
        b"--b\r\nContent-Type: image/gif; name=x.gif\r\n\r\nGIF\r\n" for _ in range(count)
    )
    return b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + body + b"--b--\r\n"


def test_part_count_nesting_and_decoded_size_are_bounded() -> None:
    reading = read_parts(many_parts(50), PartLimits(max_parts=10))
    assert reading.truncated
    assert len(reading.root.children) == 10
    nested = b""
    for level in range(60):
        nested += (
            f'--b{level}\r\nContent-Type: multipart/mixed; boundary="b{level + 1}"\r\n\r\n'.encode()
        )
    deep = b'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n' + nested
    assert read_parts(deep, PartLimits(max_depth=20)).truncated
    huge = many_parts(3)
    limited = read_parts(huge, PartLimits(max_decoded=4))
    assert limited.truncated
    assert sum(len(p.content) for p in limited.root.depth_first()) == 4


def test_a_huge_part_is_read_in_linear_time() -> None:
    payload = base64.encodebytes(b"\x00" * (8 * 1024 * 1024))
    message = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n'
        b"\r\nhi\r\n--b\r\nContent-Type: application/zip\r\n"
        b"Content-Disposition: attachment; filename=z.zip\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + payload + b"--b--\r\n"
    )
    reading = read_parts(message)
    assert reading.attachments[0].content == b"\x00" * (8 * 1024 * 1024)


@given(st.binary(max_size=2048))
def test_any_bytes_are_read_without_error(data: bytes) -> None:
    reading = read_parts(data)
    ids = [p.part_id for p in reading.root.depth_first()]
    assert len(ids) == len(set(ids))


@given(
    st.lists(
        st.sampled_from(
            [
                b"--b\r\n",
                b"--b--\r\n",
                b"--c\r\n",
                b'Content-Type: multipart/mixed; boundary="c"\r\n',
                b"Content-Type: text/plain\r\n",
                b"Content-Disposition: attachment; filename=f\r\n",
                b"Content-Transfer-Encoding: base64\r\n",
                b"\r\n",
                b"text\r\n",
            ]
        ),
        max_size=40,
    )
)
def test_hostile_structures_are_read_without_error(lines: list[bytes]) -> None:
    data = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + b"".join(lines)
    read_parts(data)


def expected_ids(node: Leaf | Multi, own: str = "0", top: bool = True) -> list[str]:
    """enmime's ids, depth first: children of the message `1`, `2`...; of a nested multipart
    `N.1`, `N.2`..., which is then itself `N.0`."""
    if isinstance(node, Leaf):
        return [own]
    children = [
        expected_ids(child, str(index) if top else f"{own}.{index}", top=False)
        for index, child in enumerate(node.children, 1)
    ]
    return [own if top else f"{own}.0", *(part for ids in children for part in ids)]


def decoded(leaf: Leaf, newline: bytes) -> bytes:
    body = leaf.body.replace(b"\n", newline)
    if "Content-Transfer-Encoding: base64" in leaf.header_lines:
        return base64.b64decode(leaf.body)
    return body


@given(trees, st.sampled_from([b"\r\n", b"\n"]))
def test_generated_trees_are_numbered_and_decoded_as_enmime_does(
    tree: Leaf | Multi, newline: bytes
) -> None:
    reading = read_parts(render(tree, newline))
    assert [p.part_id for p in reading.root.depth_first()] == expected_ids(tree)
    found = [p for p in reading.root.depth_first() if not p.children and p.boundary == ""]
    assert [p.content for p in found] == [decoded(leaf, newline) for leaf in tree_leaves(tree)]


def test_base64_is_decoded_in_windows_exactly_whatever_the_line_length() -> None:
    payload = bytes(range(256)) * 12_000  # 3 MiB: several windows
    encoded = base64.b64encode(payload)
    for width in (76, 78, 4, 1001):
        lines = b"\r\n".join(encoded[i : i + width] for i in range(0, len(encoded), width))
        assert decode_base64(lines) == payload
    assert decode_base64(b"AAEC!!AwQF\r\n") == bytes(range(6))
    assert decode_base64(b"QUJD\nRA") == b"ABCD"  # a partial last group, kept


def test_a_section_number_past_the_int_limit_is_read_without_error() -> None:
    data = (
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--B\r\nContent-Type: application/pdf; name*" + b"1" * 5000 + b"=x.pdf\r\n\r\nPDF\r\n"
        b"--B--\r\n"
    )
    assert read_parts(data).text == "hello"
    assert tree(data) == [
        ("0", "multipart/mixed", "", "", ""),
        ("1", "text/plain", "", "", ""),
        ("2", "application/pdf", "", "", ""),  # the parameter is left out, as Go leaves it
    ]
