"""The console benchmark's acceptance cases at a small size: the event clients in their own
process receive the relay's frames, and the report prints the medians and their ratio."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import console
from tests.support.polling import until
from tests.support.relay_app import running_relay


async def test_event_clients_receive_every_new_message(tmp_path: Path) -> None:
    async with running_relay(console.relay_env(tmp_path)) as relay:
        watchers = console.Watchers(f"ws://127.0.0.1:{relay.web_port}/api/events")
        assert await watchers.received() == 0  # not started
        await watchers.start()
        rate, cost = await console.smtp_rate(relay.smtp_port, console.SESSIONS * 2)
        assert rate > 0
        assert cost > 0
        # Each client gets a `new` frame per message; `stats` frames come too.
        expected = console.WATCHERS * console.SESSIONS * 2

        async def all_arrived() -> bool:
            return await watchers.received() >= expected

        await until(all_arrived, what=f"{expected} frames at the event clients")
        await watchers.stop()
        await watchers.stop()  # stopping twice is stopping once
    [frames] = watchers.frames
    assert frames >= expected


def test_the_report_gives_the_medians_and_their_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    rounds = console.Rounds(
        {"none": [100.0, 110.0, 90.0], "ten": [96.0, 99.0, 80.0]},
        {"none": [1.0, 1.1, 0.9], "ten": [1.1, 1.2, 1.0]},
    )
    console.report("10 clients", rounds, "none", "ten", "the clients")
    out = capsys.readouterr().out
    assert re.search(r"^  none +100\.00 +110\.00 +90\.00  median +100\.00$", out, re.MULTILINE)
    assert "rate with the clients: -4.0 % (ratio 0.960; target within 5 %: met)" in out
    assert "CPU per message with the clients: +10.0 %" in out
