"""Turning an accepted SMTP transaction into the rows the store keeps (pure: no I/O).

`build_record()` computes everything that is written at accept time: the hash and the compressed
bytes, the header fields worth listing and searching (subject, From, To, Message-ID, a snippet and the
text body), the relay's `Received:` header (`received.py`), and the delivery variants. Every parse is
bounded (`mime.parse`, `mime.addresses`, `mime.text`, `mime.content`, and the limits below): a
malformed or hostile message is still accepted and stored byte for byte; only its summary fields
stay empty or short. The header From kept here is the one the Graph transport sends as: it is read
once, at accept time.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from mxrelay.mime.addresses import NamedAddress, ParserBudget, author_of, named_addresses
from mxrelay.mime.content import decode_body, message_content, strip_tags
from mxrelay.mime.parse import FieldFinder, header_region
from mxrelay.mime.text import decode_words
from mxrelay.model import Transaction
from mxrelay.received import received_header
from mxrelay.store.fields import NO_SENDER, AddressLists
from mxrelay.store.tags import header_tags
from mxrelay.store.variants import VariantPlan, plan_variants, render_variant

SNIPPET_LENGTH = 250
"""Mailpit's `Snippet`: up to 250 characters of body text."""

SEARCH_TEXT_LIMIT = 64 * 1024
"""Characters of body text put in the full-text index (enough to find a message by its words)."""

COMPRESSION_LEVEL = 1
"""zlib's fastest level: a message below `sinks.queued.OFFLOAD_SIZE` is compressed on the event
loop, where every other session waits for it. Against level 6, for English text: 81 against 411
us for 20 KB (7.6 % larger), 1.8 against 7.6 ms for 200 KB (15 % larger), about the same for 2 KB;
a lone session's round trip with a 25 KB message 0.775 of level 6's, with a 250 KB one 0.533
(README, performance). At this level zlib's full window costs no more to set up than a window
sized to the message (2 us for one byte, 13 us for 2 KB of text), so none is sized."""
BODY_ENCODING = "zlib"


def compress_body(data: bytes) -> bytes:
    """The body as it is stored (`BODY_ENCODING`; `decompress` reads it back)."""
    return zlib.compress(data, COMPRESSION_LEVEL)


def collapse_spaces(text: str) -> str:
    """Runs of whitespace as one space, none at the ends. `str.split()` splits on exactly the
    characters the pattern `\\s+` matches, at a fraction of a regex substitution's cost (which
    was the largest share of building a record)."""
    return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class Summary:
    subject: str = ""
    header_from: str = ""
    header_to: str = ""
    message_id: str = ""
    snippet: str = ""
    body_text: str = ""
    attachments: int = 0
    addresses: AddressLists = field(default_factory=AddressLists)
    """From, To, Cc, Bcc and Reply-To with display names, as the header has them (the envelope's
    blind recipients are added when the message is stored: `fields.with_envelope`)."""
    inline: int = 0
    tags: tuple[str, ...] = ()
    """What an `X-Tags` header asks for (cleaned: `tags.header_tags`)."""
    attachment_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NewMessage:
    """Every row written for one accepted message, its variants, recipients and queue entries."""

    id: str
    received_at: float
    transaction: Transaction
    size: int
    sha256: str
    compressed: bytes
    encoding: str
    summary: Summary
    received_header: str
    """The relay's `Received:` field, CRLF included: prepended to every delivery attempt."""
    variants: tuple[VariantPlan, ...]
    variant_sizes: tuple[tuple[int, int, str], ...]
    """(variant, size, SHA-256) of the bytes each variant sends, `Received:` header included."""
    hold_reason: str | None = None
    """Set in `hold` mode: the queue entries are created held, with this reason."""
    lease: tuple[str, float] | None = None
    """(owner, expiry): the entries are created leased to this process's worker, which delivers
    them straight from memory (no claim, no read); see `sinks.queued.DirectDispatch`."""

    @property
    def transforms(self) -> str:
        return json.dumps(sorted({t for v in self.variants for t in v.transforms}))


SUMMARY_FIELD_LIMIT = 4096
"""Characters kept of the subject and the Message-ID."""

SUMMARY_ADDRESS_LIMIT = 1000
"""Addresses kept of the From and To fields (the SMTP recipient limit's default)..."""

