"""The message log: messages, bodies, variants, recipients, delivery attempts and refusals.

Writers here take a connection and a batch (they run inside the group committer's transaction, see
`commit.py`); readers take a `Database` and return frozen views for the CLI and the web API.
Queue entries are written by `queue/`, the only home of queue SQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, column, select, table
from sqlalchemy.engine import Connection

from mxrelay.model import AttemptOutcome, RefusedRecipient, SessionInfo
from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.bulk import TableRows, insert_many, insert_tables, storable, stored_as_is
from mxrelay.store.fields import AddressLists, FieldRow, with_envelope
from mxrelay.store.ingest import NewMessage, Summary, decompress
from mxrelay.store.listing import MessageSummary
from mxrelay.store.search_sql import text_words
from mxrelay.store.tags import tag_messages

_MESSAGE_SEARCH = table(
    "message_search",
    column("message_id", Text),
    column("subject", Text),
    column("addresses", Text),
    column("body", Text),
)
"""The full-text table's written columns (the table is the migration's: `schema.py`)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A recipient refused at RCPT, with the session and sender it came with."""

    refused_at: float
    session: SessionInfo
    mail_from: str
    refused: RefusedRecipient


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What one attempt did for one recipient (status: delivered, deferred, failed, held)."""

    recipient: str
    status: str
    code: int | None = None
    enhanced: str = ""
    text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    """One delivery attempt as it is logged."""

    message_id: str
    variant: int
    attempt: int
    started_at: float
    duration: float
    transport: str
    owner: str
    outcome: AttemptOutcome
    code: int | None = None
    enhanced: str = ""
    text: str = ""
    http_status: int | None = None
    error_code: str | None = None
    remote_id: str | None = None
    recipients: tuple[RecipientResult, ...] = ()


@dataclass(frozen=True, slots=True)
class SearchRows:
    """A message's rows in the search index: its full-text row (`message_search`) and its
    searchable header fields (`message_fields`)."""

    text: dict[str, str]
    fields: dict[str, str]


def search_rows(
    message_id: str,
    mail_from: str,
    recipients: Sequence[str],
    refused: tuple[str, ...],
    summary: Summary,
) -> SearchRows:
    """The search rows of a message from its envelope and summary (pure)."""
    s = summary
    lists = with_envelope(s.addresses, recipients)
    named = (f"{n} {a}" for mailboxes in lists.lists() for n, a in mailboxes)
    addresses = " ".join((mail_from, " ".join(lists.sender), *named, *recipients))
    body = " ".join((s.body_text, *s.attachment_names)) if s.attachment_names else s.body_text
    return SearchRows(
        {"message_id": message_id, "subject": s.subject, "addresses": addresses, "body": body},
        FieldRow(message_id, lists, mail_from, s.subject, s.message_id, refused).row(),
    )


def search_rows_of(item: NewMessage) -> SearchRows:
    t = item.transaction
    refused = tuple(r.address for r in t.refused)
    return search_rows(item.id, t.mail_from, t.recipients, refused, item.summary)


def insert_search_rows(conn: Connection, items: Sequence[SearchRows]) -> None:
    """Write messages' search rows (in the accepting transaction, or behind it: `indexing.py`)."""
    insert_tables(conn, search_tables(conn, items))


def search_tables(conn: Connection, items: Sequence[SearchRows]) -> list[TableRows]:
    """The rows of the search tables for these messages, as `conn`'s dialect indexes them."""
    text_rows = [item.text for item in items]
    if conn.dialect.name == "postgresql":
        text_rows = [searchable_words(row) for row in text_rows]
    return [(_MESSAGE_SEARCH, text_rows), (schema.message_fields, [item.fields for item in items])]


@dataclass(frozen=True, slots=True)
class LogRows:
    """The log rows of accepted messages, by table, and the tags they ask for."""

    tables: list[TableRows]
    tagged: dict[str, tuple[str, ...]]

    def tag(self, conn: Connection) -> None:
        """Tag the messages (once their rows are written)."""
        if self.tagged:
            tag_messages(conn, self.tagged)


def insert_messages(conn: Connection, items: Sequence[NewMessage], *, index: bool = True) -> None:
    """Write the log rows of accepted messages (their queue entries are `Queue.enqueue`'s), and
    unless `index` is off, their search rows (the relay's sink writes those behind the commit)."""
    rows = log_rows(conn, items, index=index)
    insert_tables(conn, rows.tables)
    rows.tag(conn)


