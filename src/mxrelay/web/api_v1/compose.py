"""Mailpit's SendRequest, read and built into a message (`POST /api/v1/send`).

`SEND_REQUEST` is Mailpit's struct, filled from the body as Go's decoder fills it (`gojson.py`);
`read_send_request` takes its fields, and `compose` checks them in Mailpit's order, with Mailpit's
error texts (`invalid To address: …`, `cannot overwrite header: "…"`, `error building message:
subject not set`), and builds the message with the standard library's `EmailMessage` in the
structure Mailpit's builder gives it: a text part (always, even empty), the HTML as its
alternative, inline files (those with a `ContentID`) beside them in a multipart/related, other
files in a multipart/mixed; headers From, To, Cc, Reply-To, Subject, Date, a Message-ID unless one
is given, `X-Tags` for the tags, then the request's own headers. Text is quoted-printable and files base64, so the message is 7-bit
unless an address needs SMTPUTF8.

Bcc recipients are envelope recipients only: no `Bcc:` field is written, since the message goes
out as built and every recipient would read it. Bounded: the body is bounded by its route, and
header names and values by the limits below.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import mimetypes
import re
from dataclasses import dataclass
from datetime import datetime
from email import quoprimime
from email.errors import NonASCIILocalPartDefect
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TypeAlias

from mxrelay.web.api_v1.gojson import STRING, STRINGS, Field, GoObject, Slice, StringMap, Struct

MAILBOX = Struct((Field("Name", STRING), Field("Email", STRING)))
FILE = Struct(
    (
        Field("Content", STRING),
        Field("Filename", STRING),
        Field("ContentType", STRING),
        Field("ContentID", STRING),
    )
)
SEND_REQUEST = (
    Field("From", MAILBOX),
    Field("To", Slice(MAILBOX)),
    Field("Cc", Slice(MAILBOX)),
    Field("Bcc", STRINGS),
    Field("ReplyTo", Slice(MAILBOX)),
    Field("Subject", STRING),
    Field("Text", STRING),
    Field("HTML", STRING),
    Field("Attachments", Slice(FILE)),
    Field("Tags", STRINGS),
    Field("Headers", StringMap(STRING)),
)
"""Mailpit's SendRequest, field for field in its order: the anonymous struct its handler decodes
into, which Go's error texts spell out."""

Policy: TypeAlias = "email.policy.EmailPolicy[EmailMessage]"

RESTRICTED = frozenset(
    name.lower()
    for name in (
        "To",
        "From",
        "Cc",
        "Bcc",
        "Reply-To",
        "Date",
        "Subject",
        "Content-Type",
        "Mime-Version",
        "Content-Transfer-Encoding",
    )
)
"""Headers the request may not set (Mailpit's list, and the transfer encoding the builder sets)."""

HEADER_COUNT_LIMIT = 100
HEADER_VALUE_LIMIT = 4096
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00")
"""What may not be in a header value: every line boundary of `str.splitlines` (the standard
library refuses a value it would split), and NUL."""
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")
"""A field name: printable ASCII without the colon (RFC 5322 ftext), at most one folded line."""


class ComposeError(ValueError):
    """The request cannot become a message: 400 with this text."""


@dataclass(frozen=True, slots=True)
class Mailbox:
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class FileItem:
    content: str
    filename: str
    content_type: str
    content_id: str


@dataclass(frozen=True, slots=True)
class SendRequest:
    sender: Mailbox
    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...]
    bcc: tuple[str, ...]
    reply_to: tuple[Mailbox, ...]
    subject: str
    text: str
    html: str
    attachments: tuple[FileItem, ...]
    tags: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Composed:
    """The built message and its envelope."""

    data: bytes
    mail_from: str
    recipients: tuple[str, ...]
    smtputf8: bool


def _mailbox(item: GoObject) -> Mailbox:
    return Mailbox(item.text("Name"), item.text("Email"))


