"""Search terms (`search_terms.py`) as SQL conditions on `messages`, each served by an index.

Every value goes to the database as a bound parameter; the only text built from a query is the
argument of a full-text match, made of the query's letters and digits alone. The conditions:

- text: the full-text index over subject, addresses and body (`message_search`: FTS5 on SQLite, a
  `tsvector` on PostgreSQL). A term's words must follow one another (a quoted phrase is a phrase),
  each as a word or, from three characters on, the start of one: `invoice` finds "invoices";
  Mailpit's `LIKE '%invoice%'` would also find "reinvoiced", which no word index can serve.
- header filters (`from:`, `to:`, `cc:`, `bcc:`, `reply-to:`, `addressed:`, `subject:`,
  `message-id:`, `refused:`): substrings of the lower-cased fields of `message_fields`, found
  through a trigram index over all of them (FTS5 `trigram` on SQLite, `pg_trgm` on PostgreSQL), then
  checked in the one field asked for. On SQLite the index's `LIKE` has no escape, so `%` and `_`
  in a value widen the candidates and the check (`instr`) narrows them again; PostgreSQL's pattern
  escapes them. Values under three characters, which no trigram can serve, scan the fields.
- `tag:`, `is:tagged`, `status:`, `transport:`: the indexes of `message_tags`, `recipients` by
  state and `attempts` by transport; flags, sizes and dates: columns of `messages`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, String, false, func, or_, select, text, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import TextualSelect

from mxrelay.store import schema
from mxrelay.store.backend import Dialect
from mxrelay.store.bulk import stored_as_is
from mxrelay.store.search_terms import Filter, SearchQuery, Term

RECIPIENT_STATES = frozenset({"queued", "deferred", "held", "delivered", "failed"})
TRANSPORTS = frozenset({"graph", "smtp"})
TRIGRAM = 3
PREFIX_FROM = 3
"""Letters from which a word of a text term also finds longer words (a shorter prefix would
merge the index entries of too many words)."""
SIZE_LIMIT = 2**31 - 1
"""The largest size `messages.size` holds (INTEGER: 32 bits on PostgreSQL)."""

HAYSTACK = " || ' ' || ".join(schema.FIELD_COLUMNS)
"""What the trigram index covers: the same expression as the migration's (on PostgreSQL the
index is on this expression, so a condition must spell it the same way)."""

FIELD_OF = {
    Filter.FROM: ("from_list",),
    Filter.TO: ("to_list",),
    Filter.CC: ("cc_list",),
    Filter.BCC: ("bcc_list",),
    Filter.REPLY_TO: ("reply_to_list",),
    Filter.ADDRESSED: schema.FIELD_COLUMNS[:6],  # the envelope sender and every address list
    Filter.SUBJECT: ("subject",),
    Filter.MESSAGE_ID: ("message_id_header",),
    Filter.REFUSED: ("refused_list",),
}

_WORD = re.compile(r"[^\W_]+")
"""A word as FTS5's `unicode61` tokenizer sees one: letters and digits (no underscore)."""
_NOT_WORD = re.compile(r"[\W_]+")

m = schema.messages
f = schema.message_fields


@dataclass(frozen=True)
class Source:
    """The ids of the messages a term matches, found through an index: a statement of one
    column (each id at least once). `ordered`: an index gives them in id order, so the newest
    can be read without finding them all (`message_id DESC LIMIT` on the index)."""

    ids: Select[Any] | TextualSelect
    ordered: bool = False


def _within(found: Source | None) -> ColumnElement[bool]:
    return false() if found is None else m.c.id.in_(found.ids)


Probe = Callable[[str], int]
"""How many fields rows (up to PROBE_LIMIT) hold a trigram: what picks the trigrams to look up."""

PROBE_LIMIT = 500
PROBED = 12
"""Trigrams of a value probed at most (spread over it), and looked up at most (the rarest)."""
LOOKED_UP = 4


