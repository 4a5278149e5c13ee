"""Which recipients get the calendar transform (`MXRELAY_ICS_STRIP`), and mailbox comparison.

The setting arrives from `mxrelay.config` as a lower-cased tuple: `("off",)`, `("all",)`, or
addresses and `@domain` entries. `IcsScope.from_setting` turns it into a typed value once, at
start-up, and refuses mixtures that cannot mean anything (`off,@example.com`). `matches(recipient)`
compares the domain case-insensitively in A-label form (so `@bücher.example` matches
`xn--bcher-kva.example`); the local part is compared case-insensitively too, because the setting
itself is lower-cased when it is loaded and the mailbox systems the relay serves (Exchange) treat
local parts that way.

`Mailbox` (also used by `headers.py`) splits an address into local part and A-label domain.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

import idna


class ScopeKind(enum.StrEnum):
    OFF = "off"
    ALL = "all"
    LISTED = "listed"


@dataclass(frozen=True, slots=True)
class Mailbox:
    """An address as compared: local part as written (quotes removed), domain in lower-case
    A-label form. `domain` is empty when the address has none."""

    local: str
    domain: str

    @classmethod
    def parse(cls, address: str) -> Mailbox:
        text = address.strip()
        if text.startswith("<") and text.endswith(">"):
            text = text[1:-1].strip()
        local, at, domain = text.rpartition("@")
        if not at:
            return cls(_unquote(text), "")
        return cls(_unquote(local), canonical_domain(domain))

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}" if self.domain else self.local


def canonical_domain(domain: str) -> str:
    """Lower-case A-label form of a domain; a name IDNA cannot encode is only lower-cased."""
    text = domain.strip().rstrip(".").lower()
    if text.startswith("[") or text.isascii():
        return text
    try:
        return idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError:
        return text


def _unquote(local: str) -> str:
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        inner = local[1:-1]
        out: list[str] = []
        escaped = False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return local


@dataclass(frozen=True, slots=True)
class IcsScope:
    """The recipients whose copy of a message is transformed."""

    kind: ScopeKind
    addresses: frozenset[Mailbox] = frozenset()
    domains: frozenset[str] = frozenset()

    @classmethod
    def from_setting(cls, values: Iterable[str]) -> IcsScope:
        """Parse `MimeSettings.ics_strip`. Raises ValueError naming the offending entry."""
        entries = [value.strip() for value in values if value.strip()]
        if not entries or entries == ["off"]:
            return cls(ScopeKind.OFF)
        if entries == ["all"]:
            return cls(ScopeKind.ALL)
        addresses: set[Mailbox] = set()
        domains: set[str] = set()
        for entry in entries:
            if entry in ("off", "all"):
                raise ValueError(f"{entry!r} cannot be combined with addresses or @domains")
            if entry.startswith("@") and len(entry) > 1 and "@" not in entry[1:]:
                domains.add(canonical_domain(entry[1:]))
                continue
            mailbox = Mailbox.parse(entry)
            if not mailbox.local or not mailbox.domain:
                raise ValueError(f"{entry!r} is neither an address nor an @domain")
            addresses.add(_folded(mailbox))
        return cls(ScopeKind.LISTED, frozenset(addresses), frozenset(domains))

    @property
    def active(self) -> bool:
        return self.kind is not ScopeKind.OFF

    def matches(self, recipient: str) -> bool:
        """Whether `recipient` (a mailbox, angle brackets allowed) is in scope."""
        if self.kind is ScopeKind.OFF:
            return False
        if self.kind is ScopeKind.ALL:
            return True
        mailbox = Mailbox.parse(recipient)
        return mailbox.domain in self.domains or _folded(mailbox) in self.addresses


def _folded(mailbox: Mailbox) -> Mailbox:
    return Mailbox(mailbox.local.lower(), mailbox.domain)
