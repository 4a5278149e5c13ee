"""The failure budget with tries under way: each counts as spent until its check ends, so a
client cannot overdraw its budget by trying many times at once (SMTP AUTH's sequential use, with
none under way, is what tests/smtp/test_auth_limits.py shows)."""

from __future__ import annotations

from contextlib import ExitStack

from mxrelay.rates import FailureBudget
from tests.support.clocks import FakeClock


def _checks(budget: FailureBudget, host: str, count: int, stack: ExitStack) -> None:
    for _ in range(count):
        stack.enter_context(budget.checking(host))


def test_tries_under_way_count_against_the_budget() -> None:
    clock = FakeClock()
    budget = FailureBudget(3, 60.0, clock=clock)
    with ExitStack() as two:
        _checks(budget, "192.0.2.1", 2, two)
        assert budget.allows("192.0.2.1")
        with budget.checking("192.0.2.1"):
            assert not budget.allows("192.0.2.1")
    budget.failed("192.0.2.1")
    with budget.checking("192.0.2.1"):
        assert budget.allows("192.0.2.1")
        with budget.checking("192.0.2.1"):
            assert not budget.allows("192.0.2.1")
    assert budget.allows("192.0.2.1")
    clock.advance(20.0)  # one token back
    with ExitStack() as two:
        _checks(budget, "192.0.2.1", 2, two)
        assert budget.allows("192.0.2.1")
        assert budget.allows("192.0.2.2")  # another client's budget is its own
