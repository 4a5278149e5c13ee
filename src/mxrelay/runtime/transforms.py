"""The transform stage, wired: whether messages are split by the ICS policy, and what is counted.

`ics_policy` is the one decision, for every mode: the parsed `MXRELAY_ICS_STRIP` and
`MXRELAY_ICS_ACTION`, or None when no recipient is in scope (then no message is split, and a
stored variant that names a transform is refused rather than rebuilt). Passthrough splits each
transaction before it goes upstream (`passthrough_variants`); the queued modes plan the variants
at accept time and rebuild each one at every attempt through the store's variant seam
(`store_variants`, `store/variants.py`). `record_variants` turns what the split did into metrics,
so that the `mime` package itself stays pure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mxrelay.config import MimeSettings
from mxrelay.metrics import Metrics
from mxrelay.mime.pipeline import (
    IcsPolicy,
    Variant,
    apply_transforms,
    split_variants,
    split_variants_async,
)
from mxrelay.model import ScopeKind, Transaction
from mxrelay.sinks.passthrough import VariantPlan
from mxrelay.store import variants

Plan = Callable[[bytes, tuple[str, ...]], tuple[variants.VariantPlan, ...]]
"""(message, accepted recipients) → the variants the store keeps."""
Render = Callable[[bytes, tuple[str, ...]], bytes]
"""(stored message, a variant's transform names) → the bytes that variant delivers."""


def ics_policy(settings: MimeSettings) -> IcsPolicy | None:
    """How messages are split, or None when MXRELAY_ICS_STRIP is `off`. ValueError for a list
    that means nothing (which the settings already refuse when they load)."""
    policy = IcsPolicy.from_settings(settings)
    return None if policy.scope.kind is ScopeKind.OFF else policy


def passthrough_variants(policy: IcsPolicy | None, metrics: Metrics) -> VariantPlan | None:
    """Passthrough's split: one upstream transaction per variant, counted; None: no split."""
    if policy is None:
        return None

    async def plan(transaction: Transaction) -> Sequence[Variant]:
        split = await split_variants_async(transaction.data, transaction.recipients, policy)
        record_variants(metrics, split)
        return split

    return plan


def store_variants(policy: IcsPolicy | None, metrics: Metrics | None) -> tuple[Plan, Render]:
    """The store's variant seam filled by the split (or the seam's single-variant default).
    Without `metrics` (the delivery process, which only renders) nothing is counted."""
    if policy is None:
        return variants.plan_variants, variants.render_variant

    def plan(data: bytes, recipients: tuple[str, ...]) -> tuple[variants.VariantPlan, ...]:
        split = split_variants(data, recipients, policy)
        if metrics is not None:
            record_variants(metrics, split)
        return tuple(
            variants.VariantPlan(
                number,
                variant.recipients,
                variant.transforms,
                (variant.report.describe(),) if variant.in_scope else (),
            )
            for number, variant in enumerate(split)
        )

    def render(data: bytes, transforms: tuple[str, ...]) -> bytes:
        return apply_transforms(data, transforms, limits=policy.limits)

    return plan, render


def record_variants(metrics: Metrics, split: Sequence[Variant]) -> None:
    """Count what the calendar stage did (one call per message)."""
    for variant in split:
        report = variant.report
        if report.changed:
            metrics.ics_messages_transformed.labels(action=report.action).inc()
            metrics.ics_parts_transformed.labels(action=report.action).inc(len(report.parts))
        if variant.in_scope and report.skipped:
            metrics.mime_unparsed.inc()