class Compiler:
    """The conditions of one query, with parameters named apart (`t0`, `t1`...)."""

    def __init__(self, dialect: Dialect, probe: Probe | None = None) -> None:
        self.dialect = dialect
        self.probe = probe
        self._names = iter(range(1_000_000))

    def _name(self) -> str:
        return f"t{next(self._names)}"

    def conditions(self, query: SearchQuery) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        words = [t for t in query.terms if t.kind is Filter.TEXT and not t.negated]
        unwanted = [t for t in query.terms if t.kind is Filter.TEXT and t.negated]
        if words:
            found.append(_within(self.text_source(words)))
        if unwanted:
            found.append(~_within(self.text_source(unwanted, either=True)))
        found.extend(self.term(t) for t in query.terms if t.kind is not Filter.TEXT)
        return found

    def term(self, term: Term) -> ColumnElement[bool]:
        condition = self._positive(term)
        return ~condition if term.negated else condition

    def source(self, term: Term) -> Source | None:
        """The ids of the messages a (positive) term matches, found through an index; None for
        a term on columns of `messages` (flags, sizes, dates)."""
        kind = term.kind
        if kind is Filter.TEXT:
            return self.text_source([term])
        if kind in (*FIELD_OF, Filter.TAG) and not stored_as_is(term.text):
            return Source(select(f.c.message_id).where(false()))  # a NUL: no stored text has one
        if kind in FIELD_OF:
            return self._fields(FIELD_OF[kind], term.text.casefold())
        if kind is Filter.TAG:
            mt, t = schema.message_tags, schema.tags
            tagged = select(mt.c.message_id).join(t, t.c.id == mt.c.tag_id)
            return Source(tagged.where(t.c.key == term.text.lower()), ordered=True)
        if kind is Filter.TAGGED:
            return Source(select(schema.message_tags.c.message_id), ordered=True)
        if kind is Filter.STATUS and term.text in RECIPIENT_STATES:
            r = schema.recipients
            return Source(select(r.c.message_id).where(r.c.state == term.text), ordered=True)
        if kind is Filter.TRANSPORT and term.text in TRANSPORTS:
            a = schema.attempts
            return Source(select(a.c.message_id).where(a.c.transport == term.text), ordered=True)
        return None

    def _positive(self, term: Term) -> ColumnElement[bool]:
        kind = term.kind
        found = self.source(term)
        if found is not None:
            return m.c.id.in_(found.ids)
        if kind in (Filter.READ, Filter.UNREAD):
            return m.c.seen == (kind is Filter.READ)
        if kind is Filter.ATTACHMENT:
            return m.c.attachments > 0
        if kind is Filter.INLINE:
            return func.coalesce(m.c.inline_parts, 0) > 0
        return self._measured(term)

    def _measured(self, term: Term) -> ColumnElement[bool]:
        """Sizes, dates and mxrelay's own filters. Mailpit negates a size or a date by turning the
        comparison round (`-larger:1K` is `Size < 1024`), so the negation is applied here and
        `term` undoes it; a value mxrelay does not know matches nothing. A size beyond what
        `messages.size` holds is compared here, not by the database (PostgreSQL refuses such a
        parameter for an INTEGER column): every message is smaller."""
        kind, number = term.kind, term.number
        flip = term.negated
        if kind in (Filter.LARGER, Filter.SMALLER):
            larger = (kind is Filter.LARGER) != flip
            condition: ColumnElement[bool]
            if number > SIZE_LIMIT:
                condition = false() if larger else true()
            else:
                condition = m.c.size > number if larger else m.c.size < number
            return ~condition if flip else condition
        if kind in (Filter.AFTER, Filter.BEFORE):
            later = (kind is Filter.AFTER) != flip
            condition = m.c.received_at >= number if later else m.c.received_at <= number
            return ~condition if flip else condition
        return false()  # a `status:` or `transport:` value mxrelay does not know

    # --- header fields --------------------------------------------------------------------

    def _fields(self, columns: tuple[str, ...], needle: str) -> Source:
        name = self._name()
        position = func.strpos if self.dialect is Dialect.POSTGRESQL else func.instr
        inside = or_(*(position(f.c[column], needle) > 0 for column in columns))
        rows = select(f.c.message_id).where(inside)
        if len(needle) >= TRIGRAM:
            rows = rows.where(self._trigrams(name, needle))
        return Source(rows)

    def _trigrams(self, name: str, needle: str) -> ColumnElement[bool]:
        if self.dialect is Dialect.POSTGRESQL:
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", needle) + "%"
            return text(f"({HAYSTACK}) LIKE :{name}").bindparams(**{name: pattern})  # type: ignore[return-value]
        if self.probe is None:
            search = f"SELECT rowid FROM message_fields_search WHERE haystack LIKE :{name}"
            value = f"%{needle}%"
        else:
            search = (
                f"SELECT rowid FROM message_fields_search WHERE message_fields_search MATCH :{name}"
            )
            value = " AND ".join(fts5_string(t) for t in rarest(needle, self.probe))
        candidates = text(search).bindparams(**{name: value})
        return f.c.id.in_(candidates.columns(rowid=schema.RowId))

    # --- text -----------------------------------------------------------------------------

    def text_source(self, terms: list[Term], *, either: bool = False) -> Source | None:
        """Messages whose full-text row matches every term (or, `either`, any of them); None
        when no term has a word (nothing matches)."""
        phrases = [p for p in (self._phrase(t.text) for t in terms) if p]
        if not phrases:
            return None
        name = self._name()
        if self.dialect is Dialect.POSTGRESQL:
            joiner = " || " if either else " && "
            names = [f"{name}_{i}" for i in range(len(phrases))]
            query = joiner.join(f"to_tsquery('simple', :{n})" for n in names)
            clause: TextClause = text(
                f"SELECT message_id FROM message_search WHERE document @@ ({query})"
            ).bindparams(**dict(zip(names, phrases, strict=True)))
        else:
            operator = " OR " if either else " AND "
            match = "{subject addresses body} : (" + operator.join(phrases) + ")"
            clause = text(_FTS5_IDS.format(name=name)).bindparams(**{name: match})
        return Source(clause.columns(message_id=String))

    def _phrase(self, value: str) -> str:
        """A term in the full-text index's query language, each word of it in turn, a word from
        PREFIX_FROM letters also the start of a longer one: FTS5 `"your"* + "inv"*`, tsquery
        `'your':* <-> 'inv':*` (the words are letters and digits only: nothing to escape).
        Empty when the term has no word."""
        words = _WORD.findall(value)
        if self.dialect is Dialect.POSTGRESQL:
            return " <-> ".join(f"'{w}'" + (":*" if len(w) >= PREFIX_FROM else "") for w in words)
        return " + ".join(f'"{w}"' + ("*" if len(w) >= PREFIX_FROM else "") for w in words)


