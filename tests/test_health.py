"""The conditions by name: what /healthz and /readyz show, and which of them is readiness."""

from __future__ import annotations

from mxrelay.health import READINESS, ConditionName, Health


def test_the_names_are_the_ones_the_probes_show() -> None:
    assert sorted(ConditionName) == [
        "delivery",
        "delivery_process",
        "dns",
        "graph",
        "smtp",
        "store",
    ]
    assert {"smtp", "store"} == READINESS


def test_only_the_listener_and_the_store_decide_readiness() -> None:
    health = Health()
    health.set(ConditionName.GRAPH, False, "consent withdrawn")
    health.set(ConditionName.DNS, False, "resolver not answering")
    assert (health.ready, health.unready()) == (True, {})
    assert health.degraded() == {"graph": "consent withdrawn", "dns": "resolver not answering"}
    health.set(ConditionName.STORE, False, "read-only")
    assert (health.ready, health.degraded()) == (
        False,
        {"graph": "consent withdrawn", "dns": "resolver not answering"},
    )
    assert health.unready() == {"store": "read-only"}
    assert set(health.failing()) == {"graph", "dns", "store"}


def test_a_condition_another_process_reports_is_status_under_its_name() -> None:
    health = Health()
    health.set(ConditionName.STORE, True, "sqlite")
    health.set_reported(ConditionName.DELIVERY_PROCESS, ConditionName.STORE, False, "gone")
    assert health.ready
    assert health.degraded() == {"delivery_process:store": "gone"}
    snapshot = health.snapshot()
    assert (
        snapshot["delivery_process:store"].as_json("delivery_process:store")["readiness"] is False
    )
    assert snapshot["store"].as_json("store") == {"ok": True, "detail": "sqlite", "readiness": True}
    assert all(type(name) is str for name in snapshot)  # plain text, as JSON shows it
