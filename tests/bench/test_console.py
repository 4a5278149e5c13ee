"""The console benchmark at a small size: the server time on a small store of the message-log
generator, and one short round of each acceptance case (the browsers, the event clients)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import console
from tests.support.polling import until

MESSAGES = 200
"""Messages per measure: enough for the relay's CPU time, which /proc counts in 10 ms ticks, to
register (at 20 a quick relay's could round to nothing)."""


async def test_a_small_run(capsys: pytest.CaptureFixture[str]) -> None:
    await console.measure(300, 3, None)
    printed = capsys.readouterr().out
    for label in ("list, first page", "list, a page half-way", "one message, first tab"):
        assert label in printed
    assert "MISSED" not in printed


def test_the_payloads_are_the_generators_mail() -> None:
    sent = console.payloads(20)
    assert len(sent) == 20
    assert all(data.startswith(b"From: ") and recipients for _, recipients, data in sent)


async def test_the_event_clients_receive_every_new_message(tmp_path: Path) -> None:
    async with console.serving(tmp_path) as (relay, web_port):
        watchers = console.Watchers(f"ws://127.0.0.1:{web_port}/api/events")
        assert await watchers.received() == 0  # not started
        await watchers.start()
        sent = console.payloads(20)
        rate, cost = await console.smtp_rate(relay.smtp_port, sent, relay.process.pid, pace=50)
        assert 0 < rate < 60  # paced
        assert cost > 0
        expected = console.WATCHERS * len(sent)  # a `new` frame per message for each client

        async def all_arrived() -> bool:
            return await watchers.received() >= expected

        await until(all_arrived, what=f"{expected} frames at the event clients")
        await watchers.stop()
        await watchers.stop()  # stopping twice is stopping once
    [frames] = watchers.frames
    assert frames >= expected


async def test_each_measure_is_taken_with_and_without_event_clients(tmp_path: Path) -> None:
    figures, frames = await console.event_acceptance(tmp_path, rounds=1, messages=MESSAGES)
    for key in console.MEASURES:
        assert set(figures[key]) == {console.NO_WATCHERS, console.WATCHED}
        assert all(len(runs) == 1 and runs[0] > 0 for runs in figures[key].values())
    assert len(frames) == 1  # one round with the clients connected


async def test_the_console_pages_are_measured_against_blank_pages(tmp_path: Path) -> None:
    figures = await console.acceptance(tmp_path, rounds=1, messages=MESSAGES)
    assert set(figures["rate"]) == {console.BLANK, console.CONSOLE}
    assert all(runs[0] > 0 for key in console.MEASURES for runs in figures[key].values())


def test_the_report_gives_the_medians_and_both_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    figures = {
        "rate": {"none": [100.0, 110.0, 90.0], "ten": [96.0, 99.0, 80.0]},
        "cpu": {"none": [1.0, 1.1, 0.9], "ten": [1.1, 1.2, 1.0]},
        "paced cpu": {"none": [1.0, 1.0, 1.0], "ten": [1.04, 1.02, 1.03]},
    }
    console.report_acceptance("10 clients", figures, "none", "ten")
    out = capsys.readouterr().out
    assert re.search(r"^  none +100\.00 +110\.00 +90\.00  median +100\.00$", out, re.MULTILINE)
    assert "rate 0.960 (-4.0 %; target within 5 %: met)" in out
    assert "CPU per message, as fast as it accepts 1.100 (+10.0 %)" in out
    assert "CPU per message at 200 msg/s 1.030 (+3.0 %; target within 5 %: met)" in out
