"""Every search filter compiled to SQL and run on real rows, on SQLite and on PostgreSQL: what it
finds, what its negation finds, and that values are data (wildcards, quotes, SQL) whatever they
hold."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import text

from mxrelay.model import Reason, RefusedRecipient, Reply
from mxrelay.store import listing
from mxrelay.store.backend import Database
from mxrelay.store.listing import list_page
from mxrelay.store.search import Filter, SearchQuery, Term, parse_search
from mxrelay.store.search_sql import id_bound
from tests.store.helpers import T0, accept, record, transaction

INVOICE = (
    b"From: Billing Team <billing@example.org>\r\n"
    b"To: Alex Smith <alex@example.net>\r\n"
    b"Cc: Carol <carol@example.com>\r\n"
    b"Reply-To: help-desk@example.org\r\n"
    b"Subject: Invoice 42 for March\r\n"
    b"Message-ID: <inv-42@billing.example.org>\r\n"
    b"X-Tags: Invoices, Urgent\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nYour invoice is attached, thanks.\r\n"
    b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=inv.pdf\r\n"
    b"\r\n" + b"JVBERi0xLjQK" * 400 + b"\r\n--b--\r\n"
)
REPORT = (
    b"From: reports@example.org\r\nTo: team@example.net\r\nSubject: Weekly report\r\n"
    b"Message-ID: <weekly-7@example.org>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/related; boundary="r"\r\n\r\n'
    b"--r\r\nContent-Type: text/html\r\n\r\n<p>Numbers are <b>up</b>.</p>\r\n"
    b"--r\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=chart.png\r\n"
    b"Content-ID: <chart>\r\n\r\niVBORw0KGgo=\r\n--r--\r\n"
)
PLAIN = (
    b"From: Alice <a_b@example.net>\r\nTo: bob@example.org\r\nSubject: Hello 100% sure\r\n"
    b"Message-ID: <hello@example.net>\r\n\r\nJust saying hello.\r\n"
)


@pytest.fixture
async def corpus(db: Database) -> dict[str, str]:
    refused = RefusedRecipient(
        "nobody@nx.example", Reply(550, "1.2", "no such domain"), Reason.NXDOMAIN
    )
    invoice = record(
        transaction(data=INVOICE, recipients=("alex@example.net", "hidden@example.org"))
    )
    report = record(
        replace(
            transaction(
                data=REPORT, recipients=("team@example.net",), received_at=T0 + timedelta(days=1)
            ),
            refused=(refused,),
        )
    )
    plain = record(
        transaction(
            data=PLAIN,
            mail_from="bounce+x@example.net",
            recipients=("bob@example.org",),
            received_at=T0 + timedelta(days=2),
        )
    )
    await accept(db, invoice, report, plain)

    def states(conn: object) -> None:
        conn.execute(  # type: ignore[attr-defined]
            text("UPDATE recipients SET state = 'failed' WHERE address = 'team@example.net'")
        )
        conn.execute(  # type: ignore[attr-defined]
            text("UPDATE recipients SET state = 'delivered' WHERE address = 'bob@example.org'")
        )
        conn.execute(text("UPDATE messages SET seen = true WHERE id = :id"), {"id": plain.id})  # type: ignore[attr-defined]
        conn.execute(  # type: ignore[attr-defined]
            text(
                "INSERT INTO attempts (message_id, variant, attempt, started_at, duration, "
                "transport, owner, outcome, recipients) VALUES "
                "(:id, 0, 1, 0, 0.1, 'graph', 'test', 'delivered', '[]')"
            ),
            {"id": plain.id},
        )

    await db.write(states)
    return {"invoice": invoice.id, "report": report.id, "plain": plain.id}


CASES = [
    ("", ["plain", "report", "invoice"]),
    ("invoice", ["invoice"]),
    ("invoic", ["invoice"]),
    ("INVOICE", ["invoice"]),
    ("inv", ["invoice"]),
    ('"your invoice"', ["invoice"]),
    ('"invoice your"', []),
    ("-invoice", ["plain", "report"]),
    ("invoice report", []),
    ("-invoice -report", ["plain"]),
    ("numbers", ["report"]),  # HTML body, tags stripped
    ("inv.pdf", ["invoice"]),  # attachment file names are searched
    ("from:billing", ["invoice"]),
    ("from:team", ["invoice"]),  # the display name
    ("-from:billing", ["plain", "report"]),
    ("to:alex", ["invoice"]),
    ("to:smith", ["invoice"]),
    ("to:hidden", []),
    ("bcc:hidden", ["invoice"]),  # an envelope recipient no field names
    ("cc:carol", ["invoice"]),
    ("reply-to:help-desk", ["invoice"]),
    ("addressed:hidden@example", ["invoice"]),
    ("addressed:bounce+x", ["plain"]),  # the envelope sender
    ("addressed:example", ["plain", "report", "invoice"]),
    ("-addressed:example.com", ["plain", "report"]),
    ("addressed:a_b", ["plain"]),
    ("addressed:a%b", []),
    ("addressed:ab", []),  # short: scanned, not served by trigrams
    ("addressed:ob", ["plain"]),
    ("subject:MARCH", ["invoice"]),
    ("subject:100%", ["plain"]),
    ("subject:10_%", []),
    ("subject:for", ["invoice"]),
    ("message-id:weekly-7", ["report"]),
    ("message-id:@example", ["plain", "report"]),
    ("tag:urgent", ["invoice"]),
    ("tag:URGENT", ["invoice"]),
    ("-tag:invoices", ["plain", "report"]),
    ("tag:missing", []),
    ("is:tagged", ["invoice"]),
    ("-is:tagged", ["plain", "report"]),
    ("is:read", ["plain"]),
    ("is:unread", ["report", "invoice"]),
    ("-is:read", ["report", "invoice"]),
    ("has:attachment", ["invoice"]),
    ("-has:attachments", ["plain", "report"]),
    ("has:inline", ["report"]),
    ("larger:2k", ["invoice"]),
    # beyond what `messages.size` holds (32 bits on PostgreSQL): every message is smaller
    ("larger:2048M", []),
    ("larger:2147483648", []),
    ("-larger:2147483648", ["plain", "report", "invoice"]),
    ("smaller:3000MB", ["plain", "report", "invoice"]),
    ("-smaller:3000MB", []),  # Mailpit's `Size > ?`
    ("smaller:2k", ["plain", "report"]),
    ("-larger:2k", ["plain", "report"]),
    ("after:2026-01-06", ["plain", "report"]),
    ("before:2026-01-06", ["invoice"]),
    ("-after:2026-01-06", ["invoice"]),
    ("after:2026-01-06 before:2026-01-06T23:59:59", ["report"]),
    ("status:failed", ["report"]),
    ("status:queued", ["invoice"]),
    ("status:delivered", ["plain"]),
    ("-status:queued", ["plain", "report"]),
    ("status:nonsense", []),
    ("-status:nonsense", ["plain", "report", "invoice"]),
    ("refused:nx.example", ["report"]),
    ("refused:nobody@", ["report"]),
    ("transport:graph", ["plain"]),
    ("transport:smtp", []),
    ("-transport:graph", ["report", "invoice"]),
    ("from:billing has:attachment is:unread larger:1k tag:invoices", ["invoice"]),
    ("'; DROP TABLE messages; --", []),
    ('addressed:"\' OR 1=1 --"', []),
    ("subject:%", ["plain"]),
]


@pytest.mark.parametrize(("query", "names"), CASES, ids=[q or "(everything)" for q, _ in CASES])
async def test_filters(db: Database, corpus: dict[str, str], query: str, names: list[str]) -> None:
    page = await list_page(db, parse_search(query))
    assert [m.id for m in page.messages] == [corpus[n] for n in names]
    assert page.matching.total == len(names)
    assert page.matching.unread == len([n for n in names if n != "plain"])
    assert (page.mailbox.total, page.mailbox.unread) == (3, 2)


async def test_before_is_a_key_range(db: Database, corpus: dict[str, str]) -> None:
    cut = (T0 + timedelta(days=1)).timestamp()
    page = await list_page(db, parse_search("example"), before=cut + 0.001)
    assert [m.id for m in page.messages] == [corpus["report"], corpus["invoice"]]
    assert page.matching.total == 2
    page = await list_page(db, parse_search("example"), before=cut)
    assert [m.id for m in page.messages] == [corpus["invoice"]]
    everything = await list_page(db, before=cut)
    assert [m.id for m in everything.messages] == [corpus["invoice"]]
    assert everything.matching.total == 3  # Mailpit's list counts the mailbox, `before` or not
    assert id_bound(cut) < corpus["report"] < id_bound(cut + 0.001)


async def test_paging(db: Database, corpus: dict[str, str]) -> None:
    pages = [await list_page(db, start=n, limit=1) for n in range(4)]
    assert [[m.id for m in p.messages] for p in pages] == [
        [corpus["plain"]],
        [corpus["report"]],
        [corpus["invoice"]],
        [],
    ]
    assert {p.matching.total for p in pages} == {3}


@pytest.mark.parametrize("query", ["status:queued", "example", "addressed:example", "is:unread"])
async def test_every_way_of_paging_agrees(
    db: Database, corpus: dict[str, str], query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-term search is paged from its index (`_from_source`); the general way gives the
    same pages and counts (here forced by a source limit too small for any search)."""
    cut = (T0 + timedelta(days=2)).timestamp()

    async def pages() -> list[tuple[list[str], int, int]]:
        found = []
        for start, before in ((0, None), (1, None), (0, cut), (5, None)):
            page = await list_page(db, parse_search(query), start=start, limit=1, before=before)
            found.append(([m.id for m in page.messages], page.matching.total, page.matching.unread))
        return found

    direct = await pages()
    monkeypatch.setattr(listing, "SOURCE_LIMIT", 0)  # a source with more ids than this
    assert await pages() == direct
    monkeypatch.setattr(listing, "single_source", lambda *args: None)  # no source at all
    assert await pages() == direct
    assert direct[0][0]  # something is found


@pytest.mark.parametrize(
    "kind", [Filter.FROM, Filter.ADDRESSED, Filter.SUBJECT, Filter.MESSAGE_ID, Filter.TAG]
)
async def test_a_value_with_a_nul_matches_nothing(
    db: Database, corpus: dict[str, str], kind: Filter
) -> None:
    """No stored text holds a NUL (`bulk.storable`), and neither FTS5 (`unterminated string`)
    nor PostgreSQL (`invalid byte sequence`) takes one: such a value is not looked up."""
    for value in ("example\x00", "\x00\x00\x00", "a\x00"):
        found = await list_page(db, SearchQuery((Term(kind, value),)))
        assert (found.messages, found.matching.total) == ((), 0)
        others = await list_page(db, SearchQuery((Term(kind, value, negated=True),)))
        assert others.matching.total == len(corpus)
