"""Addresses in header fields, read with bounded work: the From a message is sent as, To/Cc/Bcc entries.

The standard library's RFC 5322 parser (`email.policy.default`) reads what a simple pattern cannot
(quoted local parts, comments, groups, encoded display names, obsolete syntax), but on hostile
input it is the most expensive thing the relay does: its time and memory grow with the square of
the number of encoded words (a 140 KiB From header: 1.5 GB and seconds), and every nested comment
is a level of recursion (a few hundred raise `RecursionError`). So it is only handed text within
these bounds:

- `ENTRY_LIMIT`: characters of one address entry (or one From field);
- `NESTING_LIMIT`: comments nested in one another (RFC 5322 allows nesting; mail never needs more
  than a few levels);
- a `ParserBudget`, when the caller gives one: characters handed to the parser for one message.
  Within the bounds above it still spends up to ~20 us a character (runs of comments, quoted
  strings or words), and a message may have hundreds of entries.

Text beyond a bound is not parsed at all: it reads as "no address" (`Parsed.readable` is False), and
each caller says what that means (an unreadable From is not on an allow-list; an unreadable To entry
names no envelope recipient). The common forms (`user@example.com`, `Name <user@example.com>`,
`"Name" <user@example.com>`) are read by `_SIMPLE`, which yields exactly the stdlib's result for
them at a tenth of its cost: the accept path reads every message's From.
"""

from __future__ import annotations

import email.errors
import email.policy
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mxrelay.mime.parse import FieldFinder, header_region
from mxrelay.mime.text import decode_words, without_surrogates

ENTRY_LIMIT = 2048
"""Characters of one address entry (or a whole From field) handed to the RFC 5322 parser."""

NESTING_LIMIT = 16
"""Comments nested deeper than this make an entry unreadable (the parser recurses per level)."""

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
_SIMPLE = re.compile(
    rf"(?:(?:{_ATOM}(?:[ \t]+{_ATOM})*|\"[^\"\\\r\n]*\")[ \t]*)?<({_DOT_ATOM}@{_DOMAIN})>"
    rf"|({_DOT_ATOM}@{_DOMAIN})"
)
"""Matched against the whole value, blanks stripped: every repetition in it is unambiguous, so a
failed match costs linear time."""
_LIST_ITEM = re.compile(r'(?:"(?:[^"\\]|\\.)*"|[^,])+')
"""An item of a stored list: quoted strings (which may hold commas) and other characters."""
_PARSER = email.policy.default


@dataclass(frozen=True, slots=True)
class Parsed:
    """The addresses of one entry or field: (local part, domain) pairs and their addr-spec form.

    `readable` is False when the text was beyond the bounds (not parsed at all); `clean` is False
    when the parser found defects that make the addresses uncertain (`_HARMLESS_DEFECTS` are not).
    """

    addresses: tuple[tuple[str, str, str], ...] = ()
    """(local part, domain, addr-spec) per address, in order."""
    readable: bool = True
    clean: bool = True

    @property
    def specs(self) -> tuple[str, ...]:
        """The addr-specs (`local@domain`) of the addresses that have a domain."""
        return tuple(spec for _, domain, spec in self.addresses if domain)


UNREADABLE = Parsed(readable=False, clean=False)


@dataclass(slots=True)
class ParserBudget:
    """Characters the RFC 5322 parser may still be handed for one message (made per message by
    the caller). Once an entry does not fit, the budget is spent: every later entry is past it
    too, so what is read does not depend on the sizes of the entries that follow."""

    characters: int

    def take(self, count: int) -> bool:
        """Whether `count` more characters may be parsed (and if so, they are counted)."""
        if count > self.characters:
            self.characters = 0
            return False
        self.characters -= count
        return True


def unquoted(text: str) -> Iterator[tuple[int, str, int]]:
    """(index, character, comment depth) of each character of `text` outside quoted strings and
    escapes; the depth counts the comment parentheses open around the character (a parenthesis
    itself included)."""
    depth = 0
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif char == '"' and not depth:
            quoted = True
        else:
            if char == "(":
                depth += 1
            yield index, char, depth
            if char == ")" and depth:
                depth -= 1


