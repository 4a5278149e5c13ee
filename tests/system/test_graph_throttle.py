"""A throttle is not a failure: after Graph's 429 (or a 503 with Retry-After) the message goes
again exactly when Graph said, with the relay's default retry settings, and the backoff of a later
real failure does not grow with the throttles before it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mxrelay.model import QueueState
from mxrelay.store.message_log import get_message
from tests.support.dns_server import DnsServer
from tests.support.graph_relay import crlf, graph_relay_environ, submit
from tests.support.graph_standin import MAILBOX, GraphStandIn, throttle, unavailable
from tests.support.relay_app import entry_in_state, running_relay

DEFAULTS = {  # the relay's own defaults, not the quick ones the other system tests use
    "MXRELAY_RETRY_INITIAL": "1m",
    "MXRELAY_RETRY_MAX": "1h",
    "MXRELAY_QUEUE_POLL_INTERVAL": "1s",
}


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param((throttle("2"), throttle("2")), id="429-429"),
        pytest.param((unavailable("2"), throttle("2")), id="503-429"),
    ],
)
async def test_throttled_twice_then_delivered_within_the_retry_afters(
    standin: GraphStandIn, dns: DnsServer, tmp_path: Path, answers: tuple[object, ...]
) -> None:
    standin.script(*answers)  # type: ignore[arg-type]
    environ = graph_relay_environ(standin, dns, tmp_path, **DEFAULTS)
    data = crlf(f"From: {MAILBOX}\nTo: alice@example.net\nSubject: throttled\n\nbody\n")
    async with running_relay(environ) as relay:
        message_id, _ = await submit(relay, MAILBOX, ["alice@example.net"], data)
        await standin.arrived(1, within=15)
        delivered = await entry_in_state(relay, message_id, QueueState.DELIVERED)
        assert relay.queue_stage is not None
        assert relay.queue_stage.db is not None
        view = await get_message(relay.queue_stage.db, message_id)
    assert view is not None
    first, second, accepted = standin.send_requests()
    assert [r.status for r in (first, second, accepted)] == [answers[0].status, 429, 202]  # type: ignore[attr-defined]
    assert second.at - first.at >= 1.95  # never before the Retry-After
    assert accepted.at - second.at >= 1.95
    assert accepted.at - first.at <= 5.0  # and no later than it asked (plus a moment)
    assert delivered.attempts == 1  # the throttles are not failed attempts
    assert [a.outcome for a in view.attempts] == ["throttled", "throttled", "delivered"]


async def test_a_failure_after_throttles_backs_off_from_the_first_step(
    standin: GraphStandIn, dns: DnsServer, tmp_path: Path
) -> None:
    """Three throttles, then a 503 without Retry-After: the retry after the 503 is the first
    step of the backoff (MXRELAY_RETRY_INITIAL), not the fourth."""
    standin.script(throttle("1"), throttle("1"), throttle("1"), unavailable())
    environ = graph_relay_environ(
        standin, dns, tmp_path, MXRELAY_RETRY_INITIAL="30s", MXRELAY_RETRY_MAX="1h"
    )
    data = crlf(f"From: {MAILBOX}\nTo: alice@example.net\nSubject: backoff\n\nbody\n")
    async with running_relay(environ) as relay:
        message_id, _ = await submit(relay, MAILBOX, ["alice@example.net"], data)
        await asyncio.to_thread(standin.wait_for, lambda: len(standin.send_requests()) == 4, 15.0)
        answered = time.time()
        deferred = await entry_in_state(  # with the 503's result written
            relay, message_id, QueueState.DEFERRED, where=lambda entry: entry.attempts > 0
        )
    assert [r.status for r in standin.send_requests()] == [429, 429, 429, 503]
    assert deferred.attempts == 1  # only the 503 counts
    assert deferred.next_attempt_at - answered <= 30.5  # MXRELAY_RETRY_INITIAL, the first step
