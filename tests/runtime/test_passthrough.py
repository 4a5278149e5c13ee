"""Passthrough as a stage: its sink relays on the stage's pool, split by the ICS policy the plan
carries (and counted), and closing the stage closes the pool's idle connections."""

from __future__ import annotations

import asyncio

from mxrelay.config import load_settings
from mxrelay.metrics import Metrics
from mxrelay.runtime.passthrough import PassthroughStage
from mxrelay.runtime.plan import plan_stages
from tests.store.helpers import transaction
from tests.support import smarthost as smarthost_support
from tests.support.mime_trees import CORPUS
from tests.support.smarthost import Smarthost

smarthost = smarthost_support.smarthost

INVITE = (CORPUS / "nodemailer-calcom-request.eml").read_bytes()
RECIPIENTS = ("listed@example.net", "other@example.net")


def stage_for(smarthost: Smarthost, metrics: Metrics, **extra: str) -> PassthroughStage:
    settings = load_settings(
        {"MXRELAY_UPSTREAM": smarthost.url, **extra}, hostname=lambda: "relay.example.net"
    )
    plan = plan_stages(settings)
    return PassthroughStage(settings, transform=plan.transform, metrics=metrics)


async def relay(stage: PassthroughStage) -> None:
    txn = transaction(recipients=RECIPIENTS, data=INVITE)
    mail = stage.sink.begin(txn.session, txn.mail_from, ())
    for recipient in RECIPIENTS:
        assert (await mail.add_recipient(recipient, ())).code == 250
    assert (await mail.finish(txn)).code == 250


async def test_without_an_ics_policy_the_message_goes_whole(smarthost: Smarthost) -> None:
    metrics = Metrics()
    stage = stage_for(smarthost, metrics)
    assert stage.sink.plan is None
    try:
        await relay(stage)
    finally:
        await stage.aclose()
    [received] = smarthost.received
    assert received.recipients == RECIPIENTS
    assert received.data.endswith(INVITE)


async def test_the_ics_policy_splits_and_counts(smarthost: Smarthost) -> None:
    metrics = Metrics()
    stage = stage_for(smarthost, metrics, MXRELAY_ICS_STRIP="listed@example.net")
    try:
        await relay(stage)
    finally:
        await stage.aclose()
    stripped, whole = smarthost.received
    assert (stripped.recipients, whole.recipients) == (RECIPIENTS[:1], RECIPIENTS[1:])
    assert b"BEGIN:VCALENDAR" not in stripped.data
    assert whole.data.endswith(INVITE)
    value = metrics.registry.get_sample_value
    assert value("mxrelay_ics_messages_transformed_total", {"action": "strip"}) == 1


async def test_closing_the_stage_closes_the_pool(smarthost: Smarthost) -> None:
    stage = stage_for(smarthost, Metrics())
    await relay(stage)
    client = await stage.pool.acquire()  # the idle connection the transaction left
    assert client.is_connected
    stage.pool.release(client, reusable=True)
    await stage.aclose()
    await asyncio.sleep(0)
    assert not client.is_connected
