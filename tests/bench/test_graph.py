"""The Graph benchmark: its figures against the ceiling, and the whole relay at a small size with
the stand-in and the relay each in a process of its own."""

from __future__ import annotations

from pathlib import Path

from bench.figures import Row

from bench import graph


def test_the_relay_is_set_against_the_concurrency_ceiling() -> None:
    assert "72.5 messages/s, 90.6 % (target 90 %: met)" in graph.ceiling_facts(
        Row("relay", (72.0, 72.5, 73.0))
    )
    missed = graph.ceiling_facts(Row("relay", (60.0,)))
    assert "4 requests / 50 ms = 80/s" in missed
    assert "60.0 messages/s, 75.0 % (target 90 %: MISSED)" in missed


async def test_a_small_run_through_the_relay_reaches_the_standin(tmp_path: Path) -> None:
    rate, throttled = await graph.through_the_relay(tmp_path, 12, paced=False)
    assert rate > 0
    assert throttled == 0


async def test_the_transport_alone_delivers_to_the_standin(tmp_path: Path) -> None:
    assert await graph.transport_alone(tmp_path, 8) > 0