def text_words(value: str) -> str:
    """Text as the full-text index should read it on PostgreSQL: its words, separated by spaces.
    FTS5's tokenizer splits `alex@example.net` into its words itself; PostgreSQL's parser keeps it
    one token, which a search for `example` would not find, so the words are split before it sees
    them (at ingest, `message_log.py`, and by the backfill)."""
    return _NOT_WORD.sub(" ", value).strip()


_FTS5_IDS = (
    "SELECT c0 FROM message_search_content INDEXED BY ix_message_search_key "
    "WHERE id IN (SELECT rowid FROM message_search WHERE message_search MATCH :{name})"
)
"""The message ids of full-text matches (SQLite): FTS5 keeps the columns of `message_search` in
its content table (`id` the rowid, `c0` the first column, `message_id`: the layout FTS5
documents), and migration 0003 indexes them, so ten thousand matches are ten thousand index
entries rather than ten thousand rows read through FTS5, bodies and all."""


def fts5_string(value: str) -> str:
    """A value as an FTS5 string: double-quoted, its quotes doubled (nothing in it is syntax).
    FTS5 ends a string at a NUL (`unterminated string`): a value must hold none, as no stored
    text does (`Compiler.source` never looks one up)."""
    return '"' + value.replace('"', '""') + '"'


