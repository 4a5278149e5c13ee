"""Two relays on one PostgreSQL queue pace each mailbox together, as one relay would.

Both relays run in this process against one Graph stand-in that enforces the limits itself and
answers 429 beyond them. Each relay is configured with the whole limit (no splitting by hand):
the lanes they share through the store keep the combined rate, the concurrency and a Retry-After
pause within what the mailbox allows. For the rate, Microsoft's windows are shortened thirtyfold
on both sides (a minute lasts two seconds), as the pacing tests do, so that it shows in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from mxrelay.app import Relay
from mxrelay.config import Settings
from mxrelay.delivery.graph import lanes
from mxrelay.delivery.graph import transport as graph_transport
from mxrelay.delivery.graph.pacing import PacingLimits
from tests.support.dns_server import DnsServer
from tests.support.graph_relay import crlf, graph_relay_environ, submit
from tests.support.graph_standin import MAILBOX, GraphStandIn, MailboxLimits, throttle
from tests.support.relay_app import running_relay

pytestmark = pytest.mark.postgres

PER_MINUTE = 600  # ten a second
SCALE = 30.0  # for the rate test: a minute lasts two seconds


@contextlib.asynccontextmanager
async def two_relays(
    standin: GraphStandIn, dns: DnsServer, tmp_path: Path, database_url: str, **extra: str
) -> AsyncIterator[tuple[Relay, Relay]]:
    """Two replicas of one relay: the same settings, the same PostgreSQL queue."""
    settings = {"MXRELAY_DATABASE_URL": database_url, **extra}
    async with contextlib.AsyncExitStack() as stack:
        relays = [
            await stack.enter_async_context(
                running_relay(graph_relay_environ(standin, dns, tmp_path / name, **settings))
            )
            for name in ("a", "b")
        ]
        yield relays[0], relays[1]


async def send_through_both(relays: Sequence[Relay], count: int) -> None:
    """`count` messages, every other one through each relay, submitted at once."""
    targets = itertools.islice(itertools.cycle(relays), count)
    await asyncio.gather(
        *(
            submit(relay, MAILBOX, ["alice@example.net"], crlf(f"Subject: m{i}\n\nbody {i}\n"))
            for i, relay in enumerate(targets)
        )
    )


def delivered_by(relay: Relay) -> float:
    value = relay.metrics.registry.get_sample_value(
        "mxrelay_deliveries_total", {"transport": "graph", "outcome": "delivered"}
    )
    return value or 0.0


def shortened(
    limits_from: Callable[[Settings], PacingLimits],
) -> Callable[[Settings], PacingLimits]:
    """The transport's limits with every window SCALE times shorter (as many per window)."""

    def limits(settings: Settings) -> PacingLimits:
        real = limits_from(settings)
        return replace(
            real,
            messages_window=real.messages_window / SCALE,
            requests_window=real.requests_window / SCALE,
            upload_window=real.upload_window / SCALE,
            recipients_window=real.recipients_window / SCALE,
        )

    return limits


async def test_two_relays_keep_the_mailbox_rate_together(
    tmp_path: Path, dns: DnsServer, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 messages per (shortened) minute configured on each relay; the stand-in allows 20 per
    1.96 s, a window 2 % short of the relays' to absorb loopback jitter. Apart, the two relays
    would send twice that and collect 429s at once."""
    monkeypatch.setattr(graph_transport, "limits_from", shortened(lanes.limits_from))
    per_second = 20 / (60.0 / SCALE)
    limits = MailboxLimits(messages=(20, 1.96), requests=None, upload_bytes=None, concurrency=4)
    with GraphStandIn.running(tmp_path / "standin", limits=limits) as standin:
        async with two_relays(
            standin,
            dns,
            tmp_path,
            postgres_url,
            MXRELAY_GRAPH_MESSAGES_PER_MINUTE="20",
            MXRELAY_GRAPH_CONCURRENCY="4",
        ) as relays:
            await send_through_both(relays, 60)
            sent = await standin.arrived(60, within=30)
            assert all(delivered_by(relay) > 0 for relay in relays)  # both delivered
    assert standin.throttled == 0
    assert {r.status for r in standin.send_requests()} == {202}
    arrivals = sorted(m.at for m in sent)
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert rate <= per_second * 1.02  # combined, never faster than one relay's limit


async def test_two_relays_share_the_concurrency_limit(
    tmp_path: Path, dns: DnsServer, postgres_url: str
) -> None:
    limits = MailboxLimits(messages=None, requests=None, upload_bytes=None, concurrency=2)
    with GraphStandIn.running(tmp_path / "standin", latency=0.3, limits=limits) as standin:
        async with two_relays(
            standin, dns, tmp_path, postgres_url, MXRELAY_GRAPH_CONCURRENCY="2"
        ) as relays:
            await send_through_both(relays, 12)
            await standin.arrived(12, within=30)
    assert standin.throttled == 0
    assert standin.max_in_flight <= 2


async def test_a_retry_after_pauses_the_mailbox_on_both_relays(
    tmp_path: Path, dns: DnsServer, postgres_url: str
) -> None:
    """One request at a time across both relays: the throttled relay records the pause before it
    gives its slot back, so the other relay's next request is certainly admitted after the pause is
    known. (With several slots a request admitted a moment before the 429 came back is on its way
    already, on Exchange as here; the pause cannot recall it.)"""
    with GraphStandIn.running(tmp_path / "standin") as standin:
        standin.script(throttle("2"))
        async with two_relays(
            standin,
            dns,
            tmp_path,
            postgres_url,
            MXRELAY_GRAPH_MESSAGES_PER_MINUTE=str(PER_MINUTE),
            MXRELAY_GRAPH_CONCURRENCY="1",
        ) as relays:
            await send_through_both(relays, 10)
            await standin.arrived(10, within=30)
    first, *rest = standin.send_requests()
    assert first.status == 429
    assert [r.status for r in rest] == [202] * 10
    assert min(r.at for r in rest) - first.at >= 1.95  # neither relay sent during the pause
