"""The store-and-forward benchmark: its tables, and the whole benchmark at a small size on the rig."""

from __future__ import annotations

import re

import pytest

from bench import store


def test_tables_show_both_rates_with_ratios_and_targets() -> None:
    plan = store.Plan(runs=2, sessions=(20, 1), backends=("sqlite",))
    acceptance = {
        "mxrelay smtp/sqlite, 20 sess.": [1300.0, 1400.0],
        "postfix relay, 20 sess.": [600.0, 700.0, 500.0, 800.0],
        "mxrelay smtp/sqlite, 1 sess.": [400.0, 420.0],
        "postfix relay, 1 sess.": [400.0, 400.0, 400.0, 400.0],
    }
    end_to_end = {
        "mxrelay smtp/sqlite, 20 sess.": [500.0, 520.0],
        "postfix relay, 20 sess.": [600.0, 600.0, 600.0, 600.0],
        "mxrelay smtp/sqlite, 1 sess.": [400.0, 420.0],
        "postfix relay, 1 sess.": [400.0, 400.0, 400.0, 400.0],
    }
    text = store.tables(plan, acceptance, end_to_end)
    assert "ratio sqlite / postfix, 20 sess.: 2.08 (target >= 2.00: met)" in text
    assert "ratio sqlite / postfix, 20 sess.: 0.85 (target >= 1.50: MISSED)" in text
    assert "ratio sqlite / postfix, 1 sess.: 1.02 (target >= 1.00: met)" in text
    assert re.search(r"^ratio sqlite / postfix, 1 sess\.: 1\.02$", text, re.M)  # no target
    assert re.search(r"^mxrelay smtp/sqlite, 20 sess\. +1300\.0 +1400\.0 +1350\.0$", text, re.M)


@pytest.mark.slow
@pytest.mark.usefixtures("rig_machine")
def test_small_store_run_prints_both_tables(capsys: pytest.CaptureFixture[str]) -> None:
    store.run(store.Plan(messages=40, runs=1, sessions=(4,), warm_up=4))
    out = capsys.readouterr().out
    for backend in ("sqlite", "postgresql"):  # acceptance, end to end, CPU per message
        rows = re.findall(rf"^mxrelay smtp/{backend}, 4 sess\.( +\d+\.\d){{2}}$", out, re.M)
        assert len(rows) == 3
    assert len(re.findall(r"^ratio sqlite / postfix, 4 sess\.: \d+\.\d\d$", out, re.M)) == 2
    assert "CPU time per message" in out
    assert re.search(r"^mxrelay smtp/sqlite, 4 sess\.: ms +\d+\.\d +\d+\.\d$", out, re.M)
    assert re.search(r"^postfix relay, 4 sess\.: busy % +\d+\.\d( +\d+\.\d)+$", out, re.M)
    assert re.search(r"^relay\.db-wal +\d+\.\d MB$", out, re.M)


def test_log_facts_count_every_message_written() -> None:
    plan = store.Plan(messages=5000, runs=3, sessions=(20, 1), warm_up=200)
    text = store.log_facts(plan, 9_690_272)
    assert re.search(r"^relay\.db-wal +9\.7 MB$", text, re.M)
    assert re.search(r"^messages accepted +30200$", text, re.M)
