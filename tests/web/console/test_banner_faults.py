"""Which conditions make the banner, and how loudly (pure)."""

from __future__ import annotations

from mxrelay.health import Condition
from mxrelay.web.console.banner import Severity, faults


def test_failing_conditions_errors_first() -> None:
    found = faults(
        {
            "dns": Condition(False, "no answer"),
            "smtp": Condition(True, "listening"),
            "graph": Condition(False, "AADSTS7000215 " + "x" * 1000),
            "delivery_process:graph": Condition(False, "child says"),
        }
    )
    assert [(f.name, f.severity) for f in found] == [
        ("delivery_process:graph", Severity.ERROR),
        ("graph", Severity.ERROR),
        ("dns", Severity.WARNING),
    ]
    assert found[0].title.endswith("(delivery process)")
    assert len(found[1].detail) == 500
    assert faults({"smtp": Condition(True, "")}) == []
