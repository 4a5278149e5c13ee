"""Regenerate the Python-built part of the calendar corpus: `python tests/data/ics/generate.py`.

Invitations as Outlook and Google Calendar lay them out, built with the stdlib's `email` package
and calendar data from the `icalendar` package (REQUEST, CANCEL, REPLY; 7bit, quoted-printable and
base64 calendar parts; non-ASCII names; RFC 2231 and RFC 2047 file names; LF line ends; attached
and signed messages). The nodemailer (Cal.com) messages come from `nodemailer/generate.js`.
Boundaries, dates and identifiers are fixed, so regenerating produces the same bytes.
"""

from __future__ import annotations

import email.encoders
import email.policy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, Message
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import icalendar

HERE = Path(__file__).parent
STAMP = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
START = datetime(2026, 2, 3, 14, 30, tzinfo=UTC)
CRLF = email.policy.SMTP
LF = email.policy.default


def calendar(
    method: str,
    *,
    summary: str = "Project review",
    organizer: tuple[str, str] = ("Olivia Organizer", "organizer@example.org"),
    attendees: tuple[tuple[str, str, str], ...] = (
        ("Alex Example", "alex@example.net", "NEEDS-ACTION"),
    ),
    sequence: int = 0,
    location: str = "Room 4.1",
) -> bytes:
    cal = icalendar.Calendar()
    cal.add("prodid", "-//mxrelay corpus//Python icalendar//EN")
    cal.add("version", "2.0")
    cal.add("method", method)
    event = icalendar.Event()
    event.add("uid", "040000008200E00074C5B7101A82E008-corpus@example.org")
    event.add("dtstamp", STAMP)
    event.add("dtstart", START)
    event.add("dtend", START + timedelta(minutes=45))
    event.add("summary", summary)
    event.add("location", location)
    event.add("sequence", sequence)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    name, address = organizer
    event.add("organizer", icalendar.vCalAddress(f"mailto:{address}"), parameters={"cn": name})
    for cn, mail, partstat in attendees:
        event.add(
            "attendee",
            icalendar.vCalAddress(f"mailto:{mail}"),
            parameters={"cn": cn, "partstat": partstat, "rsvp": "TRUE", "role": "REQ-PARTICIPANT"},
        )
    cal.add_component(event)
    data: bytes = cal.to_ical()
    return data


def headers(
    msg: Message, name: str, subject: str, to: str = "Alex Example <alex@example.net>"
) -> None:
    msg["From"] = "Olivia Organizer <organizer@example.org>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Thu, 15 Jan 2026 09:00:00 +0000"
    msg["Message-ID"] = f"<{name}@corpus.example.org>"
    if "MIME-Version" not in msg:
        msg["MIME-Version"] = "1.0"


def fix_boundaries(msg: Message, name: str) -> None:
    for index, part in enumerate(msg.walk()):
        if part.is_multipart():
            part.set_boundary(f"----=_Part_{name}_{index}")


def invitation(method: str, *, calendar_cte: str, attachment: bool, **cal: object) -> EmailMessage:
    """Google Calendar's layout: mixed → alternative(plain, html, calendar) + invite.ics."""
    ics = calendar(method, **cal)  # type: ignore[arg-type]
    alt = EmailMessage()
    alt.set_content("Olivia Organizer has invited you to Project review.\n")
    alt.add_alternative(
        "<p>Olivia Organizer has invited you to <b>Project review</b>.</p>\n", subtype="html"
    )
    alt.add_alternative(
        ics.decode("utf-8"), subtype="calendar", cte=calendar_cte, params={"method": method}
    )
    if not attachment:
        return alt
    outer = EmailMessage()
    outer.make_mixed()
    outer.attach(alt)
    outer.add_attachment(ics, maintype="application", subtype="ics", filename="invite.ics")
    return outer


def google_request() -> Message:
    return invitation("REQUEST", calendar_cte="7bit", attachment=True)


def google_cancel() -> Message:
    return invitation("CANCEL", calendar_cte="7bit", attachment=True, sequence=1)


