"""The message-log benchmark at a small size: its generator, and a whole run on each database."""

from __future__ import annotations

import random

import pytest
from bench.log_corpus import corpus, message
from bench.message_log import Plan, bench_backend

from bench import message_log


def test_the_generator_is_deterministic_and_realistic() -> None:
    c = corpus(7)
    first = [message(random.Random(7), c, n, 2000) for n in range(3)]
    again = [message(random.Random(7), c, n, 2000) for n in range(3)]
    assert [m.transaction.data for m in first] == [m.transaction.data for m in again]
    rng = random.Random(3)
    messages = [message(rng, c, n, 2000) for n in range(2000)]
    assert [m.received_at for m in messages] == sorted(m.received_at for m in messages)
    share = {
        "cc": sum(bool(m.summary.addresses.cc) for m in messages) / 2000,
        "attached": sum(m.summary.attachments for m in messages) / 2000,
        "tagged": sum(bool(m.summary.tags) for m in messages) / 2000,
        "word": sum(c.search_word in m.summary.body_text.split() for m in messages) / 2000,
    }
    assert 0.05 < share["cc"] < 0.11
    assert 0.07 < share["attached"] < 0.13
    assert 0.01 < share["tagged"] < 0.05
    assert 0.003 < share["word"] < 0.03
    assert all(m.summary.message_id and m.summary.subject for m in messages)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def test_a_small_run(backend: str) -> None:
    lines: list[str] = []
    plan = Plan(messages=1500, runs=2, baseline_runs=1, batch=500, backends=(backend,))
    report = await bench_backend(backend, plan, lines.append)
    assert lines[-1].startswith(f"  {backend}: 1,500 messages written")
    rows = {line[:38].strip(): line[38:].split() for line in report.splitlines()[2:]}
    for label in (*message_log.SEARCHES, "list: first page", "one message", "raw"):
        assert label in rows, label
    for label in (message_log.SEARCHES[0], message_log.SEARCHES[2]):
        assert int(rows[label][0].replace(",", "")) > 0, label  # the search finds something
    assert ("targets: " in report) == (backend == "sqlite")
