"""The `List-Unsubscribe` field (RFC 2369, RFC 8058) checked as Mailpit checks it, with its messages.

Mailpit's message view carries the field, the links it found (at most one `mailto:` and one HTTP
link) and, when the field is not as the RFCs want it, the problems in Mailpit's own words (its
`tools.ListUnsubscribeParser`): comments in parentheses are dropped first; then the value must
hold `<...>` entries, be enclosed in `<>`, hold at most two entries, joined by a comma and
optional blanks, each without spaces, starting with `mailto:` or `http(s)://` (one of each at
most), and each must parse as Go's `url.ParseRequestURI` parses a URL. `List-Unsubscribe-Post`
(RFC 8058's one-click) is shown as it is, as Mailpit shows it.

Every pattern here is linear: lazy `.*?` between fixed delimiters, no nested repetition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ENTRY = re.compile(r"<(.*?)>")
_JOIN = re.compile(r">(.*?)<", re.DOTALL)
_VALID_JOIN = re.compile(r"^[\t\n\f\r ]*,[\t\n\f\r ]*$", re.MULTILINE)
_WRAPPED = re.compile(r"^<.*>$", re.MULTILINE | re.DOTALL)
_MAILTO = re.compile(r"mailto:[a-zA-Z0-9]")
_HTTP = re.compile(r"https?://[a-zA-Z0-9]", re.IGNORECASE)
_SPACE = re.compile(r"[\t\n\f\r ]")
_COMMENT = re.compile(r"\(.*?\)", re.DOTALL)
_TRIM = " \t\n\f\r\v\x85\xa0"
VALUE_LIMIT = 8192
"""Characters of the field that are checked (a real one is a few hundred)."""


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Mailpit's `ListUnsubscribe` object."""

    header: str = ""
    links: tuple[str, ...] = ()
    errors: str = ""
    header_post: str = ""


def list_unsubscribe(header: str, post: str = "") -> Unsubscribe:
    """The field's links and problems (`header` is the field's value as read, empty when the
    message has none: then nothing is checked)."""
    if not header:
        return Unsubscribe()
    links, errors = parse_links(header[:VALUE_LIMIT])
    return Unsubscribe(header, tuple(links), errors, post)


def parse_links(value: str) -> tuple[list[str], str]:
    """(links, error text): Mailpit's `ListUnsubscribeParser`."""
    value = value.strip(_TRIM)
    for comment in _COMMENT.findall(value):
        value = value.replace(comment, "").strip(_TRIM)
    if not _ENTRY.search(value):
        return [], f'"{value}" no valid unsubscribe links found'
    if not _WRAPPED.search(value):
        return [], f'"{value}" should be enclosed in <>'
    entries = _ENTRY.findall(value)
    if len(entries) > 2:
        return [], f'"{value}" should include a maximum of one email and one HTTP link'
    for join in _JOIN.findall(value):
        if not _VALID_JOIN.search(join):
            return [], f'"{value}" <> should be split with a comma and optional spaces'
    links: list[str] = []
    errors: list[str] = []
    has_mailto = has_http = False
    for entry in entries:
        if _SPACE.search(entry):
            errors.append(f'"{entry}" should not contain spaces')
            continue
        if _MAILTO.match(entry):
            if has_mailto:
                errors.append(f'"{entry}" should only contain one mailto:')
                continue
            has_mailto = True
        elif _HTTP.match(entry):
            if has_http:
                errors.append(f'"{entry}" should only contain one HTTP link')
                continue
            has_http = True
        else:
            errors.append(f'"{entry}" should start with either http(s):// or mailto:')
            continue
        problem = request_uri_error(entry)
        if problem:
            errors.append(problem)
            continue
        links.append(entry)
    return links, ", ".join(errors)


# --------------------------------------------------------------------------------------------
# Go's url.ParseRequestURI, as far as an absolute mailto: or http(s): URL can fail it
# --------------------------------------------------------------------------------------------

_HEX = frozenset("0123456789abcdefABCDEF")
_HOST_SAFE = frozenset("!$&'()*+,;=:[]<>\"-_.~")


def request_uri_error(url: str) -> str:
    """Go's error text for `url.ParseRequestURI(url)`, empty when it parses. `url` starts with a
    scheme (`mailto:` or `http(s)://`) and has no blanks (the caller checked both)."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        return _parse_error(url, "net/url: invalid control character in URL")
    rest = url.partition(":")[2].partition("?")[0]
    if not rest.startswith("/"):
        return ""  # opaque (mailto:...): not looked into
    problem = ""
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        problem = _authority_error(authority)
        rest = slash + path
    if not problem:
        problem = _escape_error(rest, host=False)
    return _parse_error(url, problem) if problem else ""


def _parse_error(url: str, problem: str) -> str:
    return f"parse {go_quote(url)}: {problem}"


def _authority_error(authority: str) -> str:
    userinfo, at, host = authority.rpartition("@")
    if at and any(not (c.isalnum() or c in "-._:~!$&'()*+,;=%@") for c in userinfo):
        return "net/url: invalid userinfo"
    if host.startswith("["):
        close = host.find("]")
        if close == -1:
            return "missing ']' in host"
        port = host[close + 1 :]
        if port and not _valid_port(port):
            return f"invalid port {go_quote(port)} after host"
        return ""
    colon = host.rfind(":")
    if colon != -1 and not _valid_port(host[colon:]):
        return f"invalid port {go_quote(host[colon:])} after host"
    return _escape_error(host, host=True)


def _valid_port(port: str) -> bool:
    """Go's `validOptionalPort`: empty, or `:` and digits only."""
    return port == "" or (port.startswith(":") and all(c in "0123456789" for c in port[1:]))


def _escape_error(text: str, *, host: bool) -> str:
    """Go's `unescape` errors: a `%` not followed by two hex digits; in a host, a character that
    must be escaped."""
    index = 0
    while index < len(text):
        char = text[index]
        if char == "%":
            escape = text[index : index + 3]
            if len(escape) < 3 or escape[1] not in _HEX or escape[2] not in _HEX:
                return f"invalid URL escape {go_quote(escape)}"
            index += 3
            continue
        if host and ord(char) < 0x80 and not (char.isalnum() or char in _HOST_SAFE):
            return f"invalid character {go_quote(char)} in host name"
        index += 1
    return ""


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def go_quote(text: str) -> str:
    """`text` as Go's `%q` (strconv.Quote) writes it: double quotes, backslash escapes for quotes,
    backslashes and control characters; printable non-ASCII characters as they are."""
    out = ['"']
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char == "\v":
            out.append("\\v")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        elif char == "\ufffd" or not char.isprintable():
            out.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)
