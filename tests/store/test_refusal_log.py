"""The refused-recipient log read back: search by address, domain (the part after the last `@`),
reason and time, newest first and paged; domain counts over a span, largest first."""

from __future__ import annotations

from mxrelay.model import Peer, Reason, RefusedRecipient, Reply, SessionInfo
from mxrelay.store.backend import Database
from mxrelay.store.message_log import Refusal, insert_refusals
from mxrelay.store.refusal_log import RefusalQuery, domain_counts, search_refusals

SESSION = SessionInfo(Peer("192.0.2.7", 40000), helo="app.example.net", esmtp=True)
REFUSED = [
    ("a@nope.example.net", Reason.NXDOMAIN, 100.0),
    ("b@NOPE.example.net", Reason.NXDOMAIN, 200.0),
    ('"x@y"@null.example.org', Reason.NULL_MX, 300.0),
    ("c%d_e@policy.example.org", Reason.POLICY, 400.0),
    ("z@nope.example.net.evil.example", Reason.NXDOMAIN, 500.0),
]


async def fill(db: Database) -> None:
    rows = [
        Refusal(
            at,
            SESSION,
            "app@example.org",
            RefusedRecipient(address, Reply(550, "1.2", "no"), reason),
        )
        for address, reason, at in REFUSED
    ]
    await db.write(insert_refusals, rows)


async def found(db: Database, query: RefusalQuery, **paging: int) -> list[str]:
    return [r.recipient for r in await search_refusals(db, query, **paging)]


async def test_search_filters(db: Database) -> None:
    await fill(db)
    assert await found(db, RefusalQuery()) == [a for a, _, _ in reversed(REFUSED)]
    assert await found(db, RefusalQuery(domain="nope.example.net")) == [
        "b@NOPE.example.net",
        "a@nope.example.net",
    ]
    assert await found(db, RefusalQuery(domain="@y")) == []  # the last `@` decides
    assert await found(db, RefusalQuery(address="%d_")) == ["c%d_e@policy.example.org"]
    assert await found(db, RefusalQuery(address="_")) == ["c%d_e@policy.example.org"]
    assert await found(db, RefusalQuery(reason="nullmx")) == ['"x@y"@null.example.org']
    assert await found(db, RefusalQuery(since=200.0, until=400.0)) == [
        '"x@y"@null.example.org',
        "b@NOPE.example.net",
    ]
    assert await found(db, RefusalQuery(), limit=2, start=1) == [
        "c%d_e@policy.example.org",
        '"x@y"@null.example.org',
    ]


async def test_domain_counts(db: Database) -> None:
    await fill(db)
    total, counts = await domain_counts(db, since=0.0, until=1000.0)
    assert total == len(REFUSED)
    assert [(c.domain, c.count, c.last) for c in counts] == [
        ("nope.example.net", 2, 200.0),
        ("nope.example.net.evil.example", 1, 500.0),
        ("null.example.org", 1, 300.0),
        ("policy.example.org", 1, 400.0),
    ]
    total, counts = await domain_counts(db, since=250.0, until=1000.0, limit=1)
    assert total == 3
    assert [c.domain for c in counts] == ["nope.example.net.evil.example"]
