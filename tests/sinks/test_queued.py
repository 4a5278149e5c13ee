"""Accepting durably: 250 only after the commit, 451 4.3.0 when the store fails, and recovery; what
the transforms did reaches the transaction log line and the record."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Connection

from mxrelay.health import Health
from mxrelay.metrics import Metrics
from mxrelay.model import Reason, RefusedRecipient, Reply
from mxrelay.sinks.queued import StoreSink, write_accepted, written_in_one_statement
from mxrelay.store import message_log, schema
from mxrelay.store.backend import Database
from mxrelay.store.commit import GroupCommitter
from mxrelay.store.ingest import NewMessage
from mxrelay.store.open import open_store
from mxrelay.store.queue import LoadedEntry, Queue
from tests.store.helpers import message_bytes, record, transaction
from tests.support.postgres import PostgresServer, build_template, clone
from tests.support.relay_app import running_relay, send_mail, transaction_lines


class Accepting:
    def __init__(self, db: Database, committer: GroupCommitter, health: Health, metrics: Metrics):
        self.db = db
        self.committer = committer
        self.health = health
        self.metrics = metrics
        self.commits = 0
        self.sink = StoreSink(committer, hostname="relay.example.net", waker=self)

    def wake(self) -> None:
        """The sink's `Waker`: told after each commit of queued mail."""
        self.commits += 1

    async def send(self) -> Reply:
        txn = transaction()
        return await self.sink.begin(txn.session, txn.mail_from, ()).finish(txn)


@pytest.fixture
async def accepting(database_url: str) -> AsyncIterator[Accepting]:
    """On SQLite and on PostgreSQL (`database_url`)."""
    health, metrics = Health(), Metrics()
    async with (
        open_store(database_url) as db,
        GroupCommitter(db, window=0.002, metrics=metrics, health=health) as committer,
    ):
        yield Accepting(db, committer, health, metrics)


async def test_250_names_the_committed_message(accepting: Accepting) -> None:
    reply = await accepting.send()
    assert (reply.code, reply.enhanced) == (250, "2.0.0")
    assert reply.text.startswith("Ok: queued as ")
    message_id = reply.text.removeprefix("Ok: queued as ")
    assert len(message_id) == 26
    view = await message_log.get_message(accepting.db, message_id)
    assert view is not None
    assert (await Queue(accepting.db).stats()).counts == {"queued": 1}
    assert accepting.commits == 1
    assert accepting.health.ready


class Dispatch:
    """A delivery worker as the sink sees it, recording what it is asked."""

    def __init__(self, *, free: bool) -> None:
        self.free = free
        self.calls: list[tuple[str, int]] = []

    def reserve(self, slots: int, size: int) -> tuple[str, float] | None:
        self.calls.append(("reserve", slots))
        return ("test", 4e9) if self.free else None

    def cancel(self, slots: int) -> None:
        self.calls.append(("cancel", slots))

    def hand_over(self, loaded: Sequence[LoadedEntry]) -> None:
        self.calls.append(("hand_over", len(loaded)))

    def wake(self) -> None:
        self.calls.append(("wake", 0))


@pytest.mark.parametrize(
    ("free", "direct", "hold", "calls", "state"),
    [
        (True, True, False, [("reserve", 1), ("hand_over", 1)], "active"),
        (False, True, False, [("reserve", 1), ("wake", 0)], "queued"),
        (True, False, False, [("wake", 0)], "queued"),  # the delivery process: woken only
        (True, True, True, [], "held"),  # hold mode delivers nothing
    ],
)
async def test_new_mail_goes_straight_to_a_free_worker_or_the_queue_wakes(
    database_url: str,
    free: bool,
    direct: bool,
    hold: bool,
    calls: list[tuple[str, int]],
    state: str,
) -> None:
    dispatch = Dispatch(free=free)
    async with (
        open_store(database_url) as db,
        GroupCommitter(db, window=0.0, metrics=Metrics(), health=Health()) as committer,
    ):
        sink = StoreSink(
            committer,
            hostname="relay.example.net",
            hold=hold,
            waker=dispatch,
            direct=dispatch if direct else None,
        )
        txn = transaction()
        assert (await sink.begin(txn.session, txn.mail_from, ()).finish(txn)).code == 250
        assert dispatch.calls == calls
        assert (await Queue(db).stats()).counts == {state: 1}


async def test_a_failed_commit_gives_the_reserved_slots_back(tmp_path: Path) -> None:
    dispatch = Dispatch(free=True)
    async with (
        open_store(f"sqlite:///{tmp_path / 'full.db'}") as db,
        GroupCommitter(db, window=0.0, metrics=Metrics(), health=Health()) as committer,
    ):
        sink = StoreSink(committer, hostname="relay.example.net", waker=dispatch, direct=dispatch)
        await db.write(_limit_pages, None)
        replies = [await sink.accept(transaction()) for _ in range(20)]
    assert replies[-1].code == 451
    assert dispatch.calls[-2:] == [("reserve", 1), ("cancel", 1)]


async def test_concurrent_sessions_share_commits(accepting: Accepting) -> None:
    replies = await asyncio.gather(*(accepting.send() for _ in range(200)))
    assert all(r.code == 250 for r in replies)
    assert len({r.text for r in replies}) == 200
    count = accepting.metrics.registry.get_sample_value("mxrelay_store_commit_batch_size_count")
    assert count is not None
    assert count < 100  # far fewer commits (and fsyncs) than messages


