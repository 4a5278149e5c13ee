"""Parsing of MAIL and RCPT arguments: the path token, ESMTP parameters, reverse-path syntax.

Only the SMTP grammar lives here. Whether a recipient's domain can receive mail is the recipient
check's business (`dns/address.py` judges the forward-path in full); the engine only needs to find
where the path ends, which must respect quoted local parts such as `<"a>b"@example.net>`.
"""

from __future__ import annotations

import re

from mxrelay.model import MailParams, Reply, utf8_address_text
from mxrelay.smtp import replies

_ESMTP_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_DOMAIN_LABEL = re.compile(r'^[^\s.@\[\]<>()",;:\\]+$')
_SIZE_VALUE = re.compile(r"[0-9]{1,20}", re.ASCII)
"""RFC 1870's size-value, 1*20DIGIT: ASCII digits only (str.isdigit() also passes `²`, which
int() refuses, and `١٢٣`, which the relay would pass on as it was written)."""


def path_argument(text: str, keyword: str) -> tuple[str, str] | None:
    """`FROM:<path> PARAMS` (MAIL) or `TO:<path> PARAMS` (RCPT), the keyword in any case, into the
    bracketed path and the rest; None when the keyword or the path is missing or malformed."""
    if text[: len(keyword)].upper() != keyword:
        return None
    return split_path_and_params(text[len(keyword) :])


def split_path_and_params(text: str) -> tuple[str, str] | None:
    """Split `<path> PARAMS` (after `FROM:`/`TO:`) into the bracketed path and the rest.

    Tolerates a space after the colon and a path without brackets, as Postfix does with
    `strict_rfc821_envelopes = no`; the path is returned with its brackets either way.
    """
    text = text.lstrip(" ")
    if not text:
        return None
    if not text.startswith("<"):
        path, _, rest = text.partition(" ")
        if "<" in path or ">" in path:
            return None
        return f"<{path}>", rest.strip()
    in_quotes = False
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and in_quotes:
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
        elif char == ">" and not in_quotes:
            rest = text[index + 1 :]
            if rest and not rest.startswith(" "):
                return None
            return text[: index + 1], rest.strip()
    return None


def parse_mail_params(
    raw: str, *, esmtp: bool
) -> tuple[MailParams, bool, bool, int | None] | Reply:
    """MAIL FROM parameters → (params, smtputf8, 8bitmime, declared size), or the error reply."""
    params: list[tuple[str, str | None]] = []
    smtputf8 = False
    body_8bit = False
    size: int | None = None
    for item in raw.split():
        keyword, sep, value = item.partition("=")
        keyword = keyword.upper()
        if not esmtp or not _ESMTP_KEYWORD.match(keyword):
            return replies.unsupported_parameter(keyword or item)
        if keyword == "SIZE":
            if not _SIZE_VALUE.fullmatch(value):
                return replies.bad_parameter("SIZE")
            size = int(value)
        elif keyword == "BODY":
            body = value.upper()
            if body == "8BITMIME":
                body_8bit = True
            elif body != "7BIT":
                return replies.unsupported_parameter(f"BODY={value}")
        elif keyword == "SMTPUTF8":
            if sep:
                return replies.bad_parameter("SMTPUTF8")
            smtputf8 = True
        elif keyword == "AUTH":
            pass  # RFC 4954 5: accepted; the relay does not forward submitter identities
        else:
            return replies.unsupported_parameter(keyword)
        params.append((keyword, value if sep else None))
    return tuple(params), smtputf8, body_8bit, size


def valid_reverse_path(path: str) -> bool:
    """`<>` or `<[@route,...:]local@domain>` (RFC 5321 4.1.2, with RFC 6531's UTF-8).

    No control character passes, quoted or not (CR, LF, NUL, TAB, ESC, DEL, C1): the sender is
    written into log lines, the store and, in Graph mode, a From header, and is sent to the next
    hop, which must not see a different address, or a second line, than the client gave here.
    """
    if path == "<>":
        return True
    if len(path) < 5 or len(path) > 258 or not (path.startswith("<") and path.endswith(">")):
        return False
    mailbox = path[1:-1]
    if mailbox.startswith("@"):
        route, colon, mailbox = mailbox.partition(":")
        if not colon or not all(_valid_domain(hop.lstrip("@")) for hop in route.split(",")):
            return False
    local, at, domain = mailbox.rpartition("@")
    if not at or not _valid_local_part(local):
        return False
    if domain.startswith("[") and domain.endswith("]"):
        return _ADDRESS_LITERAL.match(domain[1:-1]) is not None
    return _valid_domain(domain)


_ATEXT = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
)
_ADDRESS_LITERAL = re.compile(r"^[!-Z^-~]+$")  # dcontent: printable ASCII but [ \ ]


def _valid_local_part(local: str) -> bool:
    if local.startswith('"'):
        return _valid_quoted_string(local)
    atoms = local.split(".")
    return all(atoms) and all(c in _ATEXT or utf8_address_text(c) for c in local if c != ".")


def _valid_quoted_string(text: str) -> bool:
    """DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE, nothing after the closing quote."""
    if len(text) < 2 or not text.endswith('"'):
        return False
    index, end = 1, len(text) - 1
    while index < end:
        char = text[index]
        if char == "\\":
            if index + 1 >= end:
                return False
            char = text[index + 1]
            if not (" " <= char <= "~" or utf8_address_text(char)):
                return False
            index += 2
        elif char == '"' or not (" " <= char <= "~" or utf8_address_text(char)):
            return False
        else:
            index += 1
    return True


def _valid_domain(domain: str) -> bool:
    return bool(domain) and all(
        _DOMAIN_LABEL.match(label) and all(c.isprintable() for c in label)
        for label in domain.split(".")
    )
