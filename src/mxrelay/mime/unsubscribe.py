"""The `List-Unsubscribe` field (RFC 2369, RFC 8058) checked as Mailpit checks it, with its messages.

Mailpit's message view carries the field, the links it found (at most one `mailto:` and one HTTP
link) and, when the field is not as the RFCs want it, the problems in Mailpit's own words (its
`tools.ListUnsubscribeParser`): comments in parentheses are dropped first; then the value must
hold `<...>` entries, be enclosed in `<>`, hold at most two entries, joined by a comma and
optional blanks, each without spaces, starting with `mailto:` or `http(s)://` (one of each at
most), and each must parse as Go's `url.ParseRequestURI` parses a URL. `List-Unsubscribe-Post`
(RFC 8058's one-click) is shown as it is, as Mailpit shows it.

Everything here is linear in the value. Mailpit finds `<...>`, `(...)` and what joins the entries
with lazy patterns (`<(.*?)>`), which restart their scan at every unclosed opener; `delimited`
finds the same pieces in one forward scan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VALID_JOIN = re.compile(r"^[\t\n\f\r ]*,[\t\n\f\r ]*$", re.MULTILINE)
_LINE_OPENS = re.compile(r"^<", re.MULTILINE)
_LINE_CLOSES = re.compile(r">$", re.MULTILINE)
_MAILTO = re.compile(r"mailto:[a-zA-Z0-9]")
_HTTP = re.compile(r"https?://[a-zA-Z0-9]", re.IGNORECASE)
_SPACE = re.compile(r"[\t\n\f\r ]")
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
    for comment in delimited(value, "(", ")", inner=False):
        value = value.replace(comment, "").strip(_TRIM)
    entries = delimited(value, "<", ">", one_line=True)
    if not entries:
        return [], f'"{value}" no valid unsubscribe links found'
    if not wrapped(value):
        return [], f'"{value}" should be enclosed in <>'
    if len(entries) > 2:
        return [], f'"{value}" should include a maximum of one email and one HTTP link'
    for join in delimited(value, ">", "<"):
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


def delimited(
    value: str, opener: str, closer: str, *, one_line: bool = False, inner: bool = True
) -> list[str]:
    """What `re.findall(opener + "(.*?)" + closer, value)` finds (with `re.DOTALL` unless
    `one_line`): the text between each opener and the first closer after it (with them when not
    `inner`), left to right, without overlap. One forward scan: an opener with no closer after it
    ends the search (none after it has one either), and on one line the closer is looked for
    only up to the line's end."""
    found: list[str] = []
    pos = 0
    while (start := value.find(opener, pos)) != -1:
        stop = len(value)
        if one_line:
            newline = value.find("\n", start + 1)
            stop = stop if newline == -1 else newline
        end = value.find(closer, start + 1, stop)
        if end == -1:
            if stop == len(value):
                break
            pos = stop + 1  # no opener up to this line end has a closer on its line
            continue
        found.append(value[start + 1 : end] if inner else value[start : end + 1])
        pos = end + 1
    return found


def wrapped(value: str) -> bool:
    """What `re.search(r"^<.*>$", value, re.MULTILINE | re.DOTALL)` says: a line starts with `<`
    and a `>` after it ends a line. Only the first such `<` needs looking at."""
    opens = _LINE_OPENS.search(value)
    return opens is not None and _LINE_CLOSES.search(value, opens.start() + 1) is not None


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
