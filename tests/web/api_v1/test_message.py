"""One message over real HTTP, key for key as Mailpit serves it: the Message object (marking it
read), its headers, raw source, parts and thumbnails; `latest` and `latest?query=`."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from datetime import UTC, datetime, timedelta

from PIL import Image

from mxrelay.app import Relay
from mxrelay.store.search import MAX_TERMS
from tests.data.mailpit import corpus
from tests.support.relay_app import send_mail
from tests.web.api_v1.conftest import Mailbox, call, send

# Mailpit's documented objects (Message, Attachment, ListUnsubscribe, Address), key for key.
MESSAGE_KEYS = {
    "ID", "MessageID", "From", "To", "Cc", "Bcc", "ReplyTo", "ReturnPath", "Subject",
    "ListUnsubscribe", "Date", "Tags", "Username", "Text", "HTML", "Size", "Inline", "Attachments",
}  # fmt: skip
ATTACHMENT_KEYS = {"PartID", "FileName", "ContentType", "ContentID", "Size", "Checksums"}
CHECKSUM_KEYS = {"MD5", "SHA1", "SHA256"}
UNSUBSCRIBE_KEYS = {"Header", "Links", "Errors", "HeaderPost"}
ADDRESS_KEYS = {"Name", "Address"}


async def test_message_object_is_mailpits(mailbox: Mailbox) -> None:
    ident = mailbox.ids["related"]
    message = (await mailbox.get(f"/api/v1/message/{ident}")).json()
    assert set(message) == MESSAGE_KEYS
    assert set(message["ListUnsubscribe"]) == UNSUBSCRIBE_KEYS
    for field in ("To", "Cc", "Bcc", "ReplyTo"):
        assert all(set(address) == ADDRESS_KEYS for address in message[field])
    for part in message["Inline"] + message["Attachments"]:
        assert set(part) == ATTACHMENT_KEYS
        assert set(part["Checksums"]) == CHECKSUM_KEYS
    assert message["ID"] == ident
    assert message["MessageID"] == "order-42@example.org"
    assert message["From"] == {"Name": "Jürgen Müller", "Address": "jurgen@example.org"}
    assert message["To"] == [
        {"Name": "Alex", "Address": "alex@example.net"},
        {"Name": "Doe, Jane", "Address": "jane@example.net"},
    ]
    assert message["Cc"] == [{"Name": "", "Address": "cc@example.net"}]
    # The envelope-only recipient shows as Bcc, computed: the stored bytes are unchanged.
    assert message["Bcc"] == [{"Name": "", "Address": "blind@example.net"}]
    assert message["ReplyTo"] == [{"Name": "", "Address": "support@example.org"}]
    assert message["ReturnPath"] == "bounce@example.org"
    assert message["Subject"] == "Your order ✓"
    assert message["Date"] == "2026-01-05T13:00:00+01:00"
    assert message["ListUnsubscribe"] == {
        "Header": "<mailto:unsub@example.org?subject=stop>, <https://example.org/unsub?u=42>",
        "Links": ["mailto:unsub@example.org?subject=stop", "https://example.org/unsub?u=42"],
        "Errors": "",
        "HeaderPost": "List-Unsubscribe=One-Click",
    }
    assert (message["Tags"], message["Username"]) == ([], "")
    assert message["Text"] == "Thank you for your order ✓.\r\nLine two."
    assert message["HTML"].startswith("<html><body><p>Thank you for your order ✓.</p>")
    assert message["Size"] == len(corpus("related"))
    assert [(p["PartID"], p["FileName"], p["ContentID"]) for p in message["Inline"]] == [
        ("1.3", "chart.png", "chart@example.org"),
        ("1.2", "logo@example.org", "logo@example.org"),
    ]
    pdf = message["Attachments"][0]
    assert (pdf["PartID"], pdf["FileName"], pdf["ContentType"]) == (
        "2",
        "Résumé 2026.pdf",
        "application/pdf",
    )
    part = await mailbox.get(f"/api/v1/message/{ident}/part/2")
    assert pdf["Size"] == len(part.content)
    assert pdf["Checksums"]["SHA256"] == hashlib.sha256(part.content).hexdigest()
    raw = await mailbox.get(f"/api/v1/message/{ident}/raw")
    assert raw.content == corpus("related")


async def test_a_name_with_bytes_its_charset_refuses_is_served(relay: Relay) -> None:
    # An encoded word in a From the standard library's parser reads (the stray colon): it left the
    # byte that is not UTF-8 as a lone surrogate, which no JSON response can encode (a 500).
    data = (
        b"From: =?UTF-8?Q?=C3=9Cn=:C3=B6?= <n@example.org>\r\nTo: r@example.net\r\n"
        b"Subject: names\r\n\r\nBody.\r\n"
    )
    await send(relay, [("n@example.org", ["r@example.net"], data)])
    [listed] = (await call(relay, "GET", "/api/v1/messages")).json()["messages"]
    answer = await call(relay, "GET", f"/api/v1/message/{listed['ID']}")
    assert answer.status_code == 200
    assert answer.json()["From"] == {"Name": "Ün=:C3\ufffd", "Address": "n@example.org"}
    assert listed["From"] == answer.json()["From"]


async def test_reading_a_message_marks_it_read(mailbox: Mailbox) -> None:
    async def read_flags() -> dict[str, bool]:
        listing = (await mailbox.get("/api/v1/messages")).json()["messages"]
        return {m["ID"]: m["Read"] for m in listing}

    assert not any((await read_flags()).values())
    await mailbox.get(f"/api/v1/message/{mailbox.ids['forward']}")
    flags = await read_flags()
    assert flags.pop(mailbox.ids["forward"]) is True
    assert not any(flags.values())
    info = (await mailbox.get("/api/v1/info")).json()
    assert (info["Messages"], info["Unread"]) == (4, 3)


async def test_latest_and_latest_with_a_query(mailbox: Mailbox) -> None:
    latest = (await mailbox.get("/api/v1/message/latest")).json()
    assert latest["ID"] == mailbox.ids["html-only"]
    assert latest["Text"] == "*****\nHello\n*****\n\nRead the news ( https://example.org/a )."
    found = (await mailbox.get("/api/v1/message/latest", query="order")).json()
    assert found["ID"] == mailbox.ids["related"]
    missing = await mailbox.get("/api/v1/message/latest", query="nowhere-to-be-found")
    assert (missing.status_code, missing.text) == (404, "Message not found")
    raw = await mailbox.get("/api/v1/message/latest/raw", query="broken")
    assert raw.content == corpus("broken")
    for unknown_id in ("01NOTAMESSAGE0000000000000", "x" * 5000):
        unknown = await mailbox.get(f"/api/v1/message/{unknown_id}")
        assert (unknown.status_code, unknown.text) == (404, "404 page not found")


async def test_latest_reads_its_query_as_the_search_route_does(mailbox: Mailbox) -> None:
    """In the `tz` zone (Mailpit passes it to its search), and refused beyond the search's
    bounds rather than read in part (a dropped term would answer a message it excludes)."""
    soon = datetime.now(UTC) + timedelta(hours=1)
    query = f"before:{soon:%Y-%m-%dT%H:%M}"  # an hour from now in UTC, 13 hours ago at UTC+14
    assert (await mailbox.get("/api/v1/message/latest", query=query)).status_code == 200
    far_east = await mailbox.get("/api/v1/message/latest", query=query, tz="Pacific/Kiritimati")
    assert (far_east.status_code, far_east.text) == (404, "Message not found")
    too_many = " ".join(["-subject:nothing"] * MAX_TERMS + ["subject:order"])
    for path in ("/api/v1/message/latest", "/api/v1/message/latest/raw", "/api/v1/search"):
        refused = await mailbox.get(path, query=too_many)
        assert refused.status_code == 400
        assert refused.text.startswith("search query too long")


async def test_headers_have_go_canonical_names_and_the_envelope_fields(mailbox: Mailbox) -> None:
    headers = (await mailbox.get(f"/api/v1/message/{mailbox.ids['related']}/headers")).json()
    assert list(headers) == sorted(headers)
    assert headers["Message-Id"] == ["<order-42@example.org>"]
    assert headers["Mime-Version"] == ["1.0"]
    assert headers["Dkim-Signature"] == ["v=1; a=rsa-sha256; d=example.org; s=sel; b=abc"]
    assert headers["List-Unsubscribe-Post"] == ["List-Unsubscribe=One-Click"]
    assert headers["Return-Path"] == ["<bounce@example.org>"]  # the envelope's, as Mailpit's
    assert headers["Bcc"] == ["blind@example.net"]
    assert headers["Subject"] == ["=?utf-8?q?Your_order_=E2=9C=93?="]  # values as written
    assert all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in headers.values())
    broken = (await mailbox.get(f"/api/v1/message/{mailbox.ids['broken']}/headers")).json()
    assert "Return-Path" not in broken  # null sender, no field: nothing to write


async def test_raw_source(mailbox: Mailbox) -> None:
    ident = mailbox.ids["forward"]
    raw = await mailbox.get(f"/api/v1/message/{ident}/raw")
    assert raw.headers["content-type"] == "text/plain; charset=utf-8"
    assert raw.headers["x-content-type-options"] == "nosniff"
    assert "content-disposition" not in raw.headers
    download = await mailbox.get(f"/api/v1/message/{ident}/raw", dl="1")
    assert download.headers["content-disposition"] == f'attachment; filename="{ident}.eml"'
    assert download.content == corpus("forward")


async def test_parts(mailbox: Mailbox) -> None:
    ident = mailbox.ids["related"]
    pdf = await mailbox.get(f"/api/v1/message/{ident}/part/2")
    assert pdf.content.startswith(b"%PDF-1.4")
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == 'inline; filename="R%C3%A9sum%C3%A9%202026.pdf"'
    logo = await mailbox.get(f"/api/v1/message/{ident}/part/1.2")
    assert logo.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(logo.content)).size == (300, 200)
    # HTML from the sender is never rendered in the UI's origin: a download instead.
    page = await mailbox.get(f"/api/v1/message/{ident}/part/4")
    assert page.headers["content-type"] == "application/octet-stream"
    assert page.headers["content-disposition"] == 'attachment; filename="page.html"'
    assert page.content == b"<script>alert(1)</script>"
    body = await mailbox.get(f"/api/v1/message/{ident}/part/1.1.1")
    assert (body.status_code, body.text) == (404, "404 page not found")
    latest = await mailbox.get("/api/v1/message/latest/part/2", query="order")
    assert latest.content == pdf.content


async def test_thumbnails(mailbox: Mailbox) -> None:
    ident = mailbox.ids["related"]
    for part in ("1.2", "1.3", "2"):  # large image, small image, not an image
        thumb = await mailbox.get(f"/api/v1/message/{ident}/part/{part}/thumb")
        assert thumb.headers["content-type"] == "image/jpeg"
        picture = Image.open(io.BytesIO(thumb.content))
        assert (picture.format, picture.size) == ("JPEG", (180, 120))
    named = await mailbox.get(f"/api/v1/message/{ident}/part/1.3/thumb")
    assert named.headers["content-disposition"] == 'filename="chart.png"'
    missing = await mailbox.get(f"/api/v1/message/{ident}/part/9/thumb")
    assert (missing.status_code, missing.text) == (400, "attachment not found")
    unknown = await mailbox.get("/api/v1/message/01NOTAMESSAGE0000000000000/part/1/thumb")
    assert (unknown.status_code, unknown.text) == (400, "sql: no rows in result set")


async def test_a_huge_attachment_is_served_whole(mailbox: Mailbox) -> None:
    payload = bytes(range(256)) * (24 * 1024)  # 6 MiB
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    data = (
        b"From: big@example.org\r\nTo: alex@example.net\r\nSubject: huge\r\n"
        b'Content-Type: multipart/mixed; boundary="h"\r\n\r\n--h\r\nContent-Type: text/plain\r\n\r\n'
        b"See attached.\r\n--h\r\nContent-Type: application/zip\r\n"
        b"Content-Disposition: attachment; filename=big.zip\r\nContent-Transfer-Encoding: base64\r\n"
        b"\r\n" + encoded + b"--h--\r\n"
    )
    await send_mail(mailbox.relay, "big@example.org", ["alex@example.net"], data)
    started = time.monotonic()
    message = (await mailbox.get("/api/v1/message/latest")).json()
    elapsed = time.monotonic() - started
    [attachment] = message["Attachments"]
    assert attachment["Size"] == len(payload)
    assert attachment["Checksums"]["SHA256"] == hashlib.sha256(payload).hexdigest()
    part = await mailbox.get(f"/api/v1/message/{message['ID']}/part/{attachment['PartID']}")
    assert part.content == payload
    assert elapsed < 10
