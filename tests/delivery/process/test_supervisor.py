"""The delivery process: a relay in smtp mode delivers from a child process that shares its store;
a child that dies is replaced and what it held is sent again; it stops with the relay; one that
cannot start leaves the relay accepting, with the fault in /readyz."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiosmtplib
import pytest

from mxrelay.app import Relay
from mxrelay.config import load_settings
from mxrelay.delivery.process.ipc import HAND_OVER_SIZE
from mxrelay.delivery.process.supervisor import DeliveryProcess
from mxrelay.health import ConditionName, Health
from mxrelay.metrics import Metrics
from mxrelay.model import QueueState
from mxrelay.store.open import open_store
from mxrelay.store.queue import LoadedEntry, Queue
from tests.support.polling import until
from tests.support.processes import wait_for_exit
from tests.support.relay_app import running_relay
from tests.support.smarthost import Smarthost

pytestmark = pytest.mark.slow  # relays with their delivery processes

MESSAGE = b"From: app@example.net\r\nTo: user@example.org\r\nSubject: hello\r\n\r\nHello.\r\n"


@pytest.fixture
async def relay(smarthost: Smarthost, tmp_path: Path) -> AsyncIterator[Relay]:
    async with running_relay(relay_env(smarthost, tmp_path)) as running:
        yield running


def relay_env(smarthost: Smarthost, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A relay in smtp mode, its SQLite store in `tmp_path`, delivering to `smarthost`."""
    return {
        "MXRELAY_DELIVERY": "smtp",
        "MXRELAY_UPSTREAM": smarthost.url,
        "MXRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'relay.db'}",
        "MXRELAY_DNS_TRUSTED_DOMAINS": "example.org",
        **extra,
    }


def delivery_of(relay: Relay) -> DeliveryProcess:
    assert relay.queue_stage is not None
    delivery = relay.queue_stage.delivery
    assert delivery is not None
    return delivery


async def send(relay: Relay, count: int, data: bytes = MESSAGE) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.smtp_port) as client:
        for _ in range(count):
            await client.sendmail("app@example.net", ["user@example.org"], data)


def sample(relay: Relay, name: str, **labels: str) -> float:
    return relay.metrics.registry.get_sample_value(name, labels) or 0.0


async def queue_counts(relay: Relay) -> dict[QueueState, int]:
    assert relay.queue_stage is not None
    assert relay.queue_stage.queue is not None
    return (await relay.queue_stage.queue.stats()).counts


async def all_delivered(relay: Relay, count: int) -> bool | None:
    """True once `count` entries are settled delivered (the settlement follows the send)."""
    return await queue_counts(relay) == {QueueState.DELIVERED: count} or None


async def with_one_active(relay: Relay) -> dict[QueueState, int] | None:
    """The queue's counts once an entry is active (a delivery in progress)."""
    counts = await queue_counts(relay)
    return counts if counts.get(QueueState.ACTIVE) else None


async def test_mail_is_delivered_by_the_delivery_process(
    relay: Relay, smarthost: Smarthost
) -> None:
    delivery = delivery_of(relay)
    assert delivery.pid is not None
    assert delivery.pid != os.getpid()
    await send(relay, 3)
    await smarthost.wait_for(3)
    # What the child counted shows on the relay's /metrics; its conditions show on the relay's
    # /healthz under names of their own (status: the relay's own "store" stays its own).
    delivered = {"transport": "smtp", "outcome": "delivered"}
    await until(lambda: sample(relay, "mxrelay_deliveries_total", **delivered) == 3, within=20)
    conditions = relay.health.snapshot()
    assert conditions[ConditionName.DELIVERY_PROCESS].ok
    assert conditions["delivery_process:delivery"].ok
    assert relay.health.ready
    assert await queue_counts(relay) == {"delivered": 3}


def record_hand_overs(monkeypatch: pytest.MonkeyPatch, relay: Relay) -> list[int]:
    """The entries of each hand-over the sink makes to the delivery process, as they are made."""
    delivery = delivery_of(relay)
    handed: list[int] = []
    hand_over = delivery.hand_over

    def recording(loaded: Sequence[LoadedEntry]) -> None:
        handed.append(len(loaded))
        hand_over(loaded)

    monkeypatch.setattr(delivery, "hand_over", recording)
    return handed