async def test_refusals_are_recorded_without_waiting(accepting: Accepting) -> None:
    txn = transaction()
    refused = RefusedRecipient("x@nx.example", Reply(550, "1.2", "no such domain"), Reason.NXDOMAIN)
    await accepting.sink.record_refusal(txn.session, txn.mail_from, refused)
    await accepting.send()  # committed after (or with) the refusal
    rows = await accepting.db.read(
        lambda conn: conn.execute(select(schema.refusals.c.recipient)).all()
    )
    assert [r[0] for r in rows] == ["x@nx.example"]


async def test_a_full_store_answers_451_then_recovers(tmp_path: Path) -> None:
    """SQLite's page limit stands in for a full disk (its error path is SQLITE_FULL's)."""
    health, metrics = Health(), Metrics()
    async with (
        open_store(f"sqlite:///{tmp_path / 'full.db'}") as db,
        GroupCommitter(db, window=0.0, metrics=metrics, health=health) as committer,
    ):
        await _fill_and_recover(Accepting(db, committer, health, metrics))


def _limit_pages(conn: Connection, pages: int | None) -> None:
    """The writer connection may grow to `pages` pages (None: no bigger than it is now)."""
    if pages is None:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
    conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")


async def _fill_and_recover(accepting: Accepting) -> None:
    await accepting.db.write(_limit_pages, None)
    replies = [await accepting.send() for _ in range(20)]
    assert replies[-1] == Reply(451, "3.0", "Error: queue file write error, try again later")
    assert str(replies[-1]).startswith("451 4.3.0 ")
    assert all(r.code in (250, 451) for r in replies)
    assert not accepting.health.ready
    assert "store" in accepting.health.failing()
    accepted = [r.text.removeprefix("Ok: queued as ") for r in replies if r.code == 250]
    await accepting.db.write(_limit_pages, 1073741823)
    assert (await accepting.send()).code == 250
    assert accepting.health.failing() == {}
    for message_id in accepted:  # every 250 is in the store
        assert await message_log.get_message(accepting.db, message_id) is not None


@pytest.mark.postgres
async def test_postgresql_stopped_answers_451_then_recovers() -> None:
    server = await asyncio.to_thread(PostgresServer)
    try:
        await asyncio.to_thread(server.start)
        await asyncio.to_thread(build_template, server)
        url = server.url(await asyncio.to_thread(clone, server))
        health = Health()
        async with (
            open_store(url) as db,
            GroupCommitter(db, window=0.0, health=health) as committer,
        ):
            sink = StoreSink(committer, hostname="relay.example.net")
            txn = transaction()
            assert (await sink.accept(txn)).code == 250
            await asyncio.to_thread(server.kill)
            assert (await sink.accept(txn)).code == 451
            assert not health.ready
            await asyncio.to_thread(server.start)
            replies = [await sink.accept(txn) for _ in range(3)]
            assert replies[-1].code == 250  # a dead pooled connection may fail one more commit
            assert all(r.code in (250, 451) for r in replies)
            assert health.failing() == {}
    finally:
        await asyncio.to_thread(server.close)


SIGNED_INVITATION = (
    Path(__file__).resolve().parent.parent / "data" / "ics" / "python-signed-invitation.eml"
).read_bytes()
LEFT_UNCHANGED = "calendar data under multipart/signed left unchanged"


async def test_transform_notes_reach_the_log_line_and_the_message_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An invitation under multipart/signed cannot be stripped without breaking the signature:
    the transaction log line and the stored record say so, not just "no calendar data"."""
    env = {
        "MXRELAY_DELIVERY": "hold",
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'relay.db'}",
        "MXRELAY_DNS_TRUSTED_DOMAINS": "example.org",
        "MXRELAY_ICS_STRIP": "@example.org",
    }
    caplog.set_level(logging.INFO, logger="mxrelay.smtp")
    async with running_relay(env) as relay:
        await send_mail(relay, "cal@example.net", ["a@example.org"], SIGNED_INVITATION)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.web_port}") as client:
            latest = (await client.get("/api/v1/message/latest")).json()
            path = f"/api/v1/message/{latest['ID']}/deliveries"
            deliveries = (await client.get(path)).json()
    [line] = transaction_lines(caplog.records)
    assert line["queue_id"] == latest["ID"]
    assert line["transforms"] == [f"ics strip: nothing changed; {LEFT_UNCHANGED}"]
    assert deliveries["TransformReports"] == line["transforms"]


@pytest.mark.postgres
async def test_a_message_without_tags_is_written_in_one_statement_on_postgresql(
    postgres_url: str,
) -> None:
    """What the sink tells the committer (`written_in_one_statement`) is what `write_accepted`
    does: one statement for messages without tags (so that their batch may commit as that
    statement), more for a message with tags."""
    plain = record(transaction(data=message_bytes()))
    tagged = record(transaction(data=b"X-Tags: billing\r\n" + message_bytes()))
    assert written_in_one_statement(plain)
    assert not written_in_one_statement(tagged)

    def counted(conn: Connection, items: Sequence[NewMessage]) -> int:
        sent: list[str] = []
        event.listen(conn, "before_cursor_execute", lambda *args: sent.append(args[2]))
        write_accepted(conn, items)
        return len(sent)

    async with open_store(postgres_url) as db:
        assert await db.write(counted, [plain, record()]) == 1
        assert await db.write(counted, [tagged]) > 1
        stored = await db.read(lambda c: c.execute(select(schema.messages.c.id)).scalars().all())
    assert len(stored) == 3
