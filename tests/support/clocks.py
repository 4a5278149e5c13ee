"""A clock for code that takes one: it moves only when the test says so."""

from __future__ import annotations


class FakeClock:
    """A clock in seconds (monotonic or wall, as the code under test reads it) that stands still
    until the test sets `now` or calls `advance`."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
