"""Readiness: named conditions that stages report on, read by /readyz.

One `Health` object is created by the application and handed to each stage that has something to say
(the SMTP listener, the resolver, the store, the delivery transport). A condition that is false makes
the relay not ready, and /readyz names it, so an operator sees why without reading logs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Condition:
    ok: bool
    detail: str


class Health:
    """Mutable, but owned: created in app.py and passed to stages explicitly (never global)."""

    def __init__(self) -> None:
        self._conditions: dict[str, Condition] = {}

    def set(self, name: str, ok: bool, detail: str = "") -> None:
        self._conditions[name] = Condition(ok, detail)

    @property
    def ready(self) -> bool:
        return all(condition.ok for condition in self._conditions.values())

    def failing(self) -> dict[str, str]:
        return {name: c.detail for name, c in self._conditions.items() if not c.ok}

    def snapshot(self) -> dict[str, Condition]:
        return dict(self._conditions)