SUMMARY_ADDRESS_CHARACTERS = 32 * 1024
"""...and characters of them: what is read of the To fields, and what is kept of each list."""

SUMMARY_PARSER_CHARACTERS = 16 * 1024
"""Characters of the address lists handed to the stdlib's RFC 5322 parser per message (the forms
`mime.addresses` reads by pattern do not count); past them an entry keeps its address, not its
display name. The parser's worst text costs about 20 us a character: 0.3 s at this bound."""

SUMMARY_FIELDS_PER_NAME = 100
"""To fields read per message (a message has one; the rest of a flood of them is not read)."""

BODY_DECODE_LIMIT = 256 * 1024
"""Decoded bytes of the body read for the snippet and the search text."""

_SUMMARY_FIELDS = FieldFinder(
    (
        "subject",
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "message-id",
        "content-type",
        "content-transfer-encoding",
        "x-tags",
    )
)
_DELIMITERS = re.compile(r"[\s<>,;:\"()\[\]]+")


def _raw_fields(data: bytes, end: int) -> dict[str, list[bytes]]:
    """Found by one regular expression (`mime.parse.FieldFinder`) in the first `HEADER_LIMIT`
    bytes, not by `email.parser`: the summary needs ten fields, the standard parser costs several
    times more per message on the accept path, and no object is made for other fields, however
    many a message has."""
    return _SUMMARY_FIELDS.values(data, end, SUMMARY_FIELDS_PER_NAME)


def _unfolded(raw: dict[str, list[bytes]]) -> dict[str, list[str]]:
    return {
        name: [collapse_spaces(v.decode("utf-8", "replace")) for v in values]
        for name, values in raw.items()
    }


def _first(fields: dict[str, list[str]], name: str) -> str:
    values = fields.get(name)
    return values[0] if values else ""


def _decode(value: str) -> str:
    return collapse_spaces(decode_words(value))[:SUMMARY_FIELD_LIMIT]


def address_tokens(value: str) -> list[str]:
    """Things that look like addresses in a header, in order: `x@y` between delimiters (space,
    angle brackets, commas, quotes...). Not an RFC 5322 parse: for a listing and an index it is
    enough, it never raises, and it is linear (the pattern this replaces,
    `[^delimiters@]+@[^delimiters@]+` over the whole value, took seconds on a long run of
    non-delimiters)."""
    found: list[str] = []
    for token in _DELIMITERS.split(value):
        if "@" not in token:
            continue
        parts = token.split("@")
        index = 0
        while index + 1 < len(parts):
            if parts[index] and parts[index + 1]:
                found.append(f"{parts[index]}@{parts[index + 1]}")
                index += 2
            else:
                index += 1
    return found


def _joined(addresses: Iterable[str]) -> str:
    """At most SUMMARY_ADDRESS_LIMIT addresses in SUMMARY_ADDRESS_CHARACTERS, comma-separated."""
    kept: list[str] = []
    length = 0
    for address in itertools.islice(addresses, SUMMARY_ADDRESS_LIMIT):
        length += len(address) + 2
        if length > SUMMARY_ADDRESS_CHARACTERS:
            break
        kept.append(address)
    return ", ".join(kept)


def _recipients(values: Iterable[str]) -> Iterator[str]:
    """The address tokens of the To fields, within SUMMARY_ADDRESS_CHARACTERS of their text."""
    budget = SUMMARY_ADDRESS_CHARACTERS
    for value in values:
        if budget <= 0:
            return
        yield from address_tokens(value[:budget])
        budget -= len(value)


def _single_text(fields: dict[str, list[str]], body: bytes) -> str | None:
    """The text of a message that is one text part, or None when the MIME scanner is needed."""
    content_type = _first(fields, "content-type") or "text/plain"
    kind = content_type.split(";", 1)[0].strip().lower()
    if not kind.startswith("text/"):
        return None
    encoding = _first(fields, "content-transfer-encoding") or "7bit"
    text = decode_body(body, content_type, encoding, BODY_DECODE_LIMIT)
    return strip_tags(text) if kind == "text/html" else text


