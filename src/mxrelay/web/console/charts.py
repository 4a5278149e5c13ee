"""Small bar charts for the summary page, drawn on the server as SVG geometry.

Pure: counts in, rectangles out. The page writes them as an inline `<svg>` with attributes only
(no `style`, which the console's policy does not allow inline) and a text alternative, so a chart
costs no script and no request, and reads the same without colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 240
HEIGHT = 48
GAP = 1.0


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    bars: tuple[Bar, ...]
    total: int
    peak: int
    width: int = WIDTH
    height: int = HEIGHT


def bar_chart(counts: Sequence[int], labels: Sequence[str]) -> Chart:
    """One bar per count, scaled to the largest; a zero count draws a hairline so the time
    axis stays visible."""
    peak = max(counts, default=0)
    slot = WIDTH / max(len(counts), 1)
    bars = []
    for index, (count, label) in enumerate(zip(counts, labels, strict=True)):
        height = max(1.0, HEIGHT * count / peak) if peak and count else 0.5
        bars.append(
            Bar(
                x=round(index * slot, 2),
                y=round(HEIGHT - height, 2),
                width=round(max(slot - GAP, 0.5), 2),
                height=round(height, 2),
                count=count,
                label=label,
            )
        )
    return Chart(tuple(bars), sum(counts), peak)
