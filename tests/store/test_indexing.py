"""The search index written behind the commit, on SQLite and PostgreSQL: the accepting transaction
holds no search rows, a search still finds every message committed before it began, a message
deleted meanwhile gets none, and rows a stopped relay never wrote are rebuilt at the next start."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from mxrelay.sinks.queued import StoreSink, write_accepted_unindexed
from mxrelay.store.backend import Database
from mxrelay.store.commit import GroupCommitter
from mxrelay.store.console.paging import message_page
from mxrelay.store.deletion import delete_messages
from mxrelay.store.indexing import SearchIndexer, catch_up
from mxrelay.store.listing import list_page
from mxrelay.store.search import parse_search, search_messages
from tests.store.helpers import accept, message_bytes, record, transaction

LATER = 3600.0
"""An indexer delay no test waits out: what it writes, it writes because it was asked."""


async def search_rows(db: Database) -> tuple[int, int]:
    def count(conn: Connection) -> tuple[int, int]:
        fields = conn.execute(text("SELECT count(*) FROM message_fields")).scalar_one()
        words = conn.execute(text("SELECT count(*) FROM message_search")).scalar_one()
        return int(fields), int(words)

    return await db.read(count)


async def found(db: Database, query: str) -> list[str]:
    return [m.subject for m in (await list_page(db, parse_search(query))).messages]


async def test_a_search_finds_a_message_answered_before_it_began(db: Database) -> None:
    indexer = SearchIndexer(db, delay=LATER)
    indexer.start()
    try:
        async with GroupCommitter(db) as committer:
            sink = StoreSink(committer, hostname="relay.example.net", hold=True, indexer=indexer)
            data = message_bytes(subject="Quarterly figures", body="Spreadsheet attached.")
            txn = transaction(data=data, mail_from="ann@example.net")
            reply, stored = await sink.store(txn)
            assert reply.code == 250
            assert stored is not None
        assert await search_rows(db) == (0, 0)  # committed, answered, not indexed yet
        # A page of matches without counts (`message/latest?query=`) reads the index too.
        [first] = await search_messages(db, parse_search("spreadsheet"), limit=1)
        assert first.subject == "Quarterly figures"
        assert await search_rows(db) == (1, 1)
        # So does the console's page of a search (its own reading of the index).
        async with GroupCommitter(db) as committer:
            sink = StoreSink(committer, hostname="relay.example.net", hold=True, indexer=indexer)
            txn = transaction(data=message_bytes(subject="Second", body="Ledger."))
            assert (await sink.store(txn))[0].code == 250
        page = await message_page(db, parse_search("ledger"), key=None, limit=10)
        assert [m.subject for m in page.messages] == ["Second"]
        assert await found(db, "spreadsheet") == ["Quarterly figures"]
        assert await found(db, "from:alice@example.net") == ["Second", "Quarterly figures"]
    finally:
        await indexer.close()


async def test_close_writes_what_is_pending(db: Database) -> None:
    indexer = SearchIndexer(db, delay=LATER)
    indexer.start()
    stored = record(transaction(data=message_bytes(subject="Pending")))
    await db.write(write_accepted_unindexed, [stored])
    indexer.add(stored)
    await indexer.close()
    assert await search_rows(db) == (1, 1)
    assert db.index_writer is None


async def test_a_message_deleted_before_its_index_gets_none(db: Database) -> None:
    indexer = SearchIndexer(db, delay=LATER)
    indexer.start()
    try:
        kept, gone = (record(transaction(data=message_bytes(subject=s))) for s in ("a", "b"))
        await db.write(write_accepted_unindexed, [kept, gone])
        indexer.add(kept)
        indexer.add(gone)
        await db.write(
            lambda conn: conn.execute(text("DELETE FROM messages WHERE id = :id"), {"id": gone.id})
        )
        await db.indexed()
        assert await search_rows(db) == (1, 1)
        deleted = await delete_messages(db, [kept.id], now=0.0)
        assert deleted.count == 1
        assert await search_rows(db) == (0, 0)  # its rows, written before, deleted with it
    finally:
        await indexer.close()


async def test_rows_never_written_are_rebuilt_at_the_next_start(db: Database) -> None:
    indexed = record(transaction(data=message_bytes(subject="Indexed")))
    await accept(db, indexed)  # in the accepting transaction, as before the indexer
    body = message_bytes(subject="Lost in a crash", body="Invoice 4711 overdue.")
    txn = transaction(data=body, recipients=("bob@example.org", "carol@example.com"))
    lost = record(txn)
    await db.write(write_accepted_unindexed, [lost])  # committed; the index never came
    assert await search_rows(db) == (1, 1)
    assert await catch_up(db) == 1
    assert await found(db, "overdue") == ["Lost in a crash"]
    assert await found(db, "addressed:carol@example.com") == ["Lost in a crash"]
    assert await catch_up(db) == 0


async def test_a_sink_without_an_indexer_indexes_in_the_commit(db: Database) -> None:
    async with GroupCommitter(db) as committer:
        sink = StoreSink(committer, hostname="relay.example.net", hold=True)
        reply, _ = await sink.store(transaction(data=message_bytes(subject="Inline")))
        assert reply.code == 250
    assert await search_rows(db) == (1, 1)
