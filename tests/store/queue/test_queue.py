"""The delivery side of the queue, on SQLite and PostgreSQL: claims, leases, settlements, recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import event, select
from sqlalchemy.engine import Connection

from mxrelay.model import AttemptOutcome, QueueState
from mxrelay.store import message_log, schema
from mxrelay.store.backend import Database, Dialect
from mxrelay.store.ingest import NewMessage, build_record
from mxrelay.store.queue import (
    HoldKind,
    LoadedEntry,
    Queue,
    RecipientStatus,
    RecipientUpdate,
    Settlement,
)
from mxrelay.store.queue.admin import QueueAdmin, QueueFilter
from mxrelay.store.queue.entries import QueueEntry
from mxrelay.store.variants import VariantPlan
from tests.store.helpers import T0, accept, record, transaction

NOW = T0.timestamp()
LEASE = 60.0


async def settle(db: Database, settlement: Settlement) -> None:
    await db.write(Queue(db).settle_batch, [settlement])


async def load(queue: Queue, entry: QueueEntry) -> LoadedEntry | None:
    return (await queue.load_many([entry])).get(entry.id)


def log_and_enqueue(conn: Connection, items: Sequence[NewMessage]) -> list[tuple[QueueEntry, ...]]:
    message_log.insert_messages(conn, items)
    return Queue.enqueue(conn, items)


def two_variants(data: bytes, recipients: tuple[str, ...]) -> tuple[VariantPlan, ...]:
    return (VariantPlan(0, recipients[:1]), VariantPlan(1, recipients[1:], ("x",)))


async def test_enqueue_creates_each_entry_in_its_first_state(db: Database) -> None:
    """Queued; held in hold mode; leased to this process when the sink asked (each variant),
    and then returned; held, not leased, when both."""
    plain, held = record(), record(hold_reason="hold mode")
    txn = transaction(recipients=("a@example.org", "b@example.org"))
    leased = replace(
        build_record(
            txn,
            message_id="01LEASED0000000000000000AA",
            hostname="relay.example.net",
            plan=two_variants,
            render=lambda data, transforms: data,
        ),
        lease=("me", NOW + LEASE),
    )
    both = replace(record(hold_reason="hold mode"), lease=("me", NOW + LEASE))
    returned = await db.write(log_and_enqueue, [plain, held, leased, both])
    assert [len(r) for r in returned] == [0, 0, 2, 0]
    assert [(e.variant, e.state, e.lease_owner) for e in returned[2]] == [
        (0, QueueState.ACTIVE, "me"),
        (1, QueueState.ACTIVE, "me"),
    ]
    rows = await QueueAdmin(db).list_entries(QueueFilter(), now=NOW)
    found = {(row.entry.message_id, row.entry.variant): row.entry for row in rows}
    assert set(returned[2]) == {found[leased.id, 0], found[leased.id, 1]}
    assert all(e.lease_expires_at == NOW + LEASE for e in returned[2])
    first = {
        plain.id: (QueueState.QUEUED, None, None, None),
        held.id: (QueueState.HELD, None, HoldKind.MODE, "hold mode"),
        both.id: (QueueState.HELD, None, HoldKind.MODE, "hold mode"),
    }
    for message_id, expected in first.items():
        entry = found[message_id, 0]
        assert (entry.state, entry.lease_owner, entry.hold_kind, entry.hold_reason) == expected
        assert entry.lease_expires_at is None
        assert (entry.attempts, entry.next_attempt_at, entry.queued_at) == (0, NOW, NOW)
    assert await db.write(log_and_enqueue, [record(), record(hold_reason="hold")]) == [(), ()]


async def test_claim_leases_each_due_entry_once(db: Database) -> None:
    queue = Queue(db)
    await accept(db, *(record() for _ in range(5)))
    first = await queue.claim("a", 3, NOW, LEASE)
    second = await queue.claim("b", 10, NOW, LEASE)
    assert len(first) == 3
    assert len(second) == 2
    assert {e.id for e in first}.isdisjoint(e.id for e in second)
    assert all(e.state is QueueState.ACTIVE and e.lease_owner == "a" for e in first)
    assert all(e.lease_expires_at == NOW + LEASE for e in first)
    assert await queue.claim("c", 10, NOW, LEASE) == []


async def test_an_expired_lease_is_claimed_by_another_owner(db: Database) -> None:
    queue = Queue(db)
    await accept(db, record())
    [entry] = await queue.claim("a", 1, NOW, LEASE)
    assert await queue.requeue_expired(NOW + LEASE / 2) == 0
    assert await queue.claim("b", 1, NOW + LEASE / 2, LEASE) == []
    assert await queue.requeue_expired(NOW + LEASE + 1) == 1
    [again] = await queue.claim("b", 1, NOW + LEASE + 1, LEASE)
    assert again.id == entry.id
    assert await queue.renew_many([entry], "a", NOW + LEASE + 3, LEASE) == set()  # "a" lost it
    assert await queue.renew_many([entry], "b", NOW + LEASE + 3, LEASE) == {entry.id}
    [view] = await QueueAdmin(db).list_entries(QueueFilter(), now=NOW)
    assert view.entry.lease_expires_at == NOW + 2 * LEASE + 3


async def test_deferred_entries_wait_for_their_time(db: Database) -> None:
    queue = Queue(db)
    await accept(db, record())
    [entry] = await queue.claim("a", 1, NOW, LEASE)
    await settle(
        db,
        Settlement(
            entry=entry,
            owner="a",
            state=QueueState.DEFERRED,
            next_attempt_at=NOW + 300,
            attempts=1,
            now=NOW,
            last_error="451 try later",
            recipients=(
                RecipientUpdate(
                    address="bob@example.org", state=RecipientStatus.DEFERRED, code=451
                ),
            ),
        ),
    )
    assert await queue.claim("a", 1, NOW + 299, LEASE) == []
    [row] = await QueueAdmin(db).list_entries(QueueFilter(), now=NOW)
    assert row.entry.next_attempt_at == NOW + 300
    [again] = await queue.claim("a", 1, NOW + 300, LEASE)
    assert (again.attempts, again.last_error) == (1, "451 try later")
    loaded = await load(queue, again)
    assert loaded is not None
    assert loaded.recipients == ("bob@example.org",)


async def test_only_the_lease_holder_settles(db: Database) -> None:
    queue = Queue(db)
    await accept(db, record())
    [entry] = await queue.claim("a", 1, NOW, LEASE)
    done = Settlement(
        entry=entry, owner="b", state=QueueState.DELIVERED, next_attempt_at=NOW, attempts=1, now=NOW
    )
    await settle(db, done)
    assert (await queue.stats()).counts == {"active": 1}
    await settle(db, replace(done, owner="a"))
    assert (await queue.stats()).counts == {"delivered": 1}


async def test_delivered_recipients_are_not_sent_again(db: Database) -> None:
    queue = Queue(db)
    txn = transaction(recipients=("a@example.org", "b@example.org", "c@example.org"))
    await accept(db, record(txn))
    [entry] = await queue.claim("w", 1, NOW, LEASE)
    await settle(
        db,
        Settlement(
            entry=entry,
            owner="w",
            state=QueueState.DEFERRED,
            next_attempt_at=NOW,
            attempts=1,
            now=NOW,
            recipients=(
                RecipientUpdate(address="a@example.org", state=RecipientStatus.DELIVERED, code=250),
                RecipientUpdate(address="b@example.org", state=RecipientStatus.DEFERRED, code=450),
                RecipientUpdate(address="c@example.org", state=RecipientStatus.FAILED, code=550),
            ),
        ),
    )
    [again] = await queue.claim("w", 1, NOW, LEASE)
    loaded = await load(queue, again)
    assert loaded is not None
    assert loaded.recipients == ("b@example.org",)


async def test_a_batch_of_settlements_is_one_statement_on_postgresql(db: Database) -> None:
    """Attempts, recipient states and entries of every settlement in the batch, each changed
    as alone (the lease holder's entries only); on PostgreSQL in one statement. An address
    listed twice is one recipient: the attempt counts once."""
    queue = Queue(db)
    twice = transaction(recipients=("a@example.org", "a@example.org", "b@example.org"))
    await accept(db, record(twice), record())
    first, second = await queue.claim("w", 2, NOW, LEASE)
    attempt = message_log.AttemptRecord(
        message_id=first.message_id,
        variant=first.variant,
        attempt=1,
        started_at=NOW,
        duration=0.25,
        transport="smtp",
        owner="w",
        outcome=AttemptOutcome.DEFERRED,
        code=450,
        text="mailbox busy\x00",
    )
    deferred = Settlement(
        entry=first,
        owner="w",
        state=QueueState.DEFERRED,
        next_attempt_at=NOW + 60,
        attempts=1,
        now=NOW,
        last_error="450 mailbox busy",
        recipients=(
            RecipientUpdate(address="a@example.org", state=RecipientStatus.DEFERRED, code=450),
            RecipientUpdate(address="a@example.org", state=RecipientStatus.DEFERRED, code=450),
            RecipientUpdate(address="b@example.org", state=RecipientStatus.DELIVERED, code=250),
        ),
        attempt=attempt,
    )
    not_ours = Settlement(
        entry=second,
        owner="x",
        state=QueueState.DELIVERED,
        next_attempt_at=NOW,
        attempts=1,
        now=NOW,
    )
    statements: list[str] = []

    def write(conn: Connection, items: Sequence[Settlement]) -> None:
        event.listen(conn, "before_cursor_execute", lambda *args: statements.append(args[2]))
        queue.settle_batch(conn, items)

    await db.write(write, [deferred, not_ours])
    if db.dialect is Dialect.POSTGRESQL:
        assert len(statements) == 1

    def read(
        conn: Connection,
    ) -> tuple[list[tuple[str, str, int]], list[str], list[tuple[str, str]]]:
        r, a, q = schema.recipients, schema.attempts, schema.queue
        recipients = conn.execute(
            select(r.c.address, r.c.state, r.c.attempts)
            .where(r.c.message_id == first.message_id)
            .order_by(r.c.position)
        )
        texts = conn.execute(select(a.c.text)).scalars()
        entries = conn.execute(select(q.c.message_id, q.c.state).order_by(q.c.id))
        return (
            [tuple(row) for row in recipients],
            list(texts),
            [tuple(row) for row in entries],
        )

    recipients, texts, entries = await db.read(read)
    assert recipients == [
        ("a@example.org", "deferred", 1),
        ("a@example.org", "deferred", 1),
        ("b@example.org", "delivered", 1),
    ]
    assert texts == ["mailbox busy\ufffd"]  # storable: NUL is refused by PostgreSQL
    assert entries == [(first.message_id, "deferred"), (second.message_id, "active")]


async def test_start_up_recovery(db: Database) -> None:
    queue = Queue(db)
    await accept(db, record(), record())
    await queue.claim("crashed", 2, NOW, LEASE)
    recovered = await queue.recover(NOW + 1)
    if db.dialect is Dialect.SQLITE:
        assert recovered == 2  # one process per file: every lease was ours
    else:
        assert recovered == 0  # other replicas may be delivering: only expired leases return
        assert await queue.recover(NOW + LEASE + 1) == 2
    assert len(await queue.claim("new", 5, NOW + LEASE + 1, LEASE)) == 2


async def test_hold_mode_entries_wait_for_release(db: Database) -> None:
    queue = Queue(db)
    await accept(db, record(hold_reason="hold mode"))
    assert await queue.claim("w", 1, NOW, LEASE) == []
    admin = QueueAdmin(db)
    [row] = await admin.list_entries(QueueFilter(states=(QueueState.HELD,)), now=NOW)
    assert row.entry.hold_kind is HoldKind.MODE
    assert row.recipients == (("bob@example.org", "held"),)
    assert await admin.release([row.entry], NOW) == 1
    [entry] = await queue.claim("w", 1, NOW, LEASE)
    loaded = await load(queue, entry)
    assert loaded is not None
    assert loaded.recipients == ("bob@example.org",)


async def test_release_faults_leaves_operator_holds(db: Database) -> None:
    queue = Queue(db)
    await accept(db, record(), record())
    admin = QueueAdmin(db)
    a, b = (row.entry for row in await admin.list_entries(QueueFilter(), now=NOW))
    await admin.hold([b], NOW)
    [claimed] = await queue.claim("w", 1, NOW, LEASE)
    assert claimed.id == a.id
    fault = Settlement(
        entry=claimed,
        owner="w",
        state=QueueState.HELD,
        next_attempt_at=NOW,
        attempts=0,
        now=NOW,
        hold_kind=HoldKind.FAULT,
        hold_reason="configuration fault: bad credentials",
    )
    await settle(db, fault)
    held = await admin.get(a.key)
    assert held is not None
    assert (held.state, held.hold_kind) == (QueueState.HELD, HoldKind.FAULT)
    assert await queue.release_faults(NOW) == 1
    assert [e.id for e in await queue.claim("w", 5, NOW, LEASE)] == [a.id]


async def test_stats(db: Database) -> None:
    queue = Queue(db)
    await accept(db, record(), record(), record(hold_reason="hold"))
    await queue.claim("w", 1, NOW, LEASE)
    stats = await queue.stats()
    assert stats.counts == {"active": 1, "queued": 1, "held": 1}
    assert all(type(state) is QueueState for state in stats.counts)
    assert stats.oldest_created_at == NOW


async def test_concurrent_claimers_never_share_an_entry(db: Database) -> None:
    queue = Queue(db)
    await accept(db, *(record() for _ in range(200)))
    claims = await asyncio.gather(*(queue.claim(f"w{i}", 7, NOW, LEASE) for i in range(40)))
    ids = [entry.id for batch in claims for entry in batch]
    assert len(ids) == 200
    assert len(set(ids)) == 200
