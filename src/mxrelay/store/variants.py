"""The seam between the store and the MIME pipeline: how a message is split for delivery.

A message is stored once, as received. At accept time a plan decides which recipients get which
copy (a variant = recipients + the names of the transforms to apply, e.g. the calendar parts
stripped for recipients that Graph would misroute); at every delivery attempt a render rebuilds
that copy's bytes from the stored ones, so a retry sends exactly what the first attempt sent.

`plan_variants()` and `render_variant()` are the seam's default (one variant, no transforms); with
a calendar policy the runtime fills it from the pipeline (`runtime.queued.calendar_variants`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mxrelay.mime.pipeline import UnknownTransform


@dataclass(frozen=True, slots=True)
class VariantPlan:
    variant: int
    recipients: tuple[str, ...]
    transforms: tuple[str, ...] = ()
    report: tuple[str, ...] = ()


def plan_variants(data: bytes, recipients: tuple[str, ...]) -> tuple[VariantPlan, ...]:
    """The seam's default plan: one variant, every recipient, no transform."""
    del data  # the default plan does not look at the message
    return (VariantPlan(0, recipients),)


def render_variant(data: bytes, transforms: tuple[str, ...]) -> bytes:
    """The bytes of a variant, rebuilt from the stored message (pure and deterministic)."""
    if transforms:
        raise UnknownTransform(f"cannot apply transforms {', '.join(transforms)}")
    return data