def outlook_request() -> Message:
    """Outlook: the root is multipart/alternative; text parts quoted-printable, calendar base64."""
    ics = calendar("REQUEST", summary="Quartalsgespräch – Jörg Müller", location="Raum Ü")
    msg = EmailMessage()
    msg.set_content("Quartalsgespräch mit Jörg Müller\n", cte="quoted-printable")
    msg.add_alternative(
        "<p>Quartalsgespräch mit Jörg Müller</p>\n", subtype="html", cte="quoted-printable"
    )
    msg.add_alternative(
        ics.decode("utf-8"), subtype="calendar", cte="base64", params={"method": "REQUEST"}
    )
    msg["Thread-Topic"] = "Quartalsgespräch"
    msg["X-MS-Has-Attach"] = ""
    return msg


def outlook_request_attachment() -> Message:
    """Outlook with a file attached: mixed → alternative(plain, html, calendar) + invite.ics."""
    inner = outlook_request()
    assert isinstance(inner, EmailMessage)
    outer = EmailMessage()
    outer.make_mixed()
    del inner["Thread-Topic"], inner["X-MS-Has-Attach"]
    outer.attach(inner)
    outer.add_attachment(
        calendar("REQUEST", summary="Quartalsgespräch – Jörg Müller"),
        maintype="application",
        subtype="ics",
        filename="invite.ics",
    )
    return outer


def outlook_reply() -> Message:
    """An attendee's answer: alternative(plain, calendar method=REPLY)."""
    ics = calendar("REPLY", attendees=(("Alex Example", "alex@example.net", "ACCEPTED"),))
    msg = EmailMessage()
    msg.set_content("Accepted: Project review\n")
    msg.add_alternative(
        ics.decode("utf-8"), subtype="calendar", cte="base64", params={"method": "REPLY"}
    )
    return msg


def quoted_printable_unicode() -> Message:
    """Calendar part quoted-printable with non-ASCII names everywhere."""
    return invitation(
        "REQUEST",
        calendar_cte="quoted-printable",
        attachment=False,
        summary="Besprechung – 日本語の会議 – Ünïcödé",
        location="Café Zürich",
        organizer=("Zoë Ørganizer", "zoe@example.org"),
        attendees=(
            ("Jörg Müller", "joerg@example.com", "NEEDS-ACTION"),
            ("山田太郎", "taro@example.jp", "TENTATIVE"),
        ),
    )


def encoded_filenames() -> Message:
    """Attachments recognised only by file name: RFC 2231 and RFC 2047 encoded, octet-stream."""
    msg = MIMEMultipart("mixed")
    msg.attach(MIMEText("Two calendar files and a PDF are attached.\n", "plain", "utf-8"))
    ics = calendar("PUBLISH")
    first = MIMEApplication(ics, "octet-stream")
    first.add_header(
        "Content-Disposition", "attachment", filename=("utf-8", "", "Besprechung Müller.ics")
    )
    msg.attach(first)
    second = MIMEApplication(ics, "octet-stream")
    second.replace_header(
        "Content-Type", 'application/octet-stream; name="=?utf-8?B?VGVybWluIGbDvHIgSsO2cmcuaWNz?="'
    )
    second.add_header("Content-Disposition", "attachment")
    msg.attach(second)
    pdf = MIMEApplication(
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n", "pdf"
    )
    pdf.add_header("Content-Disposition", "attachment", filename="agenda.pdf")
    msg.attach(pdf)
    return msg


