"""The `Sink` of the `graph`, `smtp` and `hold` modes: accept into the store, answer once it is on disk.

`StoreSink` implements `smtp.policy.Sink`. A recipient the check accepted is answered `250 2.1.5` at
once (nothing is forwarded while the client waits). At the end of DATA, `finish()` builds the rows
(`record.build_record`), hands them to the group committer and answers `250 2.0.0 Ok: queued as <id>`
only after the transaction that holds the message, its variants, recipients and queue entries is
committed; if the store fails, the answer is `451 4.3.0` and the client keeps the message. After a
commit the delivery worker is woken (`on_commit`), so a new message is picked up at once.

Refused recipients are logged through the same committer without making the session wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.engine import Connection
from ulid import ULID

from mxrelay.log import event
from mxrelay.model import RefusedRecipient, Reply, SessionInfo, Transaction
from mxrelay.store.commit import GroupCommitter, StoreUnavailable
from mxrelay.store.log import Refusal, insert_messages, insert_refusals
from mxrelay.store.queue import Queue
from mxrelay.store.record import NewMessage, build_record
from mxrelay.store.variants import VariantPlan, plan_variants, render_variant

RECIPIENT_OK = Reply(250, "1.5", "Ok")
STORE_FAILED = Reply(451, "3.0", "Error: queue file write error, try again later")

OFFLOAD_SIZE = 256 * 1024
"""Messages larger than this are hashed, compressed and parsed in a thread, off the event loop."""

HOLD_MODE_REASON = "MXRELAY_DELIVERY=hold: kept until released"

MailParams = tuple[tuple[str, str | None], ...]

log = logging.getLogger(__name__)


def new_message_id(received_at: datetime) -> str:
    """A ULID: 26 characters, sortable by arrival, unique without coordination between replicas."""
    return str(ULID.from_datetime(received_at))


def _utc_now() -> datetime:
    return datetime.now(UTC)


def write_accepted(conn: Connection, items: Sequence[NewMessage]) -> None:
    """Group-committer writer: the log rows and the queue entries of accepted messages."""
    insert_messages(conn, items)
    Queue.enqueue(conn, items)


def write_refusals(conn: Connection, items: Sequence[Refusal]) -> None:
    insert_refusals(conn, items)


class StoreSink:
    """Accepts transactions into the store and queue."""

    def __init__(
        self,
        committer: GroupCommitter,
        *,
        hostname: str,
        hold: bool = False,
        on_commit: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = _utc_now,
        message_id: Callable[[datetime], str] = new_message_id,
        plan: Callable[[bytes, tuple[str, ...]], tuple[VariantPlan, ...]] = plan_variants,
        render: Callable[[bytes, tuple[str, ...]], bytes] = render_variant,
    ) -> None:
        self.committer = committer
        self.hostname = hostname
        self.hold_reason = HOLD_MODE_REASON if hold else None
        self.on_commit = on_commit
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
        future = self.committer.submit_nowait(write_refusals, refusal)
        future.add_done_callback(_log_refusal_failure)

    async def accept(self, transaction: Transaction) -> Reply:
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

        if len(transaction.data) > OFFLOAD_SIZE:
            record = await asyncio.to_thread(build)
        else:
            record = build()
        try:
            await self.committer.submit(write_accepted, record)
        except StoreUnavailable as exc:
            event(log, "store.accept_failed", logging.ERROR, error=str(exc))
            return STORE_FAILED
        if self.on_commit is not None:
            self.on_commit()
        return Reply(250, "0.0", f"Ok: queued as {message_id}")


def _log_refusal_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        event(log, "store.refusal_not_logged", logging.WARNING, error=str(future.exception()))


class StoreTransaction:
    """One SMTP transaction on its way into the store."""

    def __init__(self, sink: StoreSink) -> None:
        self.sink = sink

    async def add_recipient(self, mailbox: str, params: MailParams) -> Reply:
        return RECIPIENT_OK

    async def finish(self, transaction: Transaction) -> Reply:
        return await self.sink.accept(transaction)

    async def abort(self) -> None:
        return None
