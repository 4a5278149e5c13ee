"""A message's address lists and searchable header fields, as the message list shows and filters
them (pure: no I/O).

Mailpit keeps From, To, Cc, Bcc and Reply-To with their display names, and shows a recipient of
the SMTP envelope that no To or Cc field names as a Bcc (it writes a `Bcc:` header into the
message to do so). mxrelay keeps the bytes as received, so that Bcc is computed here from the
envelope, at ingest, into `messages.addresses` (`AddressLists.json`). The header filters of the
search (`from:`, `to:`, `addressed:`, `subject:`, `refused:`...) read `message_fields`: each field
lower-cased (`str.casefold`), one row per message (`field_row`).

Rows older than these columns have them NULL; `AddressLists.fallback` shows what the older
columns know (addr-specs of From and To, the envelope), and the backfill (`store/backfill.py`)
fills them in from the stored bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mxrelay.mime.addresses import NamedAddress, split_list

NO_SENDER: NamedAddress = ("", "")
"""Mailpit's `From` when the message has none: `{"Name": "", "Address": ""}`."""

LIST_KEYS = ("To", "Cc", "Bcc", "ReplyTo")
FIELD_LIMIT = 64 * 1024
"""Characters kept of one searchable field (the address lists are bounded before this)."""


@dataclass(frozen=True, slots=True)
class AddressLists:
    """Mailpit's address fields of a message summary, each mailbox as (name, address)."""

    sender: NamedAddress = NO_SENDER
    to: tuple[NamedAddress, ...] = ()
    cc: tuple[NamedAddress, ...] = ()
    bcc: tuple[NamedAddress, ...] = ()
    reply_to: tuple[NamedAddress, ...] = ()

    def json(self) -> str:
        """The stored form (`messages.addresses`)."""
        body: dict[str, Any] = {"From": list(self.sender)}
        body.update(zip(LIST_KEYS, (self._pairs(n) for n in self.lists()), strict=True))
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    def lists(self) -> tuple[tuple[NamedAddress, ...], ...]:
        return (self.to, self.cc, self.bcc, self.reply_to)

    @staticmethod
    def _pairs(mailboxes: Sequence[NamedAddress]) -> list[list[str]]:
        return [[name, address] for name, address in mailboxes]

    @classmethod
    def from_json(cls, text: str) -> AddressLists:
        """The stored form read back; what is not as `json` writes it reads as empty."""
        try:
            body = json.loads(text)
        except ValueError:
            return cls()
        if not isinstance(body, dict):
            return cls()
        sender = _mailboxes([body.get("From")])
        return cls(
            sender[0] if sender else NO_SENDER,
            *(_mailboxes(body.get(key)) for key in LIST_KEYS),
        )

    @classmethod
    def fallback(cls, header_from: str, header_to: str, envelope: Sequence[str]) -> AddressLists:
        """What a row stored before `messages.addresses` existed can show: the addr-specs its
        From and To columns kept (no names, no Cc), and the envelope's other recipients as Bcc."""
        senders = split_list(header_from)
        to = tuple(("", address) for address in split_list(header_to))
        return with_envelope(cls(("", senders[0]) if senders else NO_SENDER, to), envelope)


def _mailboxes(value: object) -> tuple[NamedAddress, ...]:
    if not isinstance(value, list):
        return ()
    found: list[NamedAddress] = []
    for item in value:  # a loop, not a generator: read for every message of a page or event
        if isinstance(item, list) and len(item) == 2:
            name, address = item
            if isinstance(name, str) and isinstance(address, str):
                found.append((name, address))
    return tuple(found)


def with_envelope(lists: AddressLists, envelope: Iterable[str]) -> AddressLists:
    """`lists` with each envelope recipient that no To, Cc or Bcc field names added to Bcc (as
    Mailpit shows a blind recipient). Addresses compare case-insensitively."""
    named = {address.casefold() for _, address in (*lists.to, *lists.cc, *lists.bcc)}
    blind: list[NamedAddress] = []
    for address in envelope:
        key = address.casefold()
        if key not in named:
            named.add(key)
            blind.append(("", address))
    if not blind:
        return lists
    return AddressLists(lists.sender, lists.to, lists.cc, (*lists.bcc, *blind), lists.reply_to)


def searchable(mailboxes: Iterable[NamedAddress]) -> str:
    """One address list as the header filters search it: `name <address>` entries (or the bare
    address), comma-separated, lower-cased."""
    entries = (
        f"{name} <{address}>" if name and address else name or address
        for name, address in mailboxes
    )
    return ", ".join(entries).casefold()[:FIELD_LIMIT]


@dataclass(frozen=True, slots=True)
class FieldRow:
    """The searchable text of one message (`message_fields`)."""

    message_id: str
    lists: AddressLists
    mail_from: str
    subject: str
    message_id_header: str
    refused: tuple[str, ...] = field(default=())

    def row(self) -> dict[str, str]:
        sender = (self.lists.sender,) if self.lists.sender != NO_SENDER else ()
        return {
            "message_id": self.message_id,
            "envelope_from": self.mail_from.casefold()[:FIELD_LIMIT],
            "from_list": searchable(sender),
            "to_list": searchable(self.lists.to),
            "cc_list": searchable(self.lists.cc),
            "bcc_list": searchable(self.lists.bcc),
            "reply_to_list": searchable(self.lists.reply_to),
            "refused_list": ", ".join(self.refused).casefold()[:FIELD_LIMIT],
            "subject": self.subject.casefold()[:FIELD_LIMIT],
            "message_id_header": self.message_id_header.casefold()[:FIELD_LIMIT],
        }
