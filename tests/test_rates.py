"""The failure budget with tries under way: each counts as spent until it ends, so a client
cannot overdraw its budget by trying many times at once (SMTP AUTH's sequential use, with none
under way, is what tests/smtp/test_auth_limits.py shows)."""

from __future__ import annotations

from mxrelay.rates import FailureBudget
from tests.support.clocks import FakeClock


def test_tries_under_way_count_against_the_budget() -> None:
    clock = FakeClock()
    budget = FailureBudget(3, 60.0, clock=clock)
    assert budget.allows("192.0.2.1", under_way=2)
    assert not budget.allows("192.0.2.1", under_way=3)
    budget.failed("192.0.2.1")
    assert budget.allows("192.0.2.1", under_way=1)
    assert not budget.allows("192.0.2.1", under_way=2)
    assert budget.allows("192.0.2.1")
    clock.advance(20.0)  # one token back
    assert budget.allows("192.0.2.1", under_way=2)
    assert budget.allows("192.0.2.2", under_way=2)  # another client's budget is its own
