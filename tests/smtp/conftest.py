"""The SMTP engine's fixtures: relays (engine and policy) on loopback, stopped after the test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.smtp_relay import RelayFactory, RelayThread


@pytest.fixture
def make_relay() -> Iterator[RelayFactory]:
    """Start SMTP relays (engine + policy) on loopback; all are stopped at the end of the test."""
    started: list[RelayThread] = []

    def factory(**kwargs: Any) -> RelayThread:
        relay = RelayThread(**kwargs).start()
        started.append(relay)
        return relay

    yield factory
    for relay in started:
        relay.stop()


@pytest.fixture
def relay(make_relay: RelayFactory) -> RelayThread:
    return make_relay()
