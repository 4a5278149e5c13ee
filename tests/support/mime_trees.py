"""MIME test material: generated message trees (Hypothesis) and an independent oracle.

The oracle judges transform output with the stdlib's `email` parser (compat32, which keeps raw
header values and payloads), never with mxrelay's own scanner, so a scanner bug cannot hide
itself. The tree strategy renders messages by hand, so each leaf's exact bytes are known.
"""

from __future__ import annotations

import base64
import email
import email.header
import email.message
import email.utils
import quopri
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

CORPUS = Path(__file__).resolve().parent.parent / "data" / "ics"
CALENDAR_TYPES = {"text/calendar", "application/ics", "text/x-vcalendar", "application/x-ics"}
CALENDAR_EXTENSIONS = (".ics", ".ical", ".ifb", ".vcs")


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.eml"))


# --------------------------------------------------------------------------------------------
# Oracle (stdlib email)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OracleLeaf:
    content_type: str
    disposition: str | None
    filename: str | None
    in_alternative: bool
    headers: tuple[tuple[str, str], ...]
    payload: str

    @property
    def calendar(self) -> bool:
        if self.content_type in CALENDAR_TYPES:
            return True
        return bool(self.filename) and str(self.filename).lower().endswith(CALENDAR_EXTENSIONS)


def parse(data: bytes) -> email.message.Message:
    return email.message_from_bytes(data)


def leaves(msg: email.message.Message, *, descend: bool = False) -> list[OracleLeaf]:
    """Leaf parts in document order; message/rfc822 parts are leaves unless `descend`."""
    out: list[OracleLeaf] = []
    _collect(msg, False, descend, out)
    return out


def _collect(
    part: email.message.Message, in_alternative: bool, descend: bool, out: list[OracleLeaf]
) -> None:
    ctype = part.get_content_type()
    if part.is_multipart() and ctype.startswith("multipart/"):
        for child in part.get_payload():
            assert isinstance(child, email.message.Message)
            _collect(child, ctype == "multipart/alternative", descend, out)
        return
    if ctype == "message/rfc822" and descend and part.is_multipart():
        inner = part.get_payload(0)
        assert isinstance(inner, email.message.Message)
        _collect(inner, False, descend, out)
        return
    # The raw payload: get_payload() would decode 8-bit text through its charset.
    payload = getattr(part, "_payload", "")
    if not isinstance(payload, str):
        payload = "".join(str(p) for p in payload)  # an rfc822 leaf: compare its rendering
    out.append(
        OracleLeaf(
            content_type=ctype,
            disposition=part.get_content_disposition(),
            filename=_filename(part),
            in_alternative=in_alternative,
            headers=tuple((k, str(v)) for k, v in part.items()),
            payload=payload,
        )
    )


def _filename(part: email.message.Message) -> str | None:
    for name in (part.get_filename(), part.get_param("name")):
        if isinstance(name, tuple):
            name = email.utils.collapse_rfc2231_value(name)
        if isinstance(name, str) and name:
            if "=?" in name:
                name = str(email.header.make_header(email.header.decode_header(name)))
            return name
    return None


def decoded_payload(leaf: OracleLeaf) -> bytes:
    """A leaf's content after its transfer encoding, line ends normalized."""
    cte = {k.lower(): v for k, v in leaf.headers}.get("content-transfer-encoding", "")
    raw = leaf.payload.encode("ascii", "surrogateescape")
    if cte.strip().lower() == "base64":
        raw = base64.b64decode(raw)
    elif cte.strip().lower() == "quoted-printable":
        raw = quopri.decodestring(raw)
    return raw.replace(b"\r\n", b"\n").strip()


def defects(msg: email.message.Message) -> list[str]:
    return [type(d).__name__ for part in msg.walk() for d in part.defects]


# --------------------------------------------------------------------------------------------
# Generated trees
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    header_lines: tuple[str, ...]
    body: bytes
    calendar: bool


@dataclass(frozen=True)
class Multi:
    subtype: str
    children: tuple[Leaf | Multi, ...]


_TEXT = st.text(
    alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd"), max_codepoint=0x7F)
    | st.just(" "),
    min_size=0,
    max_size=40,
)
_LINES = st.lists(_TEXT, min_size=0, max_size=5)


def _body(lines: list[str]) -> bytes:
    return "\n".join(lines).encode("ascii")


@st.composite
def _calendar_body(draw: st.DrawFn) -> bytes:
    summary = draw(_TEXT)
    return f"BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nSUMMARY:{summary}\nEND:VEVENT\nEND:VCALENDAR".encode()


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).rstrip(b"\n")