def log_rows(conn: Connection, items: Sequence[NewMessage], *, index: bool = True) -> LogRows:
    """What `insert_messages` writes, to be written with other rows (`Queue.enqueue`'s)."""
    message_rows = []
    body_rows = []
    variant_rows = []
    recipient_rows = []
    tagged: dict[str, tuple[str, ...]] = {}
    for item in items:
        t = item.transaction
        s = item.summary
        session = t.session
        lists = with_envelope(s.addresses, t.recipients)
        if s.tags:
            tagged[item.id] = s.tags
        message_rows.append(
            {
                "id": item.id,
                "received_at": item.received_at,
                "client_address": session.peer.host,
                "client_port": session.peer.port,
                "helo": session.helo[:255],
                "esmtp": session.esmtp,
                "username": session.username,
                "tls_version": session.tls.version if session.tls else None,
                "tls_cipher": session.tls.cipher if session.tls else None,
                "mail_from": t.mail_from,
                "mail_params": json.dumps(t.mail_params),
                "smtputf8": t.smtputf8,
                "body_8bitmime": t.body_8bitmime,
                "size": item.size,
                "sha256": item.sha256,
                "subject": s.subject,
                "header_from": s.header_from,
                "header_to": s.header_to,
                "message_id_header": s.message_id,
                "snippet": s.snippet,
                "attachments": s.attachments,
                "recipient_count": len(t.recipients),
                "transforms": item.transforms,
                "received_header": item.received_header,
                "transaction_id": t.transaction_id[:64],
                "seen": False,
                "body_pruned_at": None,
                "addresses": lists.json(),
                "inline_parts": s.inline,
            }
        )
        body_rows.append(
            {
                "message_id": item.id,
                "received_at": item.received_at,
                "encoding": item.encoding,
                "stored_size": len(item.compressed),
                "raw": item.compressed,
            }
        )
        sizes = {variant: (size, digest) for variant, size, digest in item.variant_sizes}
        state = "held" if item.hold_reason else "queued"
        for plan in item.variants:
            size, digest = sizes[plan.variant]
            variant_rows.append(
                {
                    "message_id": item.id,
                    "variant": plan.variant,
                    "transforms": json.dumps(plan.transforms),
                    "report": json.dumps(plan.report),
                    "size": size,
                    "sha256": digest,
                }
            )
            for position, address in enumerate(plan.recipients):
                recipient_rows.append(
                    {
                        "message_id": item.id,
                        "variant": plan.variant,
                        "position": position,
                        "address": address,
                        "state": state,
                        "attempts": 0,
                        "code": None,
                        "enhanced": None,
                        "text": None,
                        "updated_at": item.received_at,
                    }
                )
    tables: list[TableRows] = [
        (schema.messages, message_rows),
        (schema.message_bodies, body_rows),
        (schema.variants, variant_rows),
        (schema.recipients, recipient_rows),
    ]
    if index:
        tables += search_tables(conn, [search_rows_of(item) for item in items])
    return LogRows(tables, tagged)


def accepted_summary(item: NewMessage) -> MessageSummary | None:
    """The listing's summary of a message just written by `insert_messages`, without reading it
    back (the live events announce every accepted message): its text as the store keeps it
    (`bulk.storable`). None for a tagged message, whose tags may be spelt as an existing tag
    was (`tags.ensure_tags`), which only the store knows."""
    if item.summary.tags:
        return None
    t = item.transaction
    s = item.summary
    return MessageSummary(
        id=item.id,
        received_at=item.received_at,
        mail_from=storable(t.mail_from),
        subject=storable(s.subject),
        header_from=storable(s.header_from),
        header_to=storable(s.header_to),
        message_id_header=storable(s.message_id),
        username=None if t.session.username is None else storable(t.session.username),
        size=item.size,
        attachments=s.attachments,
        snippet=storable(s.snippet),
        seen=False,
        addresses=_stored_lists(with_envelope(s.addresses, t.recipients)),
    )


def _stored_lists(lists: AddressLists) -> AddressLists:
    """`lists` as `messages.addresses` reads back: its stored form is JSON (NUL escaped), so
    only text a database cannot store changes, and only non-ASCII text can be that."""
    every = (lists.sender, *lists.to, *lists.cc, *lists.bcc, *lists.reply_to)
    if all(name.isascii() and address.isascii() for name, address in every):
        return lists
    return AddressLists.from_json(storable(lists.json()))


def searchable_words(row: dict[str, str]) -> dict[str, str]:
    """A full-text row as PostgreSQL's index should read it (`search_sql.text_words`)."""
    return {key: value if key == "message_id" else text_words(value) for key, value in row.items()}


def insert_refusals(conn: Connection, items: Sequence[Refusal]) -> None:
    rows = [
        {
            "refused_at": item.refused_at,
            "client_address": item.session.peer.host,
            "client_port": item.session.peer.port,
            "helo": item.session.helo[:255],
            "username": item.session.username,
            "mail_from": item.mail_from,
            "recipient": item.refused.address[: schema.ADDRESS_LENGTH],
            "code": item.refused.reply.code,
            "enhanced": item.refused.reply.enhanced,
            "text": item.refused.reply.text,
            "reason": item.refused.reason.value,
        }
        for item in items
    ]
    insert_many(conn, schema.refusals, rows)


def _outcomes_json(outcomes: tuple[RecipientResult, ...]) -> str:
    return json.dumps(
        [
            {
                "recipient": o.recipient,
                "status": o.status,
                "code": o.code,
                "enhanced": o.enhanced,
                "text": o.text,
            }
            for o in outcomes
        ]
    )


