"""The front-door benchmark's helpers, and the whole benchmark at a small size on the real rig."""

from __future__ import annotations

import random
import re
import string

import pytest

from bench import front_door


def test_random_domains_are_distinct_reproducible_and_under_the_flood_tld() -> None:
    domains = front_door.random_domains(random.Random(7), 5000)
    assert len(domains) == len(set(domains)) == 5000
    assert domains == front_door.random_domains(random.Random(7), 5000)
    assert domains != front_door.random_domains(random.Random(8), 5000)
    label = re.compile(f"[{string.ascii_lowercase}]{{12}}\\.com")
    assert all(label.fullmatch(domain) for domain in domains)


@pytest.mark.slow
@pytest.mark.usefixtures("rig_machine")
def test_small_front_door_run_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    plan = front_door.Plan(
        messages=40,
        runs=1,
        sessions=(4,),
        warm_up=4,
        idle_connections=30,
        flood_recipients=300,
        flood_sessions=3,
        cache_size=100,
    )
    front_door.run(plan)
    out = capsys.readouterr().out
    assert re.search(r"^mxrelay passthrough, 4 sess\.( +\d+\.\d){2}$", out, re.MULTILINE)
    assert re.search(r"^postfix relay, 4 sess\.( +\d+\.\d){2}$", out, re.MULTILINE)
    assert re.search(
        r"^ratio mxrelay / postfix, 4 sess\.: \d+\.\d\d \(target >= 1\.00: (met|MISSED)\)$",
        out,
        re.MULTILINE,
    )
    assert re.search(r"^mxrelay_smtp_sessions_active +30$", out, re.MULTILINE)
    assert re.search(r"^replies by code +550: 300$", out, re.MULTILINE)
    entries = re.search(r"^mxrelay_dns_cache_entries +(\d+) ", out, re.MULTILINE)
    assert entries is not None
    assert 0 < int(entries.group(1)) <= 100
    assert "within bound" in out
