"""Address lists with their display names, as Mailpit's `From`, `To`, `Cc`, `Bcc` and `ReplyTo`.

Each entry of the list (split at commas outside quotes, angle brackets and comments) is read on
its own: the common forms by one pattern, the rest by the standard library's RFC 5322 parser
within `addresses.py`'s bounds (`ENTRY_LIMIT`, `NESTING_LIMIT`). Display names are RFC 2047
decoded. An entry that is not an address is left out; at most `LIST_LIMIT` entries are read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from mxrelay.mime.addresses import (
    ENTRY_LIMIT,
    NESTING_LIMIT,
    nesting,
    parsed_mailboxes,
    unquoted,
)
from mxrelay.mime.text import decode_words

LIST_LIMIT = 1000
"""Entries read of one address list (the SMTP recipient limit's default)."""

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR = rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9.-]+"
_SIMPLE = re.compile(
    rf'(?:(?P<quoted>"[^"\\\r\n]*")|(?P<plain>[^"<>,;:@()\\]*?))[ \t]*<(?P<angle>{_ADDR})>'
    rf"|(?P<bare>{_ADDR})"
)


@dataclass(frozen=True, slots=True)
class Mailbox:
    name: str
    address: str


def mailboxes(value: str) -> list[Mailbox]:
    """The addresses of an address-list field value (unfolded); never raises."""
    found: list[Mailbox] = []
    for count, entry in enumerate(_entries(value)):
        if count >= LIST_LIMIT:
            break
        found.extend(_entry(entry))
    return found


def _entries(value: str) -> Iterator[str]:
    """Items of an address list: commas inside quotes, `<...>` and comments do not split."""
    start = 0
    angle = False
    for index, char, depth in unquoted(value):
        if depth:
            continue
        if char in "<>":
            angle = char == "<"
        elif char == "," and not angle:
            yield value[start:index]
            start = index + 1
    yield value[start:]


def _entry(entry: str) -> list[Mailbox]:
    text = entry.strip(" \t\r\n")
    if not text:
        return []
    simple = _SIMPLE.fullmatch(text)
    if simple is not None:
        if simple.group("bare"):
            return [Mailbox("", simple.group("bare"))]
        quoted = simple.group("quoted")
        name = quoted[1:-1] if quoted else (simple.group("plain") or "").strip(" \t")
        return [Mailbox(decode_words(name), simple.group("angle"))]
    if len(text) > ENTRY_LIMIT or nesting(text) > NESTING_LIMIT:
        return []
    return [Mailbox(name, address) for name, address in parsed_mailboxes(text) or ()]
