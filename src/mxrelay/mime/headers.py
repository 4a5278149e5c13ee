"""Envelope-authoritative recipient headers, for transports without an envelope (Graph).

Exchange takes a MIME submission's recipients from To, Cc and Bcc (graph-delivery.md), so before
a Graph send the headers must name exactly the accepted envelope recipients of the variant:

- an envelope recipient missing from To/Cc/Bcc is added to a Bcc field (appended to the message's
  Bcc field if it has one, else a new field at the end of the header block);
- an entry of To/Cc/Bcc whose address is not an accepted envelope recipient (or that cannot be
  parsed as an address at all) is removed from its field (`HeaderPolicy.STRIP`), or the message is
  refused for it (`HeaderPolicy.REJECT`: the result says so and the bytes are unchanged);
- a field left without entries is removed; a group keeps its name even if it loses every member
  (`Team:;` is valid and tells readers there were recipients).

Addresses compare by local part (exact, quotes removed) and domain (case-insensitive, A-label),
see `scope.Mailbox`. Fields that need no change keep their exact bytes; a changed field keeps the
original text of every entry it keeps (display names, encoded words, comments, folding), joined by
commas. Each entry's addresses are parsed by the stdlib's RFC 5322 parser (`email.headerregistry`:
encoded words, quoted local parts, comments, groups, IDN) within the bounds of `addresses.py`; only
the split of a field into entries is done here, because the stdlib parser reports no source
positions to splice with.

Hostile headers cost bounded work: only the first `ENTRY_COUNT_LIMIT` entries of To/Cc/Bcc are
parsed, with at most `PARSER_CHARACTERS` of them handed to the stdlib parser, and an entry beyond
that or beyond the bounds of `addresses.py` names no envelope recipient (removed, or refused). A header block larger than `parse.HEADER_LIMIT` (Exchange Online's
own limit) cannot be checked at all: the message is refused (`HeaderReport.unreadable`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from mxrelay.mime.addresses import ParserBudget, parse_addresses
from mxrelay.mime.parse import HEADER_LIMIT, HeaderBlock, HeaderField, scan_headers
from mxrelay.mime.splice import Splice, apply_splices
from mxrelay.model import Mailbox, RecipientChange, canonical_domain

RECIPIENT_FIELDS = ("to", "cc", "bcc")

ENTRY_COUNT_LIMIT = 1000
"""To/Cc/Bcc entries parsed per message (twice Exchange's 500 recipients per message)."""

PARSER_CHARACTERS = 64 * 1024
"""Characters of To/Cc/Bcc entries handed to the stdlib's RFC 5322 parser per message (the forms
`addresses.py` reads by pattern do not count): 500 recipients with display names the pattern
does not read take about 20 KiB; the parser's worst text costs about 1.3 s at this bound."""

REPORTED_CHANGES = 20
"""Changes named one by one in `HeaderReport.describe`; the rest are counted."""

LABEL_LENGTH = 200
"""Characters of an entry's text quoted in a report."""


class HeaderPolicy(enum.StrEnum):
    """`MXRELAY_HEADER_RECIPIENTS`: what to do with header recipients outside the envelope."""

    STRIP = "strip"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class HeaderChange:
    """One address added to Bcc, or one header entry removed or refused (`entry` is its text)."""

    field: str
    entry: str
    change: RecipientChange


@dataclass(frozen=True, slots=True)
class HeaderReport:
    policy: HeaderPolicy
    changes: tuple[HeaderChange, ...] = ()
    unreadable: str | None = None
    """Why the header block could not be checked at all (then nothing may be sent)."""

    @property
    def refused(self) -> bool:
        """REJECT policy and a header recipient outside the envelope, or headers that cannot be
        checked: do not send."""
        return self.unreadable is not None or any(
            c.change is RecipientChange.REFUSED for c in self.changes
        )

    def count(self, change: RecipientChange) -> int:
        return sum(1 for c in self.changes if c.change is change)

    def describe(self) -> str:
        if self.unreadable is not None:
            return f"headers: not checked: {self.unreadable}"
        if not self.changes:
            return "headers: recipients agree with the envelope"
        parts = [f"{c.change.value} {c.field}: {c.entry}" for c in self.changes[:REPORTED_CHANGES]]
        if len(self.changes) > REPORTED_CHANGES:
            parts.append(f"and {len(self.changes) - REPORTED_CHANGES} more")
        return "headers: " + "; ".join(parts)


@dataclass(frozen=True, slots=True)
class HeaderResult:
    data: bytes
    report: HeaderReport

    @property
    def refused(self) -> bool:
        return self.report.refused


def reconcile_headers(
    data: bytes, recipients: Sequence[str], policy: HeaderPolicy = HeaderPolicy.STRIP
) -> HeaderResult:
    """Make To/Cc/Bcc of `data` name exactly `recipients` (the variant's accepted envelope)."""
    block = scan_headers(data)
    if not block.complete:
        reason = f"the header block is larger than {HEADER_LIMIT} bytes"
        return HeaderResult(data, HeaderReport(policy, unreadable=reason))
    envelope = _envelope(recipients)
    wanted = {mailbox for mailbox, _ in envelope}
    budget = _Budget(ENTRY_COUNT_LIMIT, ParserBudget(PARSER_CHARACTERS))
    plans = [
        _FieldPlan(field, _entries(data, field, wanted, budget))
        for field in block.fields
        if field.key in RECIPIENT_FIELDS and field.colon != -1
    ]
    present = {m for plan in plans for entry in plan.entries if entry.keep for m in entry.mailboxes}
    missing = [text for mailbox, text in envelope if mailbox not in present]
    removed = [(plan.field.key, e.label) for plan in plans for e in plan.entries if e.removed]
    if removed and policy is HeaderPolicy.REJECT:
        changes = [HeaderChange(key, text, RecipientChange.REFUSED) for key, text in removed]
        return HeaderResult(data, HeaderReport(policy, tuple(changes)))
    changes = [HeaderChange(key, text, RecipientChange.REMOVED) for key, text in removed]
    changes += [HeaderChange("bcc", text, RecipientChange.ADDED) for text in missing]
    if not changes:
        return HeaderResult(data, HeaderReport(policy))
    splices = _splices(data, block, plans, missing)
    return HeaderResult(apply_splices(data, splices), HeaderReport(policy, tuple(changes)))


# --------------------------------------------------------------------------------------------
# Entries of one field
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    """A mailbox (or unparseable text) between commas; `group` is set for a group member."""

    text: str
    mailboxes: tuple[Mailbox, ...]
    keep: bool
    group: int | None = None

    @property
    def removed(self) -> bool:
        return not self.keep and bool(self.text.strip())

    @property
    def label(self) -> str:
        """How the entry is named in reports: its addresses, else its text unfolded (cut)."""
        if self.mailboxes:
            return ", ".join(str(m) for m in self.mailboxes)
        text = " ".join(self.text[: LABEL_LENGTH * 4].split())
        return text if len(text) <= LABEL_LENGTH else text[:LABEL_LENGTH] + "…"


@dataclass(frozen=True, slots=True)
class _Group:
    head: str
    """Display name and colon, as written."""
    closed: bool


@dataclass(frozen=True, slots=True)
class _FieldPlan:
    field: HeaderField
    parsed: tuple[_Entry | _Group, ...]

    @property
    def entries(self) -> tuple[_Entry, ...]:
        return tuple(item for item in self.parsed if isinstance(item, _Entry))

    @property
    def changed(self) -> bool:
        return any(entry.removed for entry in self.entries)


@dataclass(slots=True)
class _Budget:
    """Entries still to be parsed in this message (ENTRY_COUNT_LIMIT), and characters still to
    be handed to the stdlib parser (PARSER_CHARACTERS)."""

    left: int
    parser: ParserBudget


def _entries(
    data: bytes, field: HeaderField, wanted: set[Mailbox], budget: _Budget
) -> tuple[_Entry | _Group, ...]:
    raw = data[field.colon + 1 : field.end]
    value = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
    items: list[_Entry | _Group] = []
    group_index: int | None = None
    for kind, text in _split(value):
        if kind == "group":
            group_index = len(items)
            items.append(_Group(text, closed=False))
        elif kind == "end":
            if group_index is not None:
                head = items[group_index]
                assert isinstance(head, _Group)
                items[group_index] = _Group(head.head, closed=True)
            group_index = None
        elif not text.strip():
            items.append(_Entry(text, (), False, group_index))
        else:
            budget.left -= 1
            mailboxes, valid = (
                _parse_entry(text, budget.parser) if budget.left >= 0 else ((), False)
            )
            keep = valid and bool(mailboxes) and all(m in wanted for m in mailboxes)
            items.append(_Entry(text, mailboxes, keep, group_index))
    return tuple(items)


def _split(value: str) -> list[tuple[str, str]]:
    """Split an address-list into ("entry", text), ("group", "Name:") and ("end", "") tokens.

    Commas, colons and semicolons count only outside quoted strings, comments, angle brackets and
    domain literals (RFC 5322 section 3.4). Unbalanced input ends the current entry at the end
    of the value, so nothing is ever lost: the stdlib parser then judges that text.
    """
    tokens: list[tuple[str, str]] = []
    start = 0
    quote = escaped = angle = bracket = False
    comment = 0
    in_group = False
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif quote or comment:
            if char == "\\":
                escaped = True
            elif quote and char == '"':
                quote = False
            elif comment and char == "(":
                comment += 1
            elif comment and char == ")":
                comment -= 1
        elif char == '"':
            quote = True
        elif char == "(":
            comment = 1
        elif char == "<":
            angle = True
        elif char == ">":
            angle = False
        elif char == "[":
            bracket = True
        elif char == "]":
            bracket = False
        elif angle or bracket:
            continue
        elif char == ":" and not in_group:
            tokens.append(("group", value[start : index + 1]))
            in_group = True
            start = index + 1
        elif char == ",":
            tokens.append(("entry", value[start:index]))
            start = index + 1
        elif char == ";" and in_group:
            tokens.append(("entry", value[start:index]))
            tokens.append(("end", ""))
            in_group = False
            start = index + 1
    tokens.append(("entry", value[start:]))
    if in_group:
        tokens.append(("end", ""))
    return tokens


def _parse_entry(text: str, budget: ParserBudget) -> tuple[tuple[Mailbox, ...], bool]:
    """The addresses in one entry, and whether it parsed cleanly as addresses with domains."""
    if not text.strip():
        return (), True
    parsed = parse_addresses(text, budget)
    mailboxes = tuple(
        Mailbox(local, canonical_domain(domain)) for local, domain, _ in parsed.addresses
    )
    valid = parsed.clean and all(m.local and m.domain for m in mailboxes)
    return mailboxes, valid


def _envelope(recipients: Sequence[str]) -> list[tuple[Mailbox, str]]:
    seen: set[Mailbox] = set()
    out: list[tuple[Mailbox, str]] = []
    for recipient in recipients:
        text = recipient.strip()
        if text.startswith("<") and text.endswith(">"):
            text = text[1:-1].strip()
        mailbox = Mailbox.parse(text)
        if mailbox not in seen:
            seen.add(mailbox)
            out.append((mailbox, _header_form(text, mailbox)))
    return out


def _header_form(text: str, mailbox: Mailbox) -> str:
    """An envelope address as written into Bcc: a non-ASCII domain goes in A-label form, which
    every header parser understands (an address cannot be an RFC 2047 encoded word)."""
    local, _, domain = text.rpartition("@")
    if domain.isascii():
        return text
    return f"{local}@{mailbox.domain}"


# --------------------------------------------------------------------------------------------
# Rewriting
# --------------------------------------------------------------------------------------------


def _render(items: Sequence[_Entry | _Group]) -> str | None:
    """The field value without its removed (and empty) entries, or None when nothing is left."""
    kept = _kept(items)
    if not kept:
        return None
    text = ",".join(kept)
    return text if text[:1] in (" ", "\t", "\r", "\n") else " " + text


def _group_text(head: str, members: list[str]) -> str:
    return head + ",".join(members) + ";"


def _kept(items: Sequence[_Entry | _Group]) -> list[str]:
    """Kept top-level entries and groups (with their kept members), in order."""
    out: list[str] = []
    index = 0
    while index < len(items):
        item = items[index]
        if isinstance(item, _Group):
            members: list[str] = []
            index += 1
            while index < len(items):
                member = items[index]
                if not isinstance(member, _Entry) or member.group is None:
                    break
                if member.keep:
                    members.append(member.text)
                index += 1
            out.append(_group_text(item.head, members))
            continue
        if item.keep:
            out.append(item.text)
        index += 1
    return out


def _splices(
    data: bytes, block: HeaderBlock, plans: list[_FieldPlan], missing: list[str]
) -> list[Splice]:
    nl = block.newline
    splices: list[Splice] = []
    bcc_plan = next((p for p in plans if p.field.key == "bcc"), None)
    rewritten: set[int] = set()
    for plan in plans:
        adding = plan is bcc_plan and bool(missing)
        if not plan.changed and not adding:
            continue
        field = plan.field
        rewritten.add(field.start)
        name = data[field.start : field.colon + 1]
        value = _render(plan.parsed)
        if adding:
            added = ("," + nl.decode() + " ").join(missing)
            value = f"{value},{nl.decode()} {added}" if value else " " + added
        if value is None:
            splices.append(Splice(field.start, field.end))
            continue
        rendered = name + value.encode("utf-8", "surrogateescape") + nl
        splices.append(Splice(field.start, field.end, rendered))
    if missing and bcc_plan is None:
        added = ("," + nl.decode() + " ").join(missing)
        line = f"Bcc: {added}".encode("utf-8", "surrogateescape") + nl
        at = block.headers_end
        last = block.fields[-1] if block.fields else None
        if last and last.start not in rewritten and not data[: last.end].endswith(b"\n"):
            line = nl + line  # the last field had no line end (a message of headers only)
        splices.append(Splice(at, at, line))
    return splices