def insert_attempts(conn: Connection, items: Sequence[AttemptRecord]) -> None:
    if items:
        insert_many(conn, schema.attempts, attempt_rows(items))


def attempt_rows(items: Sequence[AttemptRecord]) -> list[dict[str, Any]]:
    """The `attempts` rows of these records."""
    return [
        {
            "message_id": a.message_id,
            "variant": a.variant,
            "attempt": a.attempt,
            "started_at": a.started_at,
            "duration": a.duration,
            "transport": a.transport,
            "owner": a.owner,
            "outcome": a.outcome,
            "code": a.code,
            "enhanced": a.enhanced,
            "text": a.text[:2000],
            "http_status": a.http_status,
            "error_code": a.error_code,
            "remote_id": (a.remote_id or None) and a.remote_id[:255],
            "recipients": _outcomes_json(a.recipients),
        }
        for a in items
    ]


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecipientView:
    variant: int
    address: str
    state: str
    attempts: int
    code: int | None
    enhanced: str | None
    text: str | None


@dataclass(frozen=True, slots=True)
class AttemptView:
    variant: int
    attempt: int
    started_at: float
    duration: float
    transport: str
    outcome: str
    code: int | None
    enhanced: str | None
    text: str | None
    remote_id: str | None
    http_status: int | None
    error_code: str | None


@dataclass(frozen=True, slots=True)
class MessageView:
    id: str
    received_at: float
    client_address: str
    helo: str
    username: str | None
    tls_version: str | None
    mail_from: str
    size: int
    sha256: str
    subject: str
    header_from: str
    header_to: str
    message_id_header: str
    transforms: tuple[str, ...]
    transform_reports: tuple[str, ...]
    """What the transforms did to each variant, or left and why (`VariantPlan.report`)."""
    body_pruned: bool
    recipients: tuple[RecipientView, ...]
    attempts: tuple[AttemptView, ...]


async def get_message(db: Database, message_id: str) -> MessageView | None:
    """A message with its recipients and attempts, or None."""
    return await db.read(_get_message, message_id)


def _get_message(conn: Connection, message_id: str) -> MessageView | None:
    if not stored_as_is(message_id):  # a request's id with a NUL names no message
        return None
    m, r, a, v = schema.messages, schema.recipients, schema.attempts, schema.variants
    row = conn.execute(select(m).where(m.c.id == message_id)).mappings().first()
    if row is None:
        return None
    reports = conn.execute(
        select(v.c.report).where(v.c.message_id == message_id).order_by(v.c.variant)
    ).scalars()
    recipient_rows = conn.execute(
        select(r.c.variant, r.c.address, r.c.state, r.c.attempts, r.c.code, r.c.enhanced, r.c.text)
        .where(r.c.message_id == message_id)
        .order_by(r.c.variant, r.c.position)
    )
    attempt_rows = conn.execute(
        select(
            a.c.variant,
            a.c.attempt,
            a.c.started_at,
            a.c.duration,
            a.c.transport,
            a.c.outcome,
            a.c.code,
            a.c.enhanced,
            a.c.text,
            a.c.remote_id,
            a.c.http_status,
            a.c.error_code,
        )
        .where(a.c.message_id == message_id)
        .order_by(a.c.started_at, a.c.id)
    )
    return MessageView(
        id=row["id"],
        received_at=row["received_at"],
        client_address=row["client_address"],
        helo=row["helo"],
        username=row["username"],
        tls_version=row["tls_version"],
        mail_from=row["mail_from"],
        size=row["size"],
        sha256=row["sha256"],
        subject=row["subject"],
        header_from=row["header_from"],
        header_to=row["header_to"],
        message_id_header=row["message_id_header"],
        transforms=tuple(json.loads(row["transforms"])),
        transform_reports=tuple(str(line) for report in reports for line in json.loads(report)),
        body_pruned=row["body_pruned_at"] is not None,
        recipients=tuple(RecipientView(**dict(rec._mapping)) for rec in recipient_rows),
        attempts=tuple(AttemptView(**dict(att._mapping)) for att in attempt_rows),
    )


def envelopes_of(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The envelope recipients of these messages, in order (a message without any is left out)."""
    r = schema.recipients
    found: dict[str, list[str]] = {}
    if ids:
        for message_id, address in conn.execute(
            select(r.c.message_id, r.c.address)
            .where(r.c.message_id.in_(ids))
            .order_by(r.c.message_id, r.c.variant, r.c.position)
        ):
            found.setdefault(message_id, []).append(address)
    return {message_id: tuple(addresses) for message_id, addresses in found.items()}


async def get_raw(db: Database, message_id: str) -> bytes | None:
    """The message exactly as received, or None when unknown or its body was pruned."""
    return await db.read(_get_raw, message_id)


def _get_raw(conn: Connection, message_id: str) -> bytes | None:
    if not stored_as_is(message_id):
        return None
    b = schema.message_bodies
    row = conn.execute(select(b.c.encoding, b.c.raw).where(b.c.message_id == message_id)).first()
    return None if row is None else decompress(row[0], row[1])