def _mailboxes(
    fields: dict[str, list[str]], name: str, budget: ParserBudget
) -> tuple[NamedAddress, ...]:
    """The mailboxes of every field of this name, within the summary's bounds."""
    values = fields.get(name)
    if not values:
        return ()
    return named_addresses(
        ", ".join(values),
        limit=SUMMARY_ADDRESS_LIMIT,
        characters=SUMMARY_ADDRESS_CHARACTERS,
        budget=budget,
    )


def address_lists(fields: dict[str, list[str]]) -> AddressLists:
    """Mailpit's From (the first mailbox of the field; the field's text as the name when it
    names none; empty without a field) and the other lists, sharing one parser budget
    (`SUMMARY_PARSER_CHARACTERS`)."""
    budget = ParserBudget(SUMMARY_PARSER_CHARACTERS)
    sender = NO_SENDER
    if "from" in fields:
        mailboxes = _mailboxes({"from": fields["from"][:1]}, "from", budget)
        sender = mailboxes[0] if mailboxes else (_decode(fields["from"][0]), "")
    return AddressLists(
        sender,
        _mailboxes(fields, "to", budget),
        _mailboxes(fields, "cc", budget),
        _mailboxes(fields, "bcc", budget),
        _mailboxes(fields, "reply-to", budget),
    )


def summarise(data: bytes) -> Summary:
    """Header fields and text body for listing and search; never raises, and reads a bounded
    part of any message (`HEADER_LIMIT` of header, `BODY_DECODE_LIMIT` of text, `MimeLimits`)."""
    end, complete = header_region(data)
    raw = _raw_fields(data, end)
    fields = _unfolded(raw)
    separator = data.find(b"\n", end)
    body = data[separator + 1 :] if complete and separator != -1 else b""
    text = _single_text(fields, body)
    attachments = inline = 0
    names: tuple[str, ...] = ()
    if text is None:
        content = message_content(data, BODY_DECODE_LIMIT)
        text = content.text or strip_tags(content.html)
        attachments, inline = len(content.attachments), len(content.inlines)
        names = tuple(a.filename for a in content.attachments if a.filename)
    words = collapse_spaces(text)
    # Read as the sender allow-list read it at the end of DATA (`read_author`).
    author = author_of(raw["from"][0] if "from" in raw else None, complete=complete)
    return Summary(
        subject=_decode(_first(fields, "subject")),
        header_from=_joined(author.addresses),
        header_to=_joined(_recipients(fields.get("to", ()))),
        message_id=_decode(_first(fields, "message-id")).strip("<>"),
        snippet=words[:SNIPPET_LENGTH],
        body_text=words[:SEARCH_TEXT_LIMIT],
        attachments=attachments,
        addresses=address_lists(fields),
        inline=inline,
        tags=tuple(header_tags(",".join(fields.get("x-tags", ())))),
        attachment_names=names,
    )


def build_record(
    transaction: Transaction,
    *,
    message_id: str,
    hostname: str,
    hold_reason: str | None = None,
    plan: Callable[[bytes, tuple[str, ...]], tuple[VariantPlan, ...]] = plan_variants,
    render: Callable[[bytes, tuple[str, ...]], bytes] = render_variant,
) -> NewMessage:
    """All rows of one accepted message. CPU-bound (hash, compress, parse): large messages should
    be handed to a thread by the caller."""
    data = transaction.data
    received_at = transaction.received_at
    prefix = received_header(transaction, hostname=hostname, queue_id=message_id)
    variants = plan(data, transaction.recipients)
    sizes = []
    for variant in variants:
        sent = prefix + render(data, variant.transforms)
        sizes.append((variant.variant, len(sent), hashlib.sha256(sent).hexdigest()))
    return NewMessage(
        id=message_id,
        received_at=received_at.timestamp(),
        transaction=transaction,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        compressed=compress_body(data),
        encoding=BODY_ENCODING,
        summary=summarise(data),
        received_header=prefix.decode("utf-8"),
        variants=variants,
        variant_sizes=tuple(sizes),
        hold_reason=hold_reason,
    )


def decompress(encoding: str, raw: bytes) -> bytes:
    if encoding == BODY_ENCODING:
        return zlib.decompress(raw)
    if encoding == "identity":
        return raw
    raise ValueError(f"unknown body encoding {encoding!r}")