def rarest(needle: str, probe: Probe) -> list[str]:
    """The trigrams of `needle` to look up in the trigram index: the LOOKED_UP rarest of at
    most PROBED of them. A trigram every row has (`.example`, `@gm`) costs a pass over the whole
    index when it is looked up, and narrows nothing; the rarest ones narrow the candidates as far
    as any, and the check in the field itself (`instr`) makes the result exact."""
    trigrams = list(dict.fromkeys(needle[i : i + TRIGRAM] for i in range(len(needle) - 2)))
    if len(trigrams) > PROBED:
        step = len(trigrams) / PROBED
        trigrams = [trigrams[int(n * step)] for n in range(PROBED)]
    counted = sorted((probe(t), n, t) for n, t in enumerate(trigrams))
    return [t for _, _, t in counted[:LOOKED_UP]]


_PROBE = (
    "SELECT count(*) FROM (SELECT rowid FROM message_fields_search "
    f"WHERE message_fields_search MATCH ? LIMIT {PROBE_LIMIT})"
)


def trigram_probe(conn: Connection) -> Probe | None:
    """On SQLite, how common a trigram is, read from the index's first PROBE_LIMIT rows for it
    (a bounded read however common it is), each trigram once per probe; None elsewhere
    (PostgreSQL plans its own index)."""
    if conn.dialect.name != Dialect.SQLITE:
        return None
    known: dict[str, int] = {}

    def probe(trigram: str) -> int:
        if trigram not in known:
            row = conn.exec_driver_sql(_PROBE, (fts5_string(trigram),)).one()
            known[trigram] = int(row[0])
        return known[trigram]

    return probe


def compile_search(
    query: SearchQuery, dialect: Dialect, probe: Probe | None = None
) -> list[ColumnElement[bool]]:
    """The conditions on `messages` (as `schema.messages`) that every match meets; `probe`
    (`trigram_probe`) lets substring filters pick the trigrams they look up."""
    return Compiler(dialect, probe).conditions(query)


def single_source(
    query: SearchQuery, dialect: Dialect, probe: Probe | None = None
) -> Source | None:
    """The source of a query that is one index-served term (or words only, which are one
    full-text match), None otherwise: such a query's matches are exactly its source's ids."""
    terms = query.terms
    if not terms or any(t.negated for t in terms):
        return None
    compiler = Compiler(dialect, probe)
    if all(t.kind is Filter.TEXT for t in terms):
        return compiler.text_source(list(terms))
    return compiler.source(terms[0]) if len(terms) == 1 else None


def narrows_by_id(query: SearchQuery) -> bool:
    """Whether some term limits the matches to a set of ids found through an index (text,
    header filters, tags, `status:`, `transport:`), rather than only to values of columns of
    `messages` (flags, sizes, dates)."""
    by_id = {Filter.TEXT, *FIELD_OF, Filter.TAG, Filter.TAGGED, Filter.STATUS, Filter.TRANSPORT}
    return any(t.kind in by_id and not t.negated for t in query.terms)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def id_bound(before: float) -> str:
    """The smallest message id (a ULID: 48 bits of milliseconds first) of the millisecond
    `before` falls in: `id < id_bound(t)` is "received before t" to the millisecond, as
    Mailpit compares, and is served by the primary key."""
    milliseconds = min(max(int(before * 1000), 0), 2**48 - 1)
    encoded = "".join(_CROCKFORD[(milliseconds >> shift) & 31] for shift in range(45, -5, -5))
    return encoded + "0" * 16
