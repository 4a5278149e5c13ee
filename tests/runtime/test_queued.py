"""The queued stage: what delivers as the plan says (a worker here, the delivery process, or
nothing in hold mode), the transport built for it, a store that cannot open; and the calendar
transform in the store's variant seam, on SQLite and PostgreSQL: variants planned at accept time,
rebuilt at each attempt, delivered to a real SMTP server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path

import pytest

from mxrelay.config import Settings, load_settings
from mxrelay.delivery.graph import GraphTransport
from mxrelay.delivery.retry import RetryPolicy
from mxrelay.delivery.smarthost import SmarthostTransport
from mxrelay.delivery.worker import DeliveryWorker
from mxrelay.health import Health
from mxrelay.metrics import Metrics
from mxrelay.mime.pipeline import UnknownTransform
from mxrelay.model import QueueState, utc_now
from mxrelay.runtime.plan import StartupError, plan_stages
from mxrelay.runtime.queued import QueueStage, open_queue_stage, queue_transport
from mxrelay.runtime.transforms import ics_policy, store_variants
from mxrelay.runtime.worker import smarthost_transport
from mxrelay.sinks.queued import StoreSink
from mxrelay.store import message_log
from mxrelay.store.changes import ChangeKind
from mxrelay.store.commit import GroupCommitter
from mxrelay.store.feed import EventFeed
from mxrelay.store.listing import list_page
from mxrelay.store.open import open_store
from mxrelay.store.queue import Queue
from mxrelay.store.search import parse_search
from mxrelay.upstream.pool import UpstreamPool
from tests.store.helpers import accept, record, transaction
from tests.support import smarthost as smarthost_support
from tests.support.polling import until
from tests.support.smarthost import Smarthost

smarthost = smarthost_support.smarthost

GRAPH = {
    "MXRELAY_DELIVERY": "graph",
    "MXRELAY_GRAPH_TENANT_ID": "tenant",
    "MXRELAY_GRAPH_CLIENT_ID": "client",
    "MXRELAY_GRAPH_CLIENT_SECRET": "secret",
}

INVITATION = (
    b"From: calendar@example.net\r\nTo: a@example.org, b@example.org\r\nSubject: Meeting\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
    b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYou are invited.\r\n"
    b"--alt\r\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\r\n"
    b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:1@example.net\r\n"
    b"SUMMARY:Meeting\r\nDTSTART:20260302T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    b"--alt--\r\n"
)


@pytest.fixture
async def pool(smarthost: Smarthost) -> AsyncIterator[UpstreamPool]:
    settings = load_settings({"MXRELAY_UPSTREAM": smarthost.url})
    upstream = UpstreamPool(
        settings.upstream, local_hostname="relay.example.net", metrics=Metrics()
    )
    yield upstream
    await upstream.aclose()


async def test_store_variants_are_stored_and_delivered(
    database_url: str, smarthost: Smarthost, pool: UpstreamPool
) -> None:
    settings = load_settings({"MXRELAY_ICS_STRIP": "a@example.org"})
    metrics = Metrics()
    plan, render = store_variants(ics_policy(settings.mime), metrics)
    async with open_store(database_url) as db, GroupCommitter(db, window=0.0) as committer:
        queue = Queue(db)
        sink = StoreSink(committer, hostname="relay.example.net", plan=plan, render=render)
        txn = transaction(recipients=("a@example.org", "b@example.org"), data=INVITATION)
        reply = await sink.accept(txn)
        assert reply.code == 250
        message_id = reply.text.rsplit(" ", 1)[1]
        view = await message_log.get_message(db, message_id)
        assert view is not None
        assert view.transforms == ("ics:strip",)
        assert {(r.variant, r.address) for r in view.recipients} == {
            (0, "a@example.org"),
            (1, "b@example.org"),
        }
        worker = DeliveryWorker(
            queue,
            SmarthostTransport(pool),
            committer,
            RetryPolicy(),
            owner="test",
            render=render,
            poll_interval=0.05,
        )
        sink.waker = worker
        await worker.start()
        try:
            received = await smarthost.wait_for(2)
        finally:
            await worker.stop(5.0)
    by_recipient = {m.recipients: m.data for m in received}
    stripped = by_recipient[("a@example.org",)]
    original = by_recipient[("b@example.org",)]
    assert b"BEGIN:VCALENDAR" not in stripped
    assert b"You are invited." in stripped
    assert original.endswith(INVITATION)  # the other recipient gets the bytes as received


def test_store_variants_rebuild_what_they_planned_and_refuse_unknown_names() -> None:
    settings = load_settings({"MXRELAY_ICS_STRIP": "a@example.org"})
    plan, render = store_variants(ics_policy(settings.mime), None)
    stripped, whole = plan(INVITATION, ("a@example.org", "b@example.org"))
    assert (stripped.transforms, whole.transforms) == (("ics:strip",), ())
    assert b"text/calendar" not in render(INVITATION, stripped.transforms)
    assert render(INVITATION, whole.transforms) == INVITATION
    with pytest.raises(UnknownTransform, match="ics:rot13"):
        render(INVITATION, ("ics:rot13",))


def settings_for(database_url: str, **extra: str) -> Settings:
    environ = {"MXRELAY_DATABASE_URL": database_url, "MXRELAY_STORE_COMMIT_WINDOW": "0s", **extra}
    return load_settings(environ, hostname=lambda: "relay.example.net")


@pytest.mark.parametrize(
    ("environ", "built"),
    [
        ({"MXRELAY_DELIVERY": "hold"}, None),
        ({"MXRELAY_DELIVERY": "smtp", "MXRELAY_UPSTREAM": "smtp://127.0.0.1:2525"}, None),
        (
            {
                "MXRELAY_DELIVERY": "smtp",
                "MXRELAY_UPSTREAM": "smtp://127.0.0.1:2525",
                "MXRELAY_DELIVERY_PROCESS": "false",
            },
            SmarthostTransport,
        ),
        (GRAPH, GraphTransport),
    ],
)
async def test_the_transport_is_built_where_delivery_runs(
    environ: Mapping[str, str], built: type | None
) -> None:
    """In this process only: the delivery process builds its own, hold delivers nothing."""
    settings = load_settings(environ, hostname=lambda: "relay.example.net")
    transport = queue_transport(
        plan_stages(settings), settings, {}, metrics=Metrics(), health=Health()
    )
    try:
        assert type(transport) is built if built is not None else transport is None
    finally:
        if transport is not None:
            await transport.aclose()


def test_a_proxy_graph_cannot_use_stops_the_start() -> None:
    settings = load_settings(GRAPH, hostname=lambda: "relay.example.net")
    with pytest.raises(StartupError, match="socks5:// proxies are not supported"):
        queue_transport(
            plan_stages(settings),
            settings,
            {"HTTPS_PROXY": "socks5://127.0.0.1:1080"},
            metrics=Metrics(),
            health=Health(),
        )


async def test_hold_mode_stores_new_mail_held_and_delivers_nothing(database_url: str) -> None:
    health = Health()
    stage = QueueStage(
        settings_for(database_url, MXRELAY_DELIVERY="hold"),
        metrics=Metrics(),
        health=health,
        transport=None,
    )
    await stage.start()
    try:
        assert (stage.worker, stage.delivery) == (None, None)
        assert health.snapshot()["store"].ok
        reply = await stage.sink.accept(transaction())
        assert reply.code == 250
        assert stage.queue is not None
        assert (await stage.queue.stats()).counts.get(QueueState.HELD) == 1
    finally:
        await stage.aclose(5.0)


async def test_a_worker_in_this_process_takes_new_mail_straight_from_the_sink(
    tmp_path: Path, smarthost: Smarthost
) -> None:
    settings = settings_for(
        f"sqlite:///{tmp_path / 'relay.db'}",
        MXRELAY_DELIVERY="smtp",
        MXRELAY_UPSTREAM=smarthost.url,
        MXRELAY_DELIVERY_PROCESS="false",
    )
    plan = plan_stages(settings)
    stage = await open_queue_stage(plan, settings, {}, metrics=Metrics(), health=Health())
    try:
        assert stage.delivery is None
        assert stage.worker is not None
        assert stage.sink.direct is stage.worker
        assert (await stage.sink.accept(transaction())).code == 250
        [received] = await smarthost.wait_for(1)
        assert received.recipients == ("bob@example.org",)
    finally:
        await stage.aclose(5.0)


async def test_the_delivery_process_is_handed_new_mail(
    database_url: str, smarthost: Smarthost
) -> None:
    """On either store the sink hands new mail to the delivery process, which it also wakes
    for mail it must claim."""
    settings = settings_for(
        database_url,
        MXRELAY_DELIVERY="smtp",
        MXRELAY_UPSTREAM=smarthost.url,
        MXRELAY_DNS_TRUSTED_DOMAINS="example.org",
    )
    plan = plan_stages(settings)
    stage = await open_queue_stage(plan, settings, {}, metrics=Metrics(), health=Health())
    try:
        assert stage.delivery is not None
        assert stage.sink.direct is stage.delivery
        assert stage.sink.waker is stage.delivery
        assert (await stage.sink.accept(transaction())).code == 250
        [received] = await smarthost.wait_for(1, within=30)  # either way it is delivered
        assert received.recipients == ("bob@example.org",)
    finally:
        await stage.aclose(5.0)


async def test_a_store_that_cannot_open_stops_the_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings = settings_for(f"sqlite:///{blocker / 'relay.db'}", MXRELAY_DELIVERY="hold")
    health = Health()
    with pytest.raises(StartupError):
        await open_queue_stage(
            plan_stages(settings), settings, {}, metrics=Metrics(), health=health
        )


async def test_a_pruning_run_that_pruned_messages_announces_it(
    tmp_path: Path, smarthost: Smarthost
) -> None:
    now = [utc_now()]
    settings = settings_for(
        f"sqlite:///{tmp_path / 'relay.db'}",
        MXRELAY_DELIVERY="smtp",
        MXRELAY_UPSTREAM=smarthost.url,
        MXRELAY_DELIVERY_PROCESS="false",
        MXRELAY_STORE_PRUNE_INTERVAL="1s",
    )
    metrics = Metrics()
    stage = QueueStage(
        settings,
        metrics=metrics,
        health=Health(),
        transport=smarthost_transport(settings, metrics),
        clock=lambda: now[0],
    )
    await stage.start()
    try:
        # Received now: only the clock's leap below makes it old enough to prune (received at
        # the helpers' T0, it could be pruned the moment it was delivered, before it was seen).
        assert (await stage.sink.accept(transaction(received_at=now[0]))).code == 250
        await smarthost.wait_for(1)
        assert stage.db is not None
        feed = EventFeed(stage.db)
        await feed.start()
        await until(lambda: _delivered(stage), what="the message delivered", within=60)
        now[0] += timedelta(days=400)  # past MXRELAY_STORE_LOG_RETENTION

        async def announced() -> bool | None:
            changes = (await feed.poll()).changes
            return True if any(c.kind is ChangeKind.PRUNE for c in changes) else None

        await until(announced, what="a prune change", within=60)
    finally:
        await stage.aclose(5.0)


async def _delivered(stage: QueueStage) -> bool | None:
    assert stage.queue is not None
    return True if (await stage.queue.stats()).counts.get(QueueState.DELIVERED) else None


async def test_rows_stored_before_the_message_list_are_filled_in_the_background(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    async with open_store(url) as db:
        raw = (
            b"From: Ann <ann@example.net>\r\nTo: Bob <bob@example.org>\r\nSubject: old\r\n\r\nx\r\n"
        )
        await accept(db, record(transaction(data=raw)))
        await db.write(lambda conn: conn.exec_driver_sql("UPDATE messages SET addresses = NULL"))
        await db.write(lambda conn: conn.exec_driver_sql("DELETE FROM message_fields"))
    settings = settings_for(url, MXRELAY_DELIVERY="hold")
    stage = await open_queue_stage(
        plan_stages(settings), settings, {}, metrics=Metrics(), health=Health()
    )
    try:
        assert stage.db is not None
        database = stage.db

        async def filled() -> bool:
            page = await list_page(database, parse_search("from:ann"))
            return bool(page.messages) and page.messages[0].addresses.to == (
                ("Bob", "bob@example.org"),
            )

        await until(filled, what="the older row filled in by the backfill")
    finally:
        await stage.aclose(5.0)