def nesting(text: str) -> int:
    """The deepest comment nesting in `text` (quoted strings and escapes respected)."""
    return max((depth for _, _, depth in unquoted(text)), default=0)


def parse_addresses(text: str, budget: ParserBudget | None = None) -> Parsed:
    """The addresses in `text` (an address list, or one entry of it); never raises. Text for
    the stdlib's parser past `budget` is unreadable, as past the bounds."""
    unfolded = text.replace("\r", "").replace("\n", "")
    if not unfolded.strip():
        return Parsed()
    if len(unfolded) > ENTRY_LIMIT:
        return UNREADABLE
    simple = _SIMPLE.fullmatch(unfolded.strip(" \t"))
    if simple is not None:
        spec = simple.group(1) or simple.group(2)
        local, _, domain = spec.rpartition("@")
        return Parsed(((local, domain, spec),))
    if nesting(unfolded) > NESTING_LIMIT:
        return UNREADABLE
    if budget is not None and not budget.take(len(unfolded)):
        return UNREADABLE
    readable = unfolded.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    try:
        header = _PARSER.header_factory("to", readable)
        found = header.addresses
        defects = header.defects
    except (ValueError, IndexError, AttributeError, TypeError, email.errors.HeaderParseError):
        # The stdlib's RFC 5322 parser has raised on some malformed input in past releases.
        return Parsed(clean=False)
    addresses = tuple((str(a.username), str(a.domain), str(a.addr_spec)) for a in found)
    serious = [d for d in defects if not isinstance(d, _HARMLESS_DEFECTS)]
    return Parsed(addresses, clean=not serious)


_HARMLESS_DEFECTS = (email.errors.NonASCIILocalPartDefect, email.errors.ObsoleteHeaderDefect)
"""Defects that leave the address unambiguous: a UTF-8 local part (RFC 6532; the relay accepts
SMTPUTF8), and the obsolete syntax RFC 5322 section 4 says must be accepted, whose meaning it
fixes: a period in a display name (`John Q. Public <john@example.net>`), a route (ignored), blanks
or comments between the dots of an address (removed). Text the parser cannot read as an address
also carries an `InvalidHeaderDefect`."""


@dataclass(frozen=True, slots=True)
class Author:
    """The From field of a message, as far as the relay can tell.

    `present`: the message has a From field. `addresses`: the addr-specs it names (the first one is
    what Exchange sends as). `readable`: False when the field is beyond the bounds, or the header
    block is (then the relay cannot know what a receiver will take as the From).
    """

    present: bool
    addresses: tuple[str, ...] = ()
    readable: bool = True

    @property
    def address(self) -> str | None:
        return self.addresses[0] if self.addresses else None


_FROM = FieldFinder(["from"])


def read_author(data: bytes, region: tuple[int, bool] | None = None) -> Author:
    """The message's first From field; never raises. The header block (`region`, as
    `parse.header_region` finds it) is searched in C (this runs at the end of DATA, on the event
    loop) and only within `HEADER_LIMIT` bytes."""
    end, complete = header_region(data) if region is None else region
    values = _FROM.values(data, end).get("from")
    return author_of(values[0] if values else None, complete=complete)


def author_of(raw: bytes | None, *, complete: bool = True) -> Author:
    """The Author of a raw From value (None: the message has no From field); `complete`: the
    header block was read to its end."""
    if raw is None:
        return Author(present=False, readable=complete)
    if len(raw) > ENTRY_LIMIT * 4:  # far beyond the bound: not even decoded
        return Author(present=True, readable=False)
    parsed = parse_addresses(raw.decode("utf-8", "surrogateescape"))
    return Author(present=True, addresses=parsed.specs, readable=parsed.readable and complete)


def split_list(stored: str) -> list[str]:
    """The items of an address list as the store keeps it (addr-specs joined by commas)."""
    return [item.strip() for item in _LIST_ITEM.findall(stored) if item.strip()]


NamedAddress = tuple[str, str]
"""(display name, addr-spec) of one mailbox, as Mailpit's API shows it (`{"Name", "Address"}`)."""

