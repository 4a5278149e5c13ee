"""One message beyond `message_log.MessageView`: its queue entries, its variants, the session
details the view leaves out, and the recipients refused in the same SMTP transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database
from mxrelay.store.console.common import PAGE_LIMIT, json_strings
from mxrelay.store.console.refusals import RefusalView, refusal_columns

TRANSACTION_WINDOW = 3600.0
"""Seconds before a message's arrival in which a refusal on the same connection counts as part
of its transaction (a connection is not kept open longer than this in practice)."""


@dataclass(frozen=True, slots=True)
class EntryView:
    """A queue entry of one message: a variant's place in the queue."""

    variant: int
    state: str
    attempts: int
    next_attempt_at: float
    hold_reason: str | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class VariantView:
    variant: int
    transforms: tuple[str, ...]
    report: tuple[str, ...]
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class MessageExtras:
    """What the message page shows beside `message_log.MessageView`."""

    entries: tuple[EntryView, ...]
    variants: tuple[VariantView, ...]
    refused: tuple[RefusalView, ...]
    """Recipients refused on the same connection and sender just before the message came."""
    client_port: int
    esmtp: bool
    tls_cipher: str | None
    seen: bool
    """Whether the message is marked read (opening its page marks it)."""


async def message_extras(db: Database, message_id: str) -> MessageExtras | None:
    return await db.read(_message_extras, message_id)


def _message_extras(conn: Connection, message_id: str) -> MessageExtras | None:
    m, q, v, f = schema.messages, schema.queue, schema.variants, schema.refusals
    row = conn.execute(
        select(
            m.c.received_at,
            m.c.client_address,
            m.c.client_port,
            m.c.mail_from,
            m.c.esmtp,
            m.c.tls_cipher,
            m.c.seen,
        ).where(m.c.id == message_id)
    ).first()
    if row is None:
        return None
    received_at, address, port, mail_from, esmtp, cipher, seen = row
    entries = tuple(
        EntryView(*entry)
        for entry in conn.execute(
            select(
                q.c.variant,
                q.c.state,
                q.c.attempts,
                q.c.next_attempt_at,
                q.c.hold_reason,
                q.c.last_error,
            )
            .where(q.c.message_id == message_id)
            .order_by(q.c.variant)
        )
    )
    variants = tuple(
        VariantView(
            variant, tuple(json_strings(transforms)), tuple(json_strings(report)), size, digest
        )
        for variant, transforms, report, size, digest in conn.execute(
            select(v.c.variant, v.c.transforms, v.c.report, v.c.size, v.c.sha256)
            .where(v.c.message_id == message_id)
            .order_by(v.c.variant)
        )
    )
    # The refusals of this transaction: same connection and sender, after the connection's
    # previous message (if any) and before this one.
    previous = conn.execute(
        select(func.max(m.c.received_at)).where(
            m.c.client_address == address,
            m.c.client_port == port,
            m.c.received_at < received_at,
            m.c.received_at >= received_at - TRANSACTION_WINDOW,
        )
    ).scalar()
    since = received_at - TRANSACTION_WINDOW if previous is None else float(previous)
    refused = tuple(
        RefusalView(*refusal)
        for refusal in conn.execute(
            refusal_columns()
            .where(
                f.c.client_address == address,
                f.c.client_port == port,
                f.c.mail_from == mail_from,
                f.c.refused_at > since,
                f.c.refused_at <= received_at,
            )
            .order_by(f.c.refused_at)
            .limit(PAGE_LIMIT)
        )
    )
    return MessageExtras(entries, variants, refused, int(port), bool(esmtp), cipher, bool(seen))
