"""Retention on SQLite and PostgreSQL: bodies by age and total size, metadata and refusals by age,
never anything still queued, in bounded batches."""

from __future__ import annotations

import os
from datetime import timedelta

from sqlalchemy import text

from mxrelay.metrics import Metrics
from mxrelay.model import Reason, RefusedRecipient, Reply
from mxrelay.store import message_log
from mxrelay.store.backend import Database
from mxrelay.store.retention import Pruner, RetentionPolicy
from mxrelay.store.search import count_messages, parse_search, search_messages
from tests.store.helpers import T0, accept, message_bytes, record, transaction

DAY = 86400.0
NOW = (T0 + timedelta(days=100)).timestamp()


async def mark_all_delivered(db: Database) -> None:
    await db.write(lambda conn: conn.execute(text("UPDATE queue SET state = 'delivered'")))


async def at_age(db: Database, days: float, *, body: str = "Body text.") -> str:
    rec = record(
        transaction(received_at=T0 + timedelta(days=100 - days), data=message_bytes(body=body))
    )
    await accept(db, rec)
    return rec.id


async def test_bodies_go_first_metadata_later_and_queued_mail_stays(db: Database) -> None:
    old_delivered = await at_age(db, 40, body="findme alpha")
    recent = await at_age(db, 1)
    ancient = await at_age(db, 200)
    await mark_all_delivered(db)
    still_queued = await at_age(db, 300)
    session = transaction().session
    refused = RefusedRecipient("x@nx.example", Reply(550, "1.2", "no"), Reason.NXDOMAIN)
    await db.write(
        message_log.insert_refusals,
        [
            message_log.Refusal(NOW - 200 * DAY, session, "a@example.net", refused),
            message_log.Refusal(NOW - DAY, session, "a@example.net", refused),
        ],
    )
    policy = RetentionPolicy(body_age=30 * DAY, body_max_size=0, log_age=180 * DAY, batch=2)
    metrics = Metrics()
    report = await Pruner(db, policy, metrics=metrics).run_once(NOW)
    assert (report.bodies, report.messages, report.refusals) == (2, 1, 1)
    assert report.complete
    assert await message_log.get_raw(db, old_delivered) is None
    kept = await message_log.get_message(db, old_delivered)
    assert kept is not None
    assert kept.body_pruned
    assert await message_log.get_raw(db, recent) is not None
    assert await message_log.get_message(db, ancient) is None
    assert await message_log.get_raw(db, still_queued) is not None  # queued: never pruned
    # the full-text row of a pruned body keeps subject and addresses, not the body text
    assert [m.id for m in await search_messages(db, parse_search("findme"))] == []
    assert old_delivered in [m.id for m in await search_messages(db, parse_search("Hello"))]
    # every row of a pruned message goes, its searchable fields and its count included
    fields = await db.read(lambda c: c.execute(text("SELECT message_id FROM message_fields")).all())
    assert sorted(row[0] for row in fields) == sorted([old_delivered, recent, still_queued])
    assert await count_messages(db, parse_search("")) == 3
    assert metrics.store_pruned.labels(kind="bodies")._value.get() == 2


async def test_size_cap_holds_under_load(db: Database) -> None:
    filler = os.urandom(3000).hex()  # incompressible enough to make every body count
    records = [
        record(
            transaction(
                received_at=T0 + timedelta(seconds=i), data=message_bytes(body=filler + str(i))
            )
        )
        for i in range(600)
    ]
    for start in range(0, len(records), 100):
        await accept(db, *records[start : start + 100])
    await mark_all_delivered(db)
    cap = 200 * len(records[0].compressed)
    policy = RetentionPolicy(body_age=365 * DAY, body_max_size=cap, log_age=365 * DAY, batch=50)
    report = await Pruner(db, policy).run_once(NOW)
    assert report.body_bytes <= cap
    assert report.bodies >= 390
    # the oldest bodies went first
    assert await message_log.get_raw(db, records[0].id) is None
    assert await message_log.get_raw(db, records[-1].id) is not None


async def test_a_run_stops_at_its_batch_budget_and_the_next_continues(db: Database) -> None:
    for _ in range(5):
        await at_age(db, 400)
    await mark_all_delivered(db)
    policy = RetentionPolicy(body_age=DAY, body_max_size=0, log_age=180 * DAY, batch=1)
    first = await Pruner(db, policy, max_batches=3).run_once(NOW)
    assert not first.complete
    second = await Pruner(db, policy, max_batches=100).run_once(NOW)
    assert second.complete
    assert first.messages + second.messages == 5