_NAMED = re.compile(
    rf"(?:(?:({_ATOM}(?:[ \t]+{_ATOM})*)|\"([^\"\\\r\n]*)\")[ \t]*)?<({_DOT_ATOM}@{_DOMAIN})>"
    rf"|({_DOT_ATOM}@{_DOMAIN})"
)
"""`_SIMPLE`, with the display name captured (an atom run, or a quoted string)."""
_LOOSE_ADDRESS = re.compile(r"[^\s<>,;:\"()\[\]@]+@[^\s<>,;:\"()\[\]@]+")
"""Something shaped like an address, for an entry the parser cannot read (linear: no nesting)."""


def named_addresses(
    value: str,
    *,
    limit: int = 1000,
    characters: int = 32 * 1024,
    budget: ParserBudget | None = None,
) -> tuple[NamedAddress, ...]:
    """The mailboxes of an address-list field value, in order, each with its display name
    (encoded words decoded); never raises. Read with bounds: the first `characters` of the value,
    at most `limit` mailboxes, and each comma-separated entry within `ENTRY_LIMIT`,
    `NESTING_LIMIT` and `budget`; an entry beyond them or that the parser cannot read gives what
    looks like an address in it, without a name. Groups are flattened, as Mailpit shows them."""
    found: list[NamedAddress] = []
    for item in _LIST_ITEM.findall(value[:characters].replace("\r", "").replace("\n", "")):
        if len(found) >= limit:
            break
        entry = item.strip(" \t")
        if entry:
            found.extend(_entry_mailboxes(entry, budget))
    return tuple(found[:limit])


def parser_characters(values: Iterable[bytes], *, examined: int = 8 * 1024) -> int:
    """About how many characters of these raw address-field values the stdlib's parser would be
    handed (by `named_addresses` and `author_of`): all of a value unless every entry of it is of
    a form read by pattern. Values longer than `examined` in all are not looked into (all of it
    counts): the decision must cost less than the parse."""
    raw = list(values)
    total = sum(len(value) for value in raw)
    if total > examined:
        return total
    parsed = 0
    for value in raw:
        text = value.decode("utf-8", "surrogateescape").replace("\r", "").replace("\n", "")
        entries = (item.strip(" \t") for item in _LIST_ITEM.findall(text))
        if not all(_NAMED.fullmatch(entry) for entry in entries if entry):
            parsed += len(text)
    return parsed


def _entry_mailboxes(entry: str, budget: ParserBudget | None) -> tuple[NamedAddress, ...]:
    simple = _NAMED.fullmatch(entry)
    if simple is not None:
        name = simple.group(1) or simple.group(2) or ""
        return ((decode_words(name) if "=?" in name else name, simple.group(3) or simple.group(4)),)
    if (
        len(entry) > ENTRY_LIMIT
        or nesting(entry) > NESTING_LIMIT
        or (budget is not None and not budget.take(len(entry)))
    ):
        return tuple(("", m) for m in _LOOSE_ADDRESS.findall(entry[: ENTRY_LIMIT * 4]))
    readable = entry.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    parsed = parsed_mailboxes(readable)
    if parsed is None:
        return tuple(("", m) for m in _LOOSE_ADDRESS.findall(entry))
    return parsed


def parsed_mailboxes(entry: str) -> tuple[NamedAddress, ...] | None:
    """The mailboxes of one address-list entry as the standard library's RFC 5322 parser reads
    them (callers bound the entry first: `ENTRY_LIMIT`, `NESTING_LIMIT`); None if it raised.
    The parser decodes encoded words in display names itself and leaves bytes their charset
    refuses as lone surrogates, which no JSON response or database takes: here they are U+FFFD,
    as `decode_words` gives them."""
    try:
        header = _PARSER.header_factory("to", entry)
        return tuple(
            (without_surrogates(str(a.display_name)), str(a.addr_spec))
            for a in header.addresses
            if a.domain
        )
    except (ValueError, IndexError, AttributeError, TypeError, email.errors.HeaderParseError):
        return None