def read_send_request(body: GoObject) -> SendRequest:
    """The SendRequest's fields, as `gojson.decode` filled them."""
    return SendRequest(
        sender=_mailbox(body.object("From")),
        to=tuple(_mailbox(item) for item in body.objects("To")),
        cc=tuple(_mailbox(item) for item in body.objects("Cc")),
        bcc=tuple(body.texts("Bcc")),
        reply_to=tuple(_mailbox(item) for item in body.objects("ReplyTo")),
        subject=body.text("Subject"),
        text=body.text("Text"),
        html=body.text("HTML"),
        attachments=tuple(
            FileItem(
                item.text("Content"),
                item.text("Filename"),
                item.text("ContentType"),
                item.text("ContentID"),
            )
            for item in body.objects("Attachments")
        ),
        tags=tuple(body.texts("Tags")),
        headers=tuple(body.string_map("Headers")),
    )


def parse_address(text: str) -> Address | None:
    """An address as Go's `mail.ParseAddress` takes one (`a@b` or `Name <a@b>`), or None."""
    value = text.strip()
    if not value or any(c in value for c in "\r\n\x00") or len(value) > 998:
        return None
    try:
        parsed = email.policy.SMTPUTF8.header_factory("to", value)
        addresses = parsed.addresses
    except (ValueError, IndexError, TypeError):
        return None
    # A non-ASCII local part is an SMTPUTF8 address, which Go's parser takes too.
    defects = [
        d for d in getattr(parsed, "defects", ()) if not isinstance(d, NonASCIILocalPartDefect)
    ]
    if defects or len(addresses) != 1:
        return None
    address: Address = addresses[0]
    if not address.username or not address.domain or " " in address.addr_spec:
        return None
    return address


def _checked(kind: str, mailbox: Mailbox) -> Address:
    found = parse_address(mailbox.email)
    if found is None:
        raise ComposeError(f"invalid {kind} address: {mailbox.email}")
    try:
        return Address(display_name=mailbox.name, username=found.username, domain=found.domain)
    except (ValueError, IndexError):
        raise ComposeError(f"invalid {kind} address: {mailbox.email}") from None


def compose(request: SendRequest, *, now: datetime, hostname: str) -> Composed:
    """The message Mailpit would build for `request`; ComposeError with Mailpit's text."""
    to = [_checked("To", m) for m in request.to]
    cc = [_checked("Cc", m) for m in request.cc]
    bcc = [_checked("Bcc", Mailbox("", e)) for e in request.bcc]
    reply_to = [_checked("Reply-To", m) for m in request.reply_to]
    headers = _extra_headers(request)
    files = [(item, _decoded(item)) for item in request.attachments]
    if not request.sender.email:
        raise ComposeError("error building message: from not set")
    sender = _checked("From", request.sender)
    if not request.subject:
        raise ComposeError("error building message: subject not set")
    if not to and not cc and not bcc:
        raise ComposeError("error building message: no recipients (to, cc, bcc) set")
    envelope = [sender, *to, *cc, *bcc]
    smtputf8 = not all(a.addr_spec.isascii() for a in envelope)
    policy = email.policy.SMTPUTF8 if smtputf8 else email.policy.SMTP
    message = _body(request, files, policy)
    message["MIME-Version"] = "1.0"
    try:
        message["From"] = sender
        if to:
            message["To"] = to
        if cc:
            message["Cc"] = cc
        if reply_to:
            message["Reply-To"] = reply_to
        message["Subject"] = request.subject
    except (ValueError, IndexError) as exc:
        raise ComposeError(f"error building message: {exc}") from None
    message["Date"] = format_datetime(now)
    if not any(name.lower() == "message-id" for name, _ in headers):
        message["Message-ID"] = make_msgid(domain=hostname)
    for name, value in headers:
        try:
            message[name] = value
            policy.fold_binary(name, message[name])  # what `as_bytes` writes of it
        except (ValueError, IndexError, TypeError):
            raise ComposeError(f'invalid value for header "{name}"') from None
    try:
        data = message.as_bytes(policy=policy)
    except (ValueError, IndexError, TypeError):
        raise ComposeError("error building message: a header cannot be encoded") from None
    return Composed(
        data=data,
        mail_from=sender.addr_spec,
        recipients=tuple(a.addr_spec for a in (*to, *cc, *bcc)),
        smtputf8=smtputf8,
    )


