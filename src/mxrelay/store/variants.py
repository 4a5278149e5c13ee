"""The seam between the store and issue 3's MIME pipeline: how a message is split for delivery.

A message is stored once, as received. At accept time `plan_variants()` decides which recipients get
which copy (a variant = recipients + the transforms to apply, e.g. the calendar parts stripped for
recipients that Graph would misroute); at every delivery attempt `render_variant()` rebuilds that
copy's bytes from the stored ones, so a retry sends exactly what the first attempt sent.

Until `mxrelay.mime.pipeline` exists, every message has one variant with no transforms; plugging the
pipeline in means replacing the bodies of these two functions.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnknownTransform(ValueError):
    """A stored variant names a transform this version cannot apply."""


@dataclass(frozen=True, slots=True)
class VariantPlan:
    variant: int
    recipients: tuple[str, ...]
    transforms: tuple[str, ...] = ()
    report: tuple[str, ...] = ()


def plan_variants(data: bytes, recipients: tuple[str, ...]) -> tuple[VariantPlan, ...]:
    """Split the accepted recipients into variants (today: one, unchanged)."""
    del data  # the MIME pipeline will look at the message
    return (VariantPlan(0, recipients),)


def render_variant(data: bytes, transforms: tuple[str, ...]) -> bytes:
    """The bytes of a variant, rebuilt from the stored message (pure and deterministic)."""
    if transforms:
        raise UnknownTransform(f"cannot apply transforms {', '.join(transforms)}")
    return data
