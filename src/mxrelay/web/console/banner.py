"""Which health conditions the console puts in a banner on every page, and how loudly.

A failing condition stays in the banner until the stage that reported it says it holds again.
Configuration faults (Graph's credentials or permissions, the delivery worker held by a
transport's fault) are what an operator must fix: they come first, as errors. A store or SMTP
listener that fails is an outage of this replica: an error too. The rest (a resolver that has not
answered, a delivery process restarting) is a warning: it usually mends itself.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from mxrelay.health import Condition, ConditionName

ERRORS = frozenset(
    {
        ConditionName.GRAPH.value,
        ConditionName.DELIVERY.value,
        ConditionName.STORE.value,
        ConditionName.SMTP.value,
    }
)

TITLES = {
    ConditionName.GRAPH.value: "Microsoft Graph refuses the relay's credentials or permissions",
    ConditionName.DELIVERY.value: "Delivery is held by a configuration fault",
    ConditionName.STORE.value: "The store does not take writes",
    ConditionName.SMTP.value: "The SMTP listener is not accepting",
    ConditionName.DNS.value: "The DNS resolver has not answered lately",
    ConditionName.DELIVERY_PROCESS.value: "The delivery process is not running",
}

DETAIL_LIMIT = 500
"""Characters of a condition's detail shown (details quote remote replies)."""


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    title: str
    detail: str
    severity: Severity


def faults(conditions: Mapping[str, Condition]) -> list[Fault]:
    """The failing conditions as banner lines, errors first, then by name."""
    found = []
    for name, condition in conditions.items():
        if condition.ok:
            continue
        base = name.rpartition(":")[2]
        severity = Severity.ERROR if base in ERRORS else Severity.WARNING
        title = TITLES.get(base, f"Condition {base} fails")
        if ":" in name:
            title += " (delivery process)"
        found.append(Fault(name, title, condition.detail[:DETAIL_LIMIT], severity))
    return sorted(found, key=lambda f: (f.severity is not Severity.ERROR, f.name))
