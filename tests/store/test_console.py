"""The console's reads on SQLite and PostgreSQL: keyset pages that neither skip nor repeat a
message (ties on the received time included), what a page shows of its messages and when it
need not be read again, the refusals of a message's transaction, the refusal log and its
per-domain counts, the activity buckets, and the pacing lanes as the queue page reads them."""

from __future__ import annotations

import json
from datetime import timedelta

from mxrelay.model import Peer, Reason, RefusedRecipient, Reply, SessionInfo
from mxrelay.store import flags, message_log, tags
from mxrelay.store.backend import Database
from mxrelay.store.changes import ChangeKind, announce
from mxrelay.store.console import (
    PageKey,
    activity,
    lane_views,
    log_version,
    message_extras,
    message_page,
    refusal_page,
    refusals_by_domain,
)
from mxrelay.store.search import SearchQuery, parse_search, search_messages
from tests.store.helpers import T0, accept, message_bytes, record, transaction

SESSION = SessionInfo(Peer("127.0.0.1", 40000), helo="app.example.net", esmtp=True)


async def fill(db: Database, count: int, *, ties: int = 3) -> list[str]:
    """`count` messages, `ties` of them at each received time; their ids, newest first."""
    records = [
        record(
            transaction(
                received_at=T0 + timedelta(seconds=n // ties),
                data=message_bytes(subject=f"number {n}", body="even" if n % 2 else "odd"),
            )
        )
        for n in range(count)
    ]
    await accept(db, *records)
    ordered = sorted(records, key=lambda r: (r.received_at, r.id), reverse=True)
    return [r.id for r in ordered]


async def walk(db: Database, query: SearchQuery, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    key: PageKey | None = None
    while True:
        page = await message_page(db, query, key=key, limit=limit)
        pages.append([m.id for m in page.messages])
        if page.next_key is None:
            return pages
        key = PageKey.parse(page.next_key.token())
        assert key == page.next_key


async def test_pages_cover_every_message_once_in_order(db: Database) -> None:
    ids = await fill(db, 23, ties=4)
    for limit in (1, 2, 3, 5, 7, 50):
        pages = await walk(db, SearchQuery(), limit)
        assert [i for page in pages for i in page] == ids, limit
        assert all(len(page) == limit for page in pages[:-1])


async def test_pages_of_a_search(db: Database) -> None:
    await fill(db, 17, ties=5)
    query = parse_search("even")
    found = [i for page in await walk(db, query, 2) for i in page]
    expected = [m.id for m in await search_messages(db, query, limit=1000)]
    assert found == expected
    assert len(found) == 8


def test_a_page_token_is_checked() -> None:
    assert PageKey.parse("01KC0Z1WQ3M8T9H6D5N4B3X2YA") == PageKey("01KC0Z1WQ3M8T9H6D5N4B3X2YA")
    for bad in ("", "1767614400.5_3", "x" * 27, "01KC0Z'--", "01KC 0Z", "../x"):
        assert PageKey.parse(bad) is None, bad


async def test_a_page_shows_states_and_transforms_and_its_version(
    db: Database,
) -> None:
    rec = record(transaction(recipients=("a@example.org", "b@example.org")))
    held = record(transaction(), hold_reason="hold mode")
    await accept(db, rec, held)
    page = await message_page(db, SearchQuery(), key=None, limit=10)
    by_id = {m.id: m for m in page.messages}
    assert by_id[rec.id].states == (("queued", 2),)
    assert by_id[held.id].states == (("held", 1),)
    assert by_id[rec.id].transforms == ()
    assert (by_id[rec.id].seen, page.total) == (False, 2)
    assert await log_version(db) == page.version
    # Marking a message read is a change of the log's version (announced in the outbox).
    await flags.mark(db, [rec.id], True)
    await announce(db, ChangeKind.UPDATE, {"ID": rec.id, "Read": True})
    assert await log_version(db) != page.version
    again = await message_page(db, SearchQuery(), key=None, limit=10)
    assert {m.id: m.seen for m in again.messages}[rec.id] is True
    searched = await message_page(db, parse_search("odd"), key=None, limit=10)
    assert searched.total is None


async def test_a_page_shows_each_messages_tags(db: Database) -> None:
    tagged, plain = record(transaction()), record(transaction())
    await accept(db, tagged, plain)
    await tags.set_tags(db, [tagged.id], ["urgent", "Billing"])
    page = await message_page(db, SearchQuery(), key=None, limit=10)
    assert {m.id: m.tags for m in page.messages} == {
        tagged.id: ("Billing", "urgent"),
        plain.id: (),
    }


async def test_the_refusals_of_a_messages_transaction(db: Database) -> None:
    def refusal(at: float, address: str, sender: str = "alice@example.net") -> message_log.Refusal:
        reply = Reply(550, "1.2", f"{address} refused")
        return message_log.Refusal(
            at, SESSION, sender, RefusedRecipient(address, reply, Reason.NXDOMAIN)
        )

    first = record(transaction(received_at=T0))
    second = record(transaction(received_at=T0 + timedelta(seconds=60)))
    await accept(db, first, second)
    start = T0.timestamp()
    await db.write(
        message_log.insert_refusals,
        [
            refusal(start - 1, "before-first@nowhere.example"),
            refusal(start + 30, "before-second@nowhere.example"),
            refusal(start + 40, "other-sender@nowhere.example", sender="bob@example.net"),
            refusal(start + 90, "after@nowhere.example"),
        ],
    )
    one = await message_extras(db, first.id)
    two = await message_extras(db, second.id)
    assert one is not None
    assert two is not None
    assert [r.recipient for r in one.refused] == ["before-first@nowhere.example"]
    assert [r.recipient for r in two.refused] == ["before-second@nowhere.example"]
    assert [(e.variant, e.state) for e in one.entries] == [(0, "queued")]
    assert one.variants[0].transforms == ()
    assert one.client_port == 40000
    assert await message_extras(db, "unknown") is None

    log = await refusal_page(db, limit=2)
    assert [r.recipient for r in log.refusals] == [
        "after@nowhere.example",
        "other-sender@nowhere.example",
    ]
    assert log.next_before is not None
    rest = await refusal_page(db, before=log.next_before, limit=5)
    assert [r.recipient for r in rest.refusals] == [
        "before-second@nowhere.example",
        "before-first@nowhere.example",
    ]
    assert rest.next_before is None
    found = await refusal_page(db, contains="OTHER-sender")
    assert [r.recipient for r in found.refusals] == ["other-sender@nowhere.example"]
    domains = await refusals_by_domain(db, since=start)
    assert [(d.domain, d.refusals, d.reasons) for d in domains] == [
        ("nowhere.example", 3, (("nxdomain", 3),))
    ]


async def test_activity_buckets(db: Database) -> None:
    await accept(
        db, *(record(transaction(received_at=T0 + timedelta(minutes=m))) for m in (0, 1, 7))
    )
    start = T0.timestamp()
    series = await activity(db, end=start + 900, width=300, buckets=3)
    assert series.start == start
    assert series.accepted == (2, 1, 0)
    assert series.refused == (0, 0, 0)
    assert series.delivered == (0, 0, 0)


def test_lane_views_read_what_they_understand() -> None:
    lanes = lane_views(
        {
            "": json.dumps(
                {"leases": [["t1", "a@x", 1, 2, 3, 1, 1], ["t2", "a@x", 1, 2, 3, 1, 1]]}
            ),
            "a@x": json.dumps({"sent": [[1.0, 2.0], [3, 4]], "blocked_until": 99.5}),
            "b@x": "not json",
        }
    )
    assert [(v.lane, v.blocked_until, v.recent, v.in_flight) for v in lanes] == [
        ("a@x", 99.5, {"sent": 7}, 2),
        ("b@x", None, {}, 0),
    ]
