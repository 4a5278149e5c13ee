"""The queued stage with the calendar transform in the store's variant seam, on SQLite and
PostgreSQL: variants planned at accept time, rebuilt at each attempt, delivered to a real SMTP
server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mxrelay.config import load_settings
from mxrelay.delivery.retry import RetryPolicy
from mxrelay.delivery.smarthost import SmarthostTransport
from mxrelay.delivery.worker import DeliveryWorker
from mxrelay.metrics import Metrics
from mxrelay.mime.pipeline import IcsPolicy, UnknownTransform
from mxrelay.runtime.queued import calendar_variants
from mxrelay.sinks.queued import StoreSink
from mxrelay.store import message_log
from mxrelay.store.commit import GroupCommitter
from mxrelay.store.open import open_store
from mxrelay.store.queue import Queue
from mxrelay.upstream.pool import UpstreamPool
from tests.store.helpers import transaction
from tests.support import smarthost as smarthost_support
from tests.support.smarthost import Smarthost

smarthost = smarthost_support.smarthost

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


async def test_calendar_variants_are_stored_and_delivered(
    database_url: str, smarthost: Smarthost, pool: UpstreamPool
) -> None:
    settings = load_settings({"MXRELAY_ICS_STRIP": "a@example.org"})
    metrics = Metrics()
    plan, render = calendar_variants(IcsPolicy.from_settings(settings.mime), metrics)
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


def test_calendar_variants_rebuild_what_they_planned_and_refuse_unknown_names() -> None:
    settings = load_settings({"MXRELAY_ICS_STRIP": "a@example.org"})
    plan, render = calendar_variants(IcsPolicy.from_settings(settings.mime), None)
    stripped, whole = plan(INVITATION, ("a@example.org", "b@example.org"))
    assert (stripped.transforms, whole.transforms) == (("ics:strip",), ())
    assert b"text/calendar" not in render(INVITATION, stripped.transforms)
    assert render(INVITATION, whole.transforms) == INVITATION
    with pytest.raises(UnknownTransform, match="ics:rot13"):
        render(INVITATION, ("ics:rot13",))
