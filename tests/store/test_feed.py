"""The event feed reads what every writer wrote, from the rows themselves, on both dialects: new
messages (once each), attempts, refusals and announced changes; after the newest messages are
deleted on SQLite (whose next rows reuse their keys) the next message is still found; on PostgreSQL
a row committed after a later key was read is found when it commits. A summary the accepting
process handed over is not read back."""

from __future__ import annotations

from dataclasses import replace

import asyncpg
import pytest
from sqlalchemy import delete
from sqlalchemy.engine import Connection

from mxrelay.model import AttemptOutcome, Peer, Reason, RefusedRecipient, Reply, SessionInfo
from mxrelay.store import message_log, schema
from mxrelay.store.backend import Database, Dialect
from mxrelay.store.changes import ChangeKind, announce
from mxrelay.store.feed import AcceptedSummaries, EventFeed, mailbox_counts
from mxrelay.store.message_log import (
    AttemptRecord,
    RecipientResult,
    Refusal,
    insert_attempts,
    insert_refusals,
)
from mxrelay.store.open import open_store
from tests.store.helpers import accept, record, transaction

SESSION = SessionInfo(Peer("192.0.2.7", 40000), helo="app.example.net", esmtp=True)
NXDOMAIN = Reply(550, "1.2", "<x@nope.example.net>: Recipient address rejected: Domain not found")


def refusal(address: str = "x@nope.example.net", at: float = 1000.0) -> Refusal:
    return Refusal(
        at, SESSION, "app@example.org", RefusedRecipient(address, NXDOMAIN, Reason.NXDOMAIN)
    )


def delete_message(conn: Connection, message_id: str) -> None:
    for table in (schema.recipients, schema.queue, schema.variants, schema.message_bodies):
        conn.execute(delete(table).where(table.c.message_id == message_id))
    conn.execute(delete(schema.messages).where(schema.messages.c.id == message_id))


async def test_each_kind_of_row_is_an_event_once(db: Database) -> None:
    await accept(db, record())  # before the feed started: not news
    feed = EventFeed(db)
    await feed.start()
    assert not await feed.poll()
    new = record(transaction(recipients=("a@example.org", "b@example.org")))
    await accept(db, new)
    await db.write(insert_refusals, [refusal()])
    attempt = AttemptRecord(
        message_id=new.id,
        variant=0,
        attempt=1,
        started_at=2000.0,
        duration=0.5,
        transport="smtp",
        owner="test",
        outcome=AttemptOutcome.DELIVERED,
        code=250,
        enhanced="2.0.0",
        text="Ok: queued as Q1",
        recipients=(RecipientResult("a@example.org", "delivered", 250, "2.0.0", "Ok"),),
    )
    await db.write(insert_attempts, [attempt])
    await announce(db, ChangeKind.DELETE, {"ID": "01GONE"})
    events = await feed.poll()
    assert [m.id for m in events.new] == [new.id]
    assert [r.recipient for r in events.refusals] == ["x@nope.example.net"]
    assert events.refusals[0].reason == "nxdomain"
    [seen] = events.attempts
    assert (seen.message_id, seen.view.outcome, seen.view.code) == (new.id, "delivered", 250)
    assert [r.recipient for r in seen.recipients] == ["a@example.org"]
    assert [(c.kind, c.data) for c in events.changes] == [(ChangeKind.DELETE, {"ID": "01GONE"})]
    assert not await feed.poll()
    assert await mailbox_counts(db) == (2, 2)


async def test_more_than_a_batch_comes_over_several_polls(db: Database) -> None:
    feed = EventFeed(db, batch=3)
    await feed.start()
    await db.write(
        insert_refusals, [refusal(f"r{i}@nope.example.net", 1000.0 + i) for i in range(7)]
    )
    first = await feed.poll()
    assert first.more
    found = [r.recipient for r in first.refusals]
    while True:
        events = await feed.poll()
        found += [r.recipient for r in events.refusals]
        if not events.more:
            break
    assert found == [f"r{i}@nope.example.net" for i in range(7)]


async def test_a_message_after_the_newest_were_deleted_is_found(db: Database) -> None:
    """SQLite gives the next rows the keys of the deleted newest ones: the feed goes back."""
    feed = EventFeed(db)
    await feed.start()
    first = record(transaction(recipients=("a@example.org", "b@example.org")))
    await accept(db, first)
    assert [m.id for m in (await feed.poll()).new] == [first.id]
    await db.write(delete_message, first.id)
    second = record(transaction(recipients=("c@example.org", "d@example.org")))
    await accept(db, second)
    assert [m.id for m in (await feed.poll()).new] == [second.id]
    assert not (await feed.poll()).new


async def test_a_message_after_the_log_was_emptied_is_found(db: Database) -> None:
    feed = EventFeed(db)
    await feed.start()
    messages = [record() for _ in range(3)]
    await accept(db, *messages)
    assert len((await feed.poll()).new) == 3
    for message in messages:
        await db.write(delete_message, message.id)
    again = [record() for _ in range(4)]
    await accept(db, *again)
    assert [m.id for m in (await feed.poll()).new] == [m.id for m in again]


@pytest.mark.postgres
async def test_a_row_committed_after_a_later_one_is_found(postgres_url: str) -> None:
    async with open_store(postgres_url) as db:
        assert db.dialect is Dialect.POSTGRESQL
        await _committed_late(db)


async def _committed_late(db: Database) -> None:
    feed = EventFeed(db)
    await feed.start()
    dsn = db.target.url.set(drivername="postgresql").render_as_string(hide_password=False)
    slow = await asyncpg.connect(dsn)
    try:
        transaction_ = slow.transaction()
        await transaction_.start()
        await slow.execute(
            "INSERT INTO refusals (refused_at, client_address, client_port, helo, mail_from, "
            "recipient, code, enhanced, text, reason) VALUES "
            "(1, '192.0.2.1', 1, 'h', 's@example.org', 'slow@nope.example.net', 550, '5.1.2', "
            "'t', 'nxdomain')"
        )
        await db.write(insert_refusals, [refusal("fast@nope.example.net")])
        assert [r.recipient for r in (await feed.poll()).refusals] == ["fast@nope.example.net"]
        await transaction_.commit()
    finally:
        await slow.close()
    assert [r.recipient for r in (await feed.poll()).refusals] == ["slow@nope.example.net"]
    assert not (await feed.poll()).refusals


async def test_a_summary_handed_over_is_not_read_back(db: Database) -> None:
    """The accepting process hands the feed what it committed: the poll takes that summary
    (here one the store does not hold, to tell them apart) and reads only the others."""
    feed = EventFeed(db)
    await feed.start()
    handed, other = record(), record()
    await accept(db, handed, other)
    summary = message_log.accepted_summary(handed)
    assert summary is not None
    feed.accepted.add(replace(summary, subject="from memory"))
    events = await feed.poll()
    assert [(m.id, m.subject) for m in events.new] == [
        (handed.id, "from memory"),
        (other.id, "Hello"),
    ]
    assert len(feed.accepted) == 0


def test_summaries_never_found_do_not_pile_up() -> None:
    accepted = AcceptedSummaries(limit=3)
    messages = [record() for _ in range(5)]
    for message in messages:
        summary = message_log.accepted_summary(message)
        assert summary is not None
        accepted.add(summary)
    assert len(accepted) == 3
    assert list(accepted.take([m.id for m in messages])) == [m.id for m in messages[2:]]
    assert len(accepted) == 0