def _extra_headers(request: SendRequest) -> list[tuple[str, str]]:
    restricted = set(RESTRICTED)
    found: list[tuple[str, str]] = []
    if request.tags:
        found.append(("X-Tags", ", ".join(request.tags)))
        restricted.add("x-tags")
    if len(request.headers) > HEADER_COUNT_LIMIT:
        raise ComposeError(f"too many headers (at most {HEADER_COUNT_LIMIT})")
    for name, value in request.headers:
        if name.lower() in restricted:
            raise ComposeError(f'cannot overwrite header: "{name}"')
        if not _HEADER_NAME.match(name):
            raise ComposeError(f'invalid header name: "{name[:100]}"')
        if len(value) > HEADER_VALUE_LIMIT or any(c in LINE_BREAKS for c in value):
            raise ComposeError(f'invalid value for header "{name}"')
        found.append((name, value))
    return found


def _decoded(item: FileItem) -> bytes:
    # A data URL (`data:image/png;base64,…`, from a browser's readAsDataURL) is cut at its comma.
    content = item.content.rsplit(",", 1)[-1]
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ComposeError(
            f'error decoding base64 attachment "{item.filename}": illegal base64 data ({exc})'
        ) from None


def _content_type(item: FileItem, data: bytes) -> tuple[str, str]:
    kind = item.content_type.strip() or (
        mimetypes.guess_type(item.filename)[0] or "application/octet-stream"
    )
    maintype, _, subtype = kind.partition("/")
    maintype, subtype = maintype.strip().lower(), subtype.split(";", 1)[0].strip().lower()
    if not maintype or not subtype or not _HEADER_NAME.match(f"{maintype}/{subtype}"):
        return "application", "octet-stream"
    return maintype, subtype


def _text_part(text: str, subtype: str, policy: Policy) -> EmailMessage:
    """A text part whose content is exactly `text` (line ends as CRLF, nothing added at its end,
    as Mailpit's builder writes it): 7bit when it can go so, else quoted-printable."""
    part = EmailMessage(policy=policy)
    lines = text.replace("\r\n", "\n").replace("\r", "\n")
    if _plain(lines):
        payload, cte = lines.replace("\n", "\r\n"), "7bit"
    else:
        payload = quoprimime.body_encode(lines.encode("utf-8").decode("latin-1"), eol="\r\n")
        cte = "quoted-printable"
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = cte
    part.set_payload(payload)
    return part


def _file_part(item: FileItem, data: bytes, disposition: str, policy: Policy) -> EmailMessage:
    part = EmailMessage(policy=policy)
    maintype, subtype = _content_type(item, data)
    cid = f"<{item.content_id.strip('<>')}>" if item.content_id else None
    part.set_content(
        data,
        maintype=maintype,
        subtype=subtype,
        disposition=disposition,
        filename=item.filename or None,
        cid=cid,
    )
    del part["MIME-Version"]  # set_content's, for a message of its own; a part needs none
    return part


def _multipart(subtype: str, parts: list[EmailMessage], policy: Policy) -> EmailMessage:
    container = EmailMessage(policy=policy)
    container["Content-Type"] = f"multipart/{subtype}"
    for part in parts:
        container.attach(part)
    return container


def _body(
    request: SendRequest, files: list[tuple[FileItem, bytes]], policy: Policy
) -> EmailMessage:
    """The MIME tree: mixed(related(alternative(text, html), inline…), attachment…), each level
    only when it has something to hold."""
    root = _text_part(request.text, "plain", policy)
    if request.html:
        root = _multipart("alternative", [root, _text_part(request.html, "html", policy)], policy)
    inline = [_file_part(item, data, "inline", policy) for item, data in files if item.content_id]
    if inline:
        root = _multipart("related", [root, *inline], policy)
    attached = [
        _file_part(item, data, "attachment", policy) for item, data in files if not item.content_id
    ]
    if attached:
        root = _multipart("mixed", [root, *attached], policy)
    return root


def _plain(text: str) -> bool:
    """7-bit text with lines short enough to go as they are."""
    return text.isascii() and all(len(line) <= 900 for line in text.splitlines())