def legacy_formats() -> Message:
    """vCalendar (.vcs, text/x-vcalendar) and free/busy (.ifb) attachments."""
    msg = MIMEMultipart("mixed")
    msg.attach(MIMEText("Legacy calendar formats.\n", "plain", "us-ascii"))
    vcs = MIMEBase("text", "x-vcalendar")
    vcs.set_payload(
        "BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VEVENT\r\nSUMMARY:Old\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    vcs.add_header("Content-Disposition", "attachment", filename="meeting.vcs")
    msg.attach(vcs)
    ifb = MIMEApplication(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VFREEBUSY\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n",
        "octet-stream",
    )
    ifb.add_header("Content-Disposition", "attachment", filename="FREEBUSY.IFB")
    msg.attach(ifb)
    return msg


def calendar_only() -> Message:
    """The whole message is one text/calendar body."""
    msg = EmailMessage()
    msg.set_content(
        calendar("REQUEST").decode("utf-8"), subtype="calendar", params={"method": "REQUEST"}
    )
    return msg


def related_layout() -> Message:
    """mixed → related(alternative(plain, html, calendar), inline image) + a PDF."""
    ics = calendar("REQUEST")
    alt = MIMEMultipart("alternative")
    alt.attach(MIMEText("Plain invitation\n", "plain", "utf-8"))
    alt.attach(MIMEText('<p>HTML invitation <img src="cid:logo"></p>\n', "html", "utf-8"))
    alt.attach(MIMEText(ics.decode("utf-8"), "calendar", "utf-8"))
    alt.get_payload(2).set_param("method", "REQUEST")  # type: ignore[union-attr]
    related = MIMEMultipart("related")
    related.attach(alt)
    image = MIMEBase("image", "png")
    image.set_payload(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01")
    email.encoders.encode_base64(image)
    image.add_header("Content-ID", "<logo>")
    related.attach(image)
    msg = MIMEMultipart("mixed")
    msg.attach(related)
    pdf = MIMEApplication(b"%PDF-1.4\n%%EOF\n", "pdf")
    pdf.add_header("Content-Disposition", "attachment", filename="notes.pdf")
    msg.attach(pdf)
    return msg


def eight_bit() -> Message:
    """8bit text and calendar parts (raw UTF-8 bytes in the body), as SMTPUTF8 clients send."""
    ics = calendar("REQUEST", summary="Fête – 会議")
    msg = EmailMessage()
    msg.set_content("Einladung zur Fête – 会議\n", cte="8bit")
    msg.add_alternative(
        ics.decode("utf-8"), subtype="calendar", cte="8bit", params={"method": "REQUEST"}
    )
    outer = EmailMessage()
    outer.make_mixed()
    outer.attach(msg)
    outer.add_attachment(
        b"\x00\x01\x02binary\xff\xfe",
        maintype="application",
        subtype="octet-stream",
        filename="blob.bin",
    )
    return outer


def forwarded_invitation() -> Message:
    """An invitation forwarded as an attachment: the inner message is left alone by default."""
    inner = google_request()
    headers(inner, "inner", "Invitation: Project review")
    fix_boundaries(inner, "inner")
    msg = MIMEMultipart("mixed")
    msg.attach(MIMEText("FYI, see the attached invitation.\n", "plain", "us-ascii"))
    wrapper = MIMEBase("message", "rfc822")
    wrapper.set_payload([inner])
    wrapper.add_header("Content-Disposition", "attachment", filename="invitation.eml")
    msg.attach(wrapper)
    return msg


def signed_invitation() -> Message:
    """An invitation under multipart/signed: changing it would break the signature."""
    content = invitation("REQUEST", calendar_cte="7bit", attachment=False)
    signed = MIMEMultipart("signed", protocol="application/pkcs7-signature", micalg="sha-256")
    signed.attach(content)
    signature = MIMEApplication(b"0\x82\x01\x00not-a-real-signature", "pkcs7-signature")
    signature.add_header("Content-Disposition", "attachment", filename="smime.p7s")
    signed.attach(signature)
    return signed


MESSAGES: dict[str, tuple[Callable[[], Message], email.policy.Policy]] = {
    "google-request": (google_request, CRLF),
    "google-cancel": (google_cancel, CRLF),
    "google-request-lf": (google_request, LF),
    "outlook-request": (outlook_request, CRLF),
    "outlook-request-attachment": (outlook_request_attachment, CRLF),
    "outlook-reply": (outlook_reply, CRLF),
    "qp-unicode": (quoted_printable_unicode, CRLF),
    "encoded-filenames": (encoded_filenames, CRLF),
    "legacy-formats": (legacy_formats, CRLF),
    "calendar-only": (calendar_only, CRLF),
    "related-layout": (related_layout, CRLF),
    "eight-bit": (eight_bit, CRLF),
    "forwarded-invitation": (forwarded_invitation, CRLF),
    "signed-invitation": (signed_invitation, CRLF),
}


def main() -> None:
    for name, (build, policy) in MESSAGES.items():
        msg = build()
        headers(msg, name, f"Invitation: {name}")
        fix_boundaries(msg, name.replace("-", ""))
        data = msg.as_bytes(policy=policy.clone(max_line_length=78))
        (HERE / f"python-{name}.eml").write_bytes(data)


if __name__ == "__main__":
    main()
