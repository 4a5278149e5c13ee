"""The stage plan as a table: for every delivery mode and each setting that shapes the stages,
which sink, which transport, where delivery runs, whether new mail is held, whether messages are
split, and Graph's SMTP-time rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import pytest

from mxrelay.config import Settings, load_settings
from mxrelay.model import DeliveryMode, IcsAction, IcsScope
from mxrelay.runtime.plan import (
    DeliveryPlace,
    SinkKind,
    StagePlan,
    StartupError,
    TransportKind,
    plan_stages,
)

MiB = 1024 * 1024

UPSTREAM = {"MXRELAY_UPSTREAM": "smtp://127.0.0.1:2525"}
GRAPH = {
    "MXRELAY_DELIVERY": "graph",
    "MXRELAY_GRAPH_TENANT_ID": "tenant",
    "MXRELAY_GRAPH_CLIENT_ID": "client",
    "MXRELAY_GRAPH_CLIENT_SECRET": "secret",
}
MODES: Mapping[str, Mapping[str, str]] = {
    "passthrough": {"MXRELAY_DELIVERY": "passthrough", **UPSTREAM},
    "smtp": {"MXRELAY_DELIVERY": "smtp", **UPSTREAM},
    "graph": GRAPH,
    "hold": {"MXRELAY_DELIVERY": "hold"},
}


def settings(mode: str, **extra: str) -> Settings:
    return load_settings({**MODES[mode], **extra}, hostname=lambda: "relay.example.net")


class Row(NamedTuple):
    mode: str
    extra: Mapping[str, str]
    sink: SinkKind
    transport: TransportKind | None
    delivery: DeliveryPlace
    hold: bool


ROWS = [
    Row("passthrough", {}, SinkKind.PASSTHROUGH, None, DeliveryPlace.NOWHERE, False),
    Row(
        "passthrough",
        {"MXRELAY_DELIVERY_PROCESS": "false"},
        SinkKind.PASSTHROUGH,
        None,
        DeliveryPlace.NOWHERE,
        False,
    ),
    Row(
        "smtp", {}, SinkKind.QUEUED, TransportKind.SMARTHOST, DeliveryPlace.DELIVERY_PROCESS, False
    ),
    Row(
        "smtp",
        {"MXRELAY_DELIVERY_PROCESS": "true"},
        SinkKind.QUEUED,
        TransportKind.SMARTHOST,
        DeliveryPlace.DELIVERY_PROCESS,
        False,
    ),
    Row(
        "smtp",
        {"MXRELAY_DELIVERY_PROCESS": "false"},
        SinkKind.QUEUED,
        TransportKind.SMARTHOST,
        DeliveryPlace.IN_PROCESS,
        False,
    ),
    Row("graph", {}, SinkKind.QUEUED, TransportKind.GRAPH, DeliveryPlace.IN_PROCESS, False),
    Row(
        "graph",
        {"MXRELAY_DELIVERY_PROCESS": "true"},
        SinkKind.QUEUED,
        TransportKind.GRAPH,
        DeliveryPlace.IN_PROCESS,
        False,
    ),
    Row(
        "graph",
        {"MXRELAY_DELIVERY_PROCESS": "false"},
        SinkKind.QUEUED,
        TransportKind.GRAPH,
        DeliveryPlace.IN_PROCESS,
        False,
    ),
    Row("hold", {}, SinkKind.QUEUED, None, DeliveryPlace.NOWHERE, True),
    Row(
        "hold",
        {"MXRELAY_DELIVERY_PROCESS": "false"},
        SinkKind.QUEUED,
        None,
        DeliveryPlace.NOWHERE,
        True,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.mode}-{'-'.join(r.extra.values())}")
def test_each_mode_runs_its_stages(row: Row) -> None:
    plan = plan_stages(settings(row.mode, **row.extra))
    assert plan.mode is DeliveryMode(row.mode)
    assert (plan.sink, plan.transport, plan.delivery, plan.hold) == (
        row.sink,
        row.transport,
        row.delivery,
        row.hold,
    )


def test_every_mode_has_a_row() -> None:
    assert {DeliveryMode(row.mode) for row in ROWS} == set(DeliveryMode)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_the_defaults_split_no_message_and_check_no_sender(mode: str) -> None:
    plan = plan_stages(settings(mode))
    assert plan.transform is None
    assert plan.allowed_senders == ()


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize(
    ("scope", "action"), [("all", "strip"), ("Boss@Example.com,@graph.example", "attach")]
)
def test_the_ics_policy_splits_messages_in_every_mode(mode: str, scope: str, action: str) -> None:
    plan = plan_stages(settings(mode, MXRELAY_ICS_STRIP=scope, MXRELAY_ICS_ACTION=action))
    assert plan.transform is not None
    assert plan.transform.scope == IcsScope.from_setting(tuple(scope.lower().split(",")))
    assert plan.transform.action is IcsAction(action)


def test_an_ics_policy_that_means_nothing_cannot_start() -> None:
    loaded = settings("hold")
    broken = loaded.model_copy(
        update={"mime": loaded.mime.model_copy(update={"ics_strip": ("all", "@x.example")})}
    )
    with pytest.raises(StartupError, match="MXRELAY_ICS_STRIP: 'all' cannot be combined"):
        plan_stages(broken)


@pytest.mark.parametrize(
    ("mode", "allowed"),
    [
        ("graph", ("app@contoso.example", "@contoso.example")),
        ("smtp", ()),
        ("hold", ()),
        ("passthrough", ()),
    ],
)
def test_the_sender_allow_list_is_checked_at_smtp_time_in_graph_mode_only(
    mode: str, allowed: tuple[str, ...]
) -> None:
    env = {"MXRELAY_GRAPH_ALLOWED_SENDERS": "App@Contoso.example,@contoso.example"}
    assert plan_stages(settings(mode, **env)).allowed_senders == allowed


@pytest.mark.parametrize(
    ("mode", "extra", "limit"),
    [
        ("graph", {}, 3 * MiB),
        ("graph", {"MXRELAY_MAX_MESSAGE_SIZE": "2MiB"}, 2 * MiB),
        ("graph", {"MXRELAY_GRAPH_MAX_MESSAGE_SIZE": "0"}, 25 * MiB),
        ("smtp", {}, 25 * MiB),
        ("hold", {"MXRELAY_GRAPH_MAX_MESSAGE_SIZE": "1MiB"}, 25 * MiB),
        ("passthrough", {"MXRELAY_MAX_MESSAGE_SIZE": "10MiB"}, 10 * MiB),
    ],
)
def test_graph_mode_caps_the_message_size(mode: str, extra: dict[str, str], limit: int) -> None:
    assert plan_stages(settings(mode, **extra)).size_limit == limit


def test_the_plan_is_a_value() -> None:
    """Pure: the same settings give equal plans, and a plan cannot be changed afterwards."""
    plan = plan_stages(settings("smtp"))
    assert plan == plan_stages(settings("smtp"))
    with pytest.raises(AttributeError):
        plan.hold = True  # type: ignore[misc]
    assert isinstance(plan, StagePlan)
