"""The `Sink` of the `graph`, `smtp` and `hold` modes: accept into the store, answer once it is on disk.

`StoreSink` implements `smtp.sink.Sink`. A recipient the check accepted is answered `250 2.1.5` at
once (nothing is forwarded while the client waits). At the end of DATA, `finish()` builds the rows
(`ingest.build_record`), hands them to the group committer and answers `250 2.0.0 Ok: queued as <id>`
only after the transaction that holds the message, its variants, recipients and queue entries is
committed; if the store fails, the answer is `451 4.3.0` and the client keeps the message. Given a
`SearchIndexer`, the message's search rows are left out of that transaction and written by it
afterwards (`store/indexing.py`). After a commit the message goes straight to a delivery worker
that has room for it (`DirectDispatch`: in this process, or the delivery process over its link),
or whoever delivers is woken to claim it (`Waker`); the live events of this process are told of it
(`Announcer`).

Refused recipients are logged through the same committer without making the session wait. The
transaction log line gets the queue id and the transform reports (`StoreTransaction.log_fields`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.engine import Connection
from ulid import ULID

from mxrelay.log import event
from mxrelay.mime.pipeline import parse_in_thread
from mxrelay.model import MailParams, RefusedRecipient, Reply, SessionInfo, Transaction, utc_now
from mxrelay.smtp import replies
from mxrelay.store.commit import GroupCommitter, StoreUnavailable
from mxrelay.store.indexing import SearchIndexer
from mxrelay.store.ingest import NewMessage, build_record
from mxrelay.store.message_log import Refusal, insert_refusals, log_rows
from mxrelay.store.queue import LoadedEntry, Queue, QueueEntry
from mxrelay.store.variants import VariantPlan, plan_variants, render_variant

OFFLOAD_SIZE = 256 * 1024
"""Messages larger than this are hashed, compressed and parsed in a thread, off the event loop,
and their rows are written on the store's thread (`GroupCommitter.submit(large=True)`). Smaller
messages whose parsing could still take long (`mime.pipeline.parse_in_thread`) are parsed in a
thread too."""

HOLD_MODE_REASON = "MXRELAY_DELIVERY=hold: kept until released"

logger = logging.getLogger(__name__)


def new_message_id(received_at: datetime) -> str:
    """A ULID: 26 characters, sortable by arrival, unique without coordination between replicas."""
    return str(ULID.from_datetime(received_at))


def write_accepted(conn: Connection, items: Sequence[NewMessage]) -> list[tuple[QueueEntry, ...]]:
    """Group-committer writer: the log rows and the queue entries of accepted messages; per
    message, the entries created leased to this process (see `DirectDispatch`)."""
    return _write_accepted(conn, items, index=True)


def write_accepted_unindexed(
    conn: Connection, items: Sequence[NewMessage]
) -> list[tuple[QueueEntry, ...]]:
    """`write_accepted` without the search rows, which a `SearchIndexer` writes after."""
    return _write_accepted(conn, items, index=False)


def _write_accepted(
    conn: Connection, items: Sequence[NewMessage], *, index: bool
) -> list[tuple[QueueEntry, ...]]:
    """The log rows and the queue entries written together (one statement on PostgreSQL)."""
    rows = log_rows(conn, items, index=index)
    entries = Queue.enqueue(conn, items, log=rows.tables)
    rows.tag(conn)
    return entries


def written_in_one_statement(record: NewMessage) -> bool:
    """Whether `write_accepted` (or `write_accepted_unindexed`) writes `record`, and any number
    of records like it, in one statement on PostgreSQL: its log rows and queue entries go in
    one (`Queue.enqueue`), its tags, if it has any, in statements of their own."""
    return not record.summary.tags


class Waker(Protocol):
    """Whoever delivers from the queue (a worker here, or the delivery process), told of new mail."""

    def wake(self) -> None:
        """Queued mail was committed: claim it now."""
        ...


class Announcer(Protocol):
    """The live events of this process (`web.events.EventHub`), told of each committed message
    so that they need not read it back to announce it."""

    def accepted(self, record: NewMessage) -> None: ...


class DirectDispatch(Protocol):
    """A delivery worker to which new mail can go straight from memory (in this process, or the
    delivery process: `DeliveryProcess` sends it over their link).

    Before committing, the sink asks for free delivery slots; if it gets them, the message's
    entries are committed already leased to this process, and after the commit they are handed
    over with everything needed to send them, so a fresh message costs no claim and no read. If
    the worker is busy, the entries are committed queued and the `Waker` is woken instead.
    """

    def reserve(self, slots: int, size: int) -> tuple[str, float] | None:
        """(lease owner, lease expiry) for `slots` deliveries of a message of `size` bytes, or
        None when busy (or when the message is too large to be handed to another process)."""
        ...

    def cancel(self, slots: int) -> None:
        """Give back reserved slots (the commit failed)."""
        ...

    def hand_over(self, loaded: Sequence[LoadedEntry]) -> None:
        """Deliver committed, leased entries."""
        ...


class StoreSink:
    """Accepts transactions into the store and queue."""

    def __init__(
        self,
        committer: GroupCommitter,
        *,
        hostname: str,
        hold: bool = False,
        waker: Waker | None = None,
        direct: DirectDispatch | None = None,
        clock: Callable[[], datetime] = utc_now,
        message_id: Callable[[datetime], str] = new_message_id,
        plan: Callable[[bytes, tuple[str, ...]], tuple[VariantPlan, ...]] = plan_variants,
        render: Callable[[bytes, tuple[str, ...]], bytes] = render_variant,
        indexer: SearchIndexer | None = None,
    ) -> None:
        self.committer = committer
        self.indexer = indexer
        """Writes each message's search rows after its commit; without one, the commit does."""
        self.hostname = hostname
        self.hold_reason = HOLD_MODE_REASON if hold else None
        self.waker = waker
        self.direct = direct
        self.announcer: Announcer | None = None
        """Set once the web server of this process is up."""
        self.clock = clock
        self.message_id = message_id
        self.plan = plan
        self.render = render

    def begin(self, session: SessionInfo, mail_from: str, params: MailParams) -> StoreTransaction:
        return StoreTransaction(self)

    async def record_refusal(
        self, session: SessionInfo, mail_from: str, refused: RefusedRecipient
    ) -> None:
        refusal = Refusal(self.clock().timestamp(), session, mail_from, refused)
        future = self.committer.submit_nowait(insert_refusals, refusal)
        future.add_done_callback(_log_refusal_failure)

    async def accept(self, transaction: Transaction) -> Reply:
        return (await self.store(transaction))[0]

    async def store(self, transaction: Transaction) -> tuple[Reply, NewMessage | None]:
        """`accept`, with the record committed (None when the store failed)."""
        message_id = self.message_id(transaction.received_at)

        def build() -> NewMessage:
            return build_record(
                transaction,
                message_id=message_id,
                hostname=self.hostname,
                hold_reason=self.hold_reason,
                plan=self.plan,
                render=self.render,
            )

        large = len(transaction.data) > OFFLOAD_SIZE
        offload = large or parse_in_thread(transaction.data)
        record = await asyncio.to_thread(build) if offload else build()
        slots = len(record.variants)
        direct = self.direct if self.hold_reason is None else None
        lease = direct.reserve(slots, len(transaction.data)) if direct is not None else None
        if lease is not None:
            record = dataclasses.replace(record, lease=lease)
        indexer = self.indexer
        writer = write_accepted if indexer is None else write_accepted_unindexed
        try:
            leased = await self.committer.submit(
                writer, record, large=large, one_statement=written_in_one_statement(record)
            )
        except StoreUnavailable as exc:
            if direct is not None and lease is not None:
                direct.cancel(slots)
            event(logger, "store.accept_failed", logging.ERROR, error=str(exc))
            return replies.STORE_FAILED, None
        if indexer is not None:
            indexer.add(record)
        if self.announcer is not None:
            self.announcer.accepted(record)
        if direct is not None and lease is not None:
            direct.hand_over(_loaded(record, leased))
        elif self.waker is not None and self.hold_reason is None:
            self.waker.wake()
        return replies.queued_as(message_id), record