async def test_new_mail_is_handed_to_the_delivery_process_without_a_claim(
    smarthost: Smarthost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = relay_env(
        smarthost,
        tmp_path,
        MXRELAY_QUEUE_POLL_INTERVAL="1m",  # the child claims at start, then only when woken
    )
    async with running_relay(env) as running:
        delivery = delivery_of(running)
        handed = record_hand_overs(monkeypatch, running)
        wakes: list[None] = []
        monkeypatch.setattr(delivery, "wake", lambda: wakes.append(None))  # no claim is asked for
        await send(running, 3)
        await smarthost.wait_for(3)  # delivered from what was handed over, never claimed
        assert handed == [1, 1, 1]
        assert not wakes
        # Each settled entry gives the relay its room back (so the next mail is handed too).
        await until(lambda: delivery.handed == 0, within=10)
        assert await queue_counts(running) == {"delivered": 3}


async def test_mail_beyond_the_child_s_room_or_too_large_is_queued_and_claimed(
    smarthost: Smarthost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = relay_env(smarthost, tmp_path, MXRELAY_DELIVERY_CONCURRENCY="1")
    async with running_relay(env) as running:
        handed = record_hand_overs(monkeypatch, running)
        smarthost.delay = 1.5  # the first delivery is still in progress when the rest arrive
        await send(running, 3)
        assert handed == [1]  # room for one (the concurrency); the others were queued
        await smarthost.wait_for(3, within=30)
        await until(lambda: delivery_of(running).handed == 0, within=10)
        smarthost.delay = 0.0
        line = b"x" * 78 + b"\r\n"
        large = MESSAGE + line * (HAND_OVER_SIZE // len(line) + 1)
        await send(running, 1, large)
        [*_, received] = await smarthost.wait_for(4)
        assert len(received.data) > HAND_OVER_SIZE
        assert received.data.endswith(line * 100)
        assert handed == [1]  # too large for a frame: claimed and read from the store
        assert await until(lambda: all_delivered(running, 4), within=10)


async def test_a_delivery_process_that_dies_is_replaced_and_its_mail_sent_again(
    relay: Relay, smarthost: Smarthost
) -> None:
    delivery = delivery_of(relay)
    first = delivery.pid
    assert first is not None
    smarthost.script.hang_data = True  # the attempt is in progress when the child dies
    await send(relay, 1)
    assert await until(lambda: with_one_active(relay)) == {"active": 1}
    os.kill(first, signal.SIGKILL)
    await until(lambda: sample(relay, "mxrelay_delivery_process_exits_total") == 1, within=20)
    smarthost.script.hang_data = False
    [received] = await smarthost.wait_for(1, within=30)
    assert received.recipients == ("user@example.org",)
    assert delivery.pid not in (None, first)
    await until(lambda: relay.health.snapshot()[ConditionName.DELIVERY_PROCESS].ok, within=20)
    delivered = {"transport": "smtp", "outcome": "delivered"}
    await until(lambda: sample(relay, "mxrelay_deliveries_total", **delivered) == 1, within=20)
    assert await queue_counts(relay) == {"delivered": 1}


async def test_the_delivery_process_stops_with_the_relay(
    smarthost: Smarthost, tmp_path: Path
) -> None:
    env = relay_env(smarthost, tmp_path)
    async with running_relay(env) as running:
        pid = delivery_of(running).pid
        assert pid is not None
    assert await asyncio.to_thread(wait_for_exit, pid, 5)
    async with running_relay(env):  # and it left the SQLite file to the next relay
        pass


@pytest.mark.parametrize("nice", [0, 3])
async def test_the_delivery_process_runs_at_a_lower_priority(
    smarthost: Smarthost, tmp_path: Path, nice: int
) -> None:
    """On busy cores the relay's clients, each waiting for a reply, go first; the delivery
    process works off the queue with what is left (0: the relay's own priority)."""
    env = relay_env(smarthost, tmp_path, MXRELAY_DELIVERY_PROCESS_NICE=str(nice))
    async with running_relay(env) as running:
        pid = delivery_of(running).pid
        assert pid is not None
        relay = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(relay + nice, 19)
        await send(running, 1)
        await smarthost.wait_for(1)  # and it delivers


async def test_one_process_when_turned_off(smarthost: Smarthost, tmp_path: Path) -> None:
    env = relay_env(smarthost, tmp_path, MXRELAY_DELIVERY_PROCESS="false")
    async with running_relay(env) as running:
        assert running.queue_stage is not None
        assert running.queue_stage.delivery is None
        assert running.queue_stage.worker is not None
        await send(running, 1)
        await smarthost.wait_for(1)


async def test_a_delivery_process_that_cannot_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    settings = load_settings({"MXRELAY_DELIVERY": "smtp", "MXRELAY_UPSTREAM": "smtp://h:25"})
    health, metrics = Health(), Metrics()
    async with open_store(url) as db:
        delivery = DeliveryProcess(
            settings,
            queue=Queue(db),
            metrics=metrics,
            health=health,
            command=(sys.executable, "-c", "raise SystemExit(3)"),
            restart_delay=30.0,
        )
        await delivery.start()  # does not raise: the relay goes on accepting
        assert "status 3" in health.degraded()[ConditionName.DELIVERY_PROCESS]
        assert health.ready  # status, not readiness: the relay goes on accepting
        assert delivery.pid is None
        delivery.wake()  # nobody to wake: nothing happens
        await asyncio.sleep(0)
        await delivery.stop(0.0)
