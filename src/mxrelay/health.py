"""Readiness and status: named conditions that stages report on, read by /readyz and /healthz.

One `Health` object is created by the application and handed to each stage that has something to
say (the SMTP listener, the resolver, the store, the delivery worker, the Graph transport, the
delivery process). Each condition is either about readiness or about status:

- readiness (`READINESS`) answers one question: can this replica accept and store mail? Only the
  SMTP listener and the store answer it. A false one makes /readyz 503 and names it, so the
  Service sends new connections elsewhere and `kubectl describe` shows why.
- everything else is status: a Graph credential or permission fault, the delivery worker's
  configuration fault, a delivery process that is restarting, a resolver that has not answered.
  Status shows in /healthz (and in /readyz's body), beside the metrics and log lines of the stage
  that reports it, and never makes the replica unready: a store-and-forward relay keeps accepting
  while delivery is broken (mail is held, not lost), and a delivery fault is the same on every
  replica, so letting it into readiness would empty the Service and refuse every application's
  connection. The resolver is status too: replicas usually share one (the cluster's), so a dead
  resolver would take them all out at once, while a relay without one still accepts mail for
  trusted domains and cached verdicts and answers `451` (retried by clients) for the rest.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ConditionName(enum.StrEnum):
    """Every condition a stage reports on, by the name /healthz and /readyz show."""

    SMTP = "smtp"
    """The SMTP listener accepts connections (readiness)."""
    STORE = "store"
    """The store takes writes (readiness)."""
    DNS = "dns"
    """The resolver answered lately."""
    DELIVERY = "delivery"
    """The delivery worker is not held by a transport's configuration fault."""
    GRAPH = "graph"
    """Graph's credentials and permissions work."""
    DELIVERY_PROCESS = "delivery_process"
    """The delivery process runs; its own conditions show as `delivery_process:<name>`."""


READINESS = frozenset({ConditionName.SMTP, ConditionName.STORE})
"""The conditions /readyz depends on: the listener and the store. Any other name is status."""


@dataclass(frozen=True, slots=True)
class Condition:
    ok: bool
    detail: str

    def as_json(self, name: str) -> dict[str, object]:
        return {"ok": self.ok, "detail": self.detail, "readiness": name in READINESS}


class Health:
    """Mutable, but owned: created in app.py and passed to stages explicitly (never global)."""

    def __init__(self) -> None:
        self._conditions: dict[str, Condition] = {}

    def set(self, name: ConditionName, ok: bool, detail: str = "") -> None:
        self._conditions[name.value] = Condition(ok, detail)

    def set_reported(
        self, process: ConditionName, name: ConditionName, ok: bool, detail: str = ""
    ) -> None:
        """A condition another process reported, under its name (`delivery_process:store`):
        status only, never the relay's own readiness condition of the same name."""
        self._conditions[f"{process.value}:{name.value}"] = Condition(ok, detail)

    @property
    def ready(self) -> bool:
        """Can this replica accept and store mail (every readiness condition holds)?"""
        return not self.unready()

    def unready(self) -> dict[str, str]:
        """The readiness conditions that fail, with their details (what /readyz names)."""
        return {
            name: c.detail for name, c in self._conditions.items() if not c.ok and name in READINESS
        }

    def degraded(self) -> dict[str, str]:
        """The status conditions that fail: shown, never a reason to be unready."""
        return {
            name: c.detail
            for name, c in self._conditions.items()
            if not c.ok and name not in READINESS
        }

    def failing(self) -> dict[str, str]:
        """Every condition that fails, readiness or status."""
        return {name: c.detail for name, c in self._conditions.items() if not c.ok}

    def snapshot(self) -> dict[str, Condition]:
        return dict(self._conditions)
