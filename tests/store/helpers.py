"""Builders for store tests: transactions and accepted messages, written through the real code."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime

from mxrelay.model import Peer, SessionInfo, Transaction
from mxrelay.sinks.queued import new_message_id, write_accepted
from mxrelay.store.backend import Database
from mxrelay.store.ingest import NewMessage, build_record

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
_sequence = itertools.count()


def message_bytes(subject: str = "Hello", body: str = "Body text.") -> bytes:
    return (
        f"From: Alice <alice@example.net>\r\nTo: bob@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <m{next(_sequence)}@example.net>\r\n\r\n{body}\r\n"
    ).encode()


def transaction(
    *,
    recipients: Sequence[str] = ("bob@example.org",),
    mail_from: str = "alice@example.net",
    data: bytes | None = None,
    received_at: datetime = T0,
) -> Transaction:
    return Transaction(
        session=SessionInfo(Peer("127.0.0.1", 40000), helo="app.example.net", esmtp=True),
        mail_from=mail_from,
        recipients=tuple(recipients),
        data=data if data is not None else message_bytes(),
        received_at=received_at,
    )


def record(txn: Transaction | None = None, *, hold_reason: str | None = None) -> NewMessage:
    txn = txn if txn is not None else transaction()
    return build_record(
        txn,
        message_id=new_message_id(txn.received_at),
        hostname="relay.example.net",
        hold_reason=hold_reason,
    )


async def accept(db: Database, *records: NewMessage) -> None:
    """Commit messages as the sink does (log rows and queue entries in one transaction)."""
    await db.write(write_accepted, records)
