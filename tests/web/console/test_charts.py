"""The summary's bar charts: scaled to the largest count, a hairline for an empty bucket."""

from __future__ import annotations

from mxrelay.web.console.charts import HEIGHT, WIDTH, bar_chart


def test_bars_scale_to_the_peak() -> None:
    chart = bar_chart([0, 5, 10], ["a", "b", "c"])
    assert (chart.total, chart.peak) == (15, 10)
    heights = [bar.height for bar in chart.bars]
    assert heights == [0.5, HEIGHT / 2, HEIGHT]
    assert all(bar.y + bar.height == HEIGHT for bar in chart.bars)
    assert chart.bars[-1].x + chart.bars[-1].width <= WIDTH
    empty = bar_chart([0, 0], ["a", "b"])
    assert [bar.height for bar in empty.bars] == [0.5, 0.5]
    assert bar_chart([], []).bars == ()
