"""The transform stage's wiring: whether a message is split (one decision for every mode), the
two seams built from it, and what is counted."""

from __future__ import annotations

import pytest

from mxrelay.config import load_settings
from mxrelay.metrics import Metrics
from mxrelay.mime.pipeline import IcsPolicy, UnknownTransform, split_variants
from mxrelay.model import IcsAction
from mxrelay.runtime.transforms import (
    ics_policy,
    passthrough_variants,
    record_variants,
    store_variants,
)
from mxrelay.store.variants import plan_variants, render_variant
from tests.store.helpers import transaction
from tests.support.mime_trees import CORPUS

INVITE = (CORPUS / "nodemailer-calcom-request.eml").read_bytes()
BROKEN = (
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/calendar\r\n\r\nX"
)
RECIPIENTS = ("a@x.example", "b@y.example")


def _policy(scope: str, action: str = "strip") -> IcsPolicy | None:
    env = {"MXRELAY_ICS_STRIP": scope, "MXRELAY_ICS_ACTION": action}
    return ics_policy(load_settings(env).mime)


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.mark.parametrize(
    ("scope", "action", "splits"),
    [
        ("off", "strip", False),
        ("all", "strip", True),
        ("all", "attach", True),
        ("a@x.example", "strip", True),
        ("@y.example", "attach", True),
    ],
)
def test_messages_are_split_unless_no_recipient_is_in_scope(
    scope: str, action: str, splits: bool
) -> None:
    policy = _policy(scope, action)
    assert (policy is not None) is splits
    if policy is not None:
        assert policy.action is IcsAction(action)


def test_a_list_that_means_nothing_is_refused() -> None:
    mime = load_settings({}).mime.model_copy(update={"ics_strip": ("off", "@x.example")})
    with pytest.raises(ValueError, match="cannot be combined"):
        ics_policy(mime)


def test_without_a_policy_the_seams_are_the_defaults() -> None:
    assert passthrough_variants(None, Metrics()) is None
    assert store_variants(None, Metrics()) == (plan_variants, render_variant)
    _, render = store_variants(None, None)
    with pytest.raises(UnknownTransform):  # mail stored while a policy was set is not rebuilt
        render(INVITE, ("ics:strip",))


async def test_passthrough_splits_each_transaction_and_counts_it() -> None:
    metrics = Metrics()
    plan = passthrough_variants(_policy("a@x.example"), metrics)
    assert plan is not None
    stripped, whole = await plan(transaction(recipients=RECIPIENTS, data=INVITE))
    assert (stripped.recipients, whole.recipients) == (("a@x.example",), ("b@y.example",))
    assert stripped.transformed
    assert whole.data == INVITE
    assert _value(metrics, "mxrelay_ics_messages_transformed_total", action="strip") == 1


def test_the_store_plans_variants_and_counts_them_only_when_asked() -> None:
    policy = _policy("a@x.example")
    metrics = Metrics()
    plan, _ = store_variants(policy, metrics)
    stripped, whole = plan(INVITE, RECIPIENTS)
    assert (stripped.variant, stripped.recipients, stripped.transforms) == (
        0,
        ("a@x.example",),
        ("ics:strip",),
    )
    assert stripped.report  # what the transform did, for the message log
    assert (whole.variant, whole.recipients, whole.transforms, whole.report) == (
        1,
        ("b@y.example",),
        (),
        (),
    )
    assert _value(metrics, "mxrelay_ics_messages_transformed_total", action="strip") == 1
    uncounted, _ = store_variants(policy, None)  # the delivery process only renders
    assert uncounted(INVITE, RECIPIENTS) == (stripped, whole)


def test_broken_mime_is_counted() -> None:
    metrics = Metrics()
    policy = _policy("a@x.example")
    assert policy is not None
    variants = split_variants(BROKEN, RECIPIENTS, policy)
    record_variants(metrics, variants)
    assert metrics.registry.get_sample_value("mxrelay_mime_unparsed_total") == 1


def test_metrics_from_reports() -> None:
    metrics = Metrics()
    policy = _policy("a@x.example")
    assert policy is not None
    variants = split_variants(INVITE, RECIPIENTS, policy)
    record_variants(metrics, variants)
    value = metrics.registry.get_sample_value
    assert value("mxrelay_ics_messages_transformed_total", {"action": "strip"}) == 1
    assert value("mxrelay_ics_parts_transformed_total", {"action": "strip"}) == 2