@st.composite
def leaf_parts(draw: st.DrawFn) -> Leaf:
    kind = draw(
        st.sampled_from(
            [
                "plain",
                "html",
                "png",
                "pdf",
                "eightbit",
                "calendar",
                "calendar-b64",
                "ics-attachment",
                "ics-by-name",
                "ics-by-2231-name",
                "vcs-by-name",
            ]
        )
    )
    lines = draw(_LINES)
    if kind == "plain":
        return Leaf(("Content-Type: text/plain; charset=us-ascii",), _body(lines), False)
    if kind == "html":
        return Leaf(
            ("Content-Type: text/html; charset=us-ascii", "Content-Transfer-Encoding: 7bit"),
            b"<p>" + _body(lines) + b"</p>",
            False,
        )
    if kind == "png":
        blob = draw(st.binary(max_size=60))
        return Leaf(
            (
                "Content-Type: image/png",
                "Content-Transfer-Encoding: base64",
                "Content-ID: <img@example>",
            ),
            _b64(blob),
            False,
        )
    if kind == "pdf":
        blob = draw(st.binary(max_size=60))
        return Leaf(
            (
                "Content-Type: application/pdf; name=doc.pdf",
                "Content-Disposition: attachment;\n filename=doc.pdf",
                "Content-Transfer-Encoding: base64",
            ),
            _b64(blob),
            False,
        )
    if kind == "eightbit":
        text = draw(st.text(alphabet="äöü€日本 abc", max_size=30))
        return Leaf(
            ("Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"),
            text.encode("utf-8"),
            False,
        )
    cal = draw(_calendar_body())
    method = draw(st.sampled_from(["REQUEST", "CANCEL", "REPLY", "PUBLISH"]))
    if kind == "calendar":
        return Leaf((f"Content-Type: text/calendar; charset=utf-8; method={method}",), cal, True)
    if kind == "calendar-b64":
        return Leaf(
            (
                f'Content-Type: text/calendar;\n charset="utf-8"; method={method}',
                "Content-Transfer-Encoding: base64",
            ),
            _b64(cal),
            True,
        )
    if kind == "ics-attachment":
        return Leaf(
            (
                'Content-Type: application/ics; name="invite.ics"',
                'Content-Disposition: attachment; filename="invite.ics"',
                "Content-Transfer-Encoding: base64",
            ),
            _b64(cal),
            True,
        )
    if kind == "ics-by-name":
        return Leaf(
            ("Content-Type: application/octet-stream; name=Meeting.ICS",),
            cal,
            True,
        )
    if kind == "ics-by-2231-name":
        return Leaf(
            (
                "Content-Type: application/octet-stream",
                "Content-Disposition: attachment;\n filename*=utf-8''Termin%20f%C3%BCr%20J%C3%B6rg.ics",
            ),
            cal,
            True,
        )
    return Leaf(("Content-Type: application/octet-stream; name=old.vcs",), cal, True)


trees = st.recursive(
    leaf_parts(),
    lambda children: st.builds(
        Multi,
        st.sampled_from(["mixed", "alternative", "related"]),
        st.lists(children, min_size=1, max_size=4).map(tuple),
    ),
    max_leaves=10,
)


def render(tree: Leaf | Multi, newline: bytes) -> bytes:
    """A whole message for `tree` with `newline` line ends (boundaries unique per multipart)."""
    counter = [0]
    head = b"From: a@example.org\nTo: b@example.net\nSubject: generated\nMIME-Version: 1.0\n"
    body = _render(tree, counter)
    return (head + body).replace(b"\n", newline)


def _render(node: Leaf | Multi, counter: list[int]) -> bytes:
    if isinstance(node, Leaf):
        return "\n".join(node.header_lines).encode() + b"\n\n" + node.body
    counter[0] += 1
    boundary = f"=_b{counter[0]}_=".encode()
    out = (
        b"Content-Type: multipart/" + node.subtype.encode() + b'; boundary="' + boundary + b'"\n\n'
    )
    out += b"preamble\n"
    for child in node.children:
        out += b"--" + boundary + b"\n" + _render(child, counter) + b"\n"
    return out + b"--" + boundary + b"--\n"


def tree_leaves(tree: Leaf | Multi) -> list[Leaf]:
    if isinstance(tree, Leaf):
        return [tree]
    return [leaf for child in tree.children for leaf in tree_leaves(child)]