def _loaded(record: NewMessage, entries: Sequence[QueueEntry]) -> list[LoadedEntry]:
    """What a delivery attempt needs, from the accepted message itself (no read)."""
    plans = {plan.variant: plan for plan in record.variants}
    transaction = record.transaction
    return [
        LoadedEntry(
            entry=entry,
            mail_from=transaction.mail_from,
            smtputf8=transaction.smtputf8,
            received_header=record.received_header,
            data=transaction.data,
            transforms=plans[entry.variant].transforms,
            recipients=plans[entry.variant].recipients,
            received_at=record.received_at,
            header_from=record.summary.header_from,
        )
        for entry in entries
    ]


def _log_refusal_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        event(logger, "store.refusal_not_logged", logging.WARNING, error=str(future.exception()))


class StoreTransaction:
    """One SMTP transaction on its way into the store."""

    def __init__(self, sink: StoreSink) -> None:
        self.sink = sink
        self.record: NewMessage | None = None

    async def add_recipient(self, mailbox: str, params: MailParams) -> Reply:
        return replies.RECIPIENT_OK

    async def finish(self, transaction: Transaction) -> Reply:
        reply, self.record = await self.sink.store(transaction)
        return reply

    def log_fields(self) -> Mapping[str, object]:
        """The transaction log line's queue id and what the transforms did (or left, and why),
        as the message record keeps it (`variants.report`)."""
        if self.record is None:
            return {}
        reports = [line for plan in self.record.variants for line in plan.report]
        return {"queue_id": self.record.id, **({"transforms": reports} if reports else {})}

    async def abort(self) -> None:
        return None
