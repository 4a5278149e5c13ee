"""Mailpit's search syntax, read into typed terms (pure and bounded: never raises, any input).

Words are split on spaces; double quotes group words into one term and are dropped; a leading
`-` or `!` negates a term; every term must match. Mailpit's filters: `from:`, `to:`, `cc:`, `bcc:`,
`reply-to:`, `addressed:` (any of those), `subject:`, `message-id:`, `tag:`, `is:read`,
`is:unread`, `is:tagged`, `has:attachment(s)`, `has:inline(s)`, `larger:`/`smaller:` (sizes,
`search_values.size_to_bytes`), `after:`/`before:` (dates, `search_values.parse_date`, in the
request's time zone); mxrelay's own: `status:` (some recipient's delivery state), `refused:` (a
recipient the message's SMTP transaction had refused) and `transport:` (graph or smtp). Anything
else is text, searched in subject, addresses and body. Values are cleaned as Mailpit cleans
them (`clean`): lower-cased, with `<>",;()` and line breaks read as spaces.

Mailpit's quirks are kept where a client could notice: a term without a letter or digit is
ignored, a filter with an empty value is ignored, a date that cannot be read is ignored, and
`larger:`/`smaller:` with a size that cannot be read is searched as text.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, tzinfo

from mxrelay.store.search_values import parse_date, size_to_bytes

MAX_QUERY_LENGTH = 1000
"""Characters of a search query read; a longer query is refused by the API."""
MAX_TERMS = 24
"""Terms of a search query read; a query with more is refused by the API."""

_CLEAN = re.compile(r"\r?\n|\t|>|<|\"|,|;|\(|\)|\x00")


class Filter(enum.StrEnum):
    TEXT = "text"
    FROM = "from:"
    TO = "to:"
    CC = "cc:"
    BCC = "bcc:"
    REPLY_TO = "reply-to:"
    ADDRESSED = "addressed:"
    SUBJECT = "subject:"
    MESSAGE_ID = "message-id:"
    TAG = "tag:"
    READ = "is:read"
    UNREAD = "is:unread"
    TAGGED = "is:tagged"
    ATTACHMENT = "has:attachment"
    INLINE = "has:inline"
    LARGER = "larger:"
    SMALLER = "smaller:"
    AFTER = "after:"
    BEFORE = "before:"
    STATUS = "status:"
    REFUSED = "refused:"
    TRANSPORT = "transport:"


VALUE_FILTERS = (
    Filter.TO,
    Filter.FROM,
    Filter.CC,
    Filter.BCC,
    Filter.REPLY_TO,
    Filter.ADDRESSED,
    Filter.MESSAGE_ID,
    Filter.TAG,
    Filter.STATUS,
    Filter.REFUSED,
    Filter.TRANSPORT,
)
"""Filters whose value is cleaned (Mailpit's `cleanString`), in the order Mailpit tries them."""

FLAGS = {
    "is:read": Filter.READ,
    "is:unread": Filter.UNREAD,
    "is:tagged": Filter.TAGGED,
    "has:attachment": Filter.ATTACHMENT,
    "has:attachments": Filter.ATTACHMENT,
    "has:inline": Filter.INLINE,
    "has:inlines": Filter.INLINE,
}


@dataclass(frozen=True, slots=True)
class Term:
    kind: Filter
    text: str = ""
    """The cleaned value (lower-cased; `subject:` keeps the value as typed)."""
    number: float = 0.0
    """Bytes (`larger:`, `smaller:`) or epoch seconds (`after:`, `before:`)."""
    negated: bool = False


@dataclass(frozen=True, slots=True)
class SearchQuery:
    terms: tuple[Term, ...] = ()
    truncated: bool = False
    """The query was longer than MAX_QUERY_LENGTH or had more than MAX_TERMS terms; what was
    read is the part within them."""

    @property
    def everything(self) -> bool:
        """No term restricts anything: the whole mailbox."""
        return not self.terms


def clean(text: str) -> str:
    """Mailpit's `cleanString`: U+FEFF, line breaks, tabs and `<>",;()` as spaces, runs of
    whitespace as one space, none at the ends, lower-cased. NUL too, which no stored text holds
    (`bulk.storable`) and PostgreSQL refuses even as a parameter."""
    return " ".join(_CLEAN.sub(" ", text.replace("\ufeff", " ")).split()).lower()


def subject_value(text: str) -> str:
    """A `subject:` value: as typed (Mailpit does not clean it), but a NUL as a space, as `clean`
    reads it; empty when nothing else is left."""
    if "\x00" not in text:
        return text
    text = text.replace("\x00", " ")
    return text if text.strip() else ""


def split_args(query: str) -> list[str]:
    """Mailpit's `ArgsParser`: split on spaces outside double quotes, quotes removed."""
    args: list[str] = []
    current: list[str] = []
    quoted = False
    for char in query:
        if char == '"':
            quoted = not quoted
        elif char == " " and not quoted:
            word = "".join(current).strip()
            if word:
                args.append(word)
            current = []
        else:
            current.append(char)
    word = "".join(current).strip()
    if word:
        args.append(word)
    return args


def parse_search(query: str, zone: tzinfo = UTC) -> SearchQuery:
    """The terms of a search query; dates without a zone are in `zone`."""
    truncated = len(query) > MAX_QUERY_LENGTH
    terms: list[Term] = []
    for arg in split_args(query[:MAX_QUERY_LENGTH]):
        term = parse_term(arg, zone)
        if term is None:
            continue
        if len(terms) == MAX_TERMS:
            truncated = True
            break
        terms.append(term)
    return SearchQuery(tuple(terms), truncated)


def parse_term(arg: str, zone: tzinfo = UTC) -> Term | None:
    """One word or quoted phrase as a term, or None when Mailpit would ignore it."""
    if not clean(arg):
        return None
    negated = len(arg) > 1 and arg[0] in "-!"
    word = arg[1:] if negated else arg
    if not any(char.isalnum() for char in word):
        return None
    lower = word.lower()
    for kind in VALUE_FILTERS:
        if lower.startswith(kind.value):
            value = clean(word[len(kind.value) :])
            return Term(kind, value, negated=negated) if value else None
    if lower.startswith(Filter.SUBJECT.value):
        value = subject_value(word[len(Filter.SUBJECT.value) :])
        return Term(Filter.SUBJECT, value, negated=negated) if value else None
    if lower in FLAGS:
        return Term(FLAGS[lower], negated=negated)
    for kind in (Filter.AFTER, Filter.BEFORE):
        if lower.startswith(kind.value):
            value = clean(word[len(kind.value) :]).upper()
            moment = parse_date(value, zone) if value else None
            return None if moment is None else Term(kind, value, moment, negated)
    for kind in (Filter.LARGER, Filter.SMALLER):
        if lower.startswith(kind.value):
            size = size_to_bytes(clean(word[len(kind.value) :]))
            if size > 0:
                return Term(kind, number=size, negated=negated)
    return Term(Filter.TEXT, clean(lower), negated=negated)
