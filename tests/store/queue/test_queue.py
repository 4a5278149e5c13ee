"""The delivery side of the queue, on SQLite and PostgreSQL: claims, leases, settlements, recovery."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from mxrelay.store.backend import Database, Dialect
from mxrelay.store.queue import (
    HoldKind,
    Queue,
    QueueState,
    RecipientUpdate,
    Settlement,
)
from mxrelay.store.queue.admin import QueueAdmin, QueueFilter
from tests.store.helpers import T0, accept, record, transaction

NOW = T0.timestamp()
LEASE = 60.0


async def settle(db: Database, settlement: Settlement) -> None:
    await db.write(Queue(db).settle_batch, [settlement])


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
    assert not await queue.renew(entry.id, "a", NOW + LEASE + 2, LEASE)  # "a" lost it
    assert await queue.renew(entry.id, "b", NOW + LEASE + 2, LEASE)
    assert await queue.renew_many([entry], "a", NOW + LEASE + 3, LEASE) == set()
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
            recipients=(RecipientUpdate(address="bob@example.org", state="deferred", code=451),),
        ),
    )
    assert await queue.claim("a", 1, NOW + 299, LEASE) == []
    assert await queue.next_due() == NOW + 300
    [again] = await queue.claim("a", 1, NOW + 300, LEASE)
    assert (again.attempts, again.last_error) == (1, "451 try later")
    loaded = await queue.load(again)
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
                RecipientUpdate(address="a@example.org", state="delivered", code=250),
                RecipientUpdate(address="b@example.org", state="deferred", code=450),
                RecipientUpdate(address="c@example.org", state="failed", code=550),
            ),
        ),
    )
    [again] = await queue.claim("w", 1, NOW, LEASE)
    loaded = await queue.load(again)
    assert loaded is not None
    assert loaded.recipients == ("b@example.org",)


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
    assert row.entry.hold_kind == HoldKind.MODE.value
    assert row.recipients == (("bob@example.org", "held"),)
    assert await admin.release([row.entry], NOW) == 1
    [entry] = await queue.claim("w", 1, NOW, LEASE)
    loaded = await queue.load(entry)
    assert loaded is not None
    assert loaded.recipients == ("bob@example.org",)


async def test_release_faults_leaves_operator_holds(db: Database) -> None:
    queue = Queue(db)
    await accept(db, record(), record())
    admin = QueueAdmin(db)
    a, b = (row.entry for row in await admin.list_entries(QueueFilter(), now=NOW))
    await admin.hold([a], NOW, reason="bad credentials", kind=HoldKind.FAULT)
    await admin.hold([b], NOW)
    assert await queue.release_faults(NOW) == 1
    assert [e.id for e in await queue.claim("w", 5, NOW, LEASE)] == [a.id]


async def test_stats(db: Database) -> None:
    queue = Queue(db)
    await accept(db, record(), record(), record(hold_reason="hold"))
    await queue.claim("w", 1, NOW, LEASE)
    stats = await queue.stats()
    assert stats.counts == {"active": 1, "queued": 1, "held": 1}
    assert stats.oldest_created_at == NOW


async def test_concurrent_claimers_never_share_an_entry(db: Database) -> None:
    queue = Queue(db)
    await accept(db, *(record() for _ in range(200)))
    claims = await asyncio.gather(*(queue.claim(f"w{i}", 7, NOW, LEASE) for i in range(40)))
    ids = [entry.id for batch in claims for entry in batch]
    assert len(ids) == 200
    assert len(set(ids)) == 200
