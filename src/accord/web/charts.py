"""Small charts drawn on the server as SVG: the geometry here, the markup in the
`_chart.html` macro. SVG's own attributes place everything (the Content-Security-Policy
allows no inline style or script), so a chart is plain, cacheable, testable markup."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

WIDTH, HEIGHT = 320, 150
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 22  # margins: labels left and below
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Tick:
    position: float  # y for the value axis, x for the time axis
    label: str


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # what a reader hovering it sees: "14:00: 1,204"


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    kind: str  # bars or line
    values: tuple[float | None, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    bars: tuple[Bar, ...]
    lines: tuple[str, ...]  # SVG `points` of each run of values without a gap
    points: tuple[Point, ...]
    threshold_y: float | None  # where the threshold runs, when it is on the chart
    empty: bool  # nothing in the window


def chart(
    kind: str,
    values: Sequence[float | None],
    starts: Sequence[datetime],
    *,
    unit: str = "count",
    threshold: float | None = None,
    label_every: int = 6,
) -> Chart:
    """The geometry of `values` (one a bucket, starting at `starts`) as bars or a line;
    `unit` is count or seconds (for the labels). A threshold beyond twice the largest
    value is left off, so a quiet system's chart is not flattened to nothing."""
    known = [v for v in values if v is not None]
    top = max(known, default=0.0)
    shown_threshold = threshold if threshold is not None and threshold <= 2 * max(top, 1) else None
    axis = nice_ceiling(max(top, shown_threshold or 0.0))
    step = PLOT_W / max(len(values), 1)

    def y_of(value: float) -> float:
        return TOP + PLOT_H - (value / axis) * PLOT_H

    def x_of(i: int) -> float:
        return LEFT + step * i

    # a count axis of 1 has no whole middle: only 0 and 1 are labelled
    fractions = (0, 1) if unit == "count" and axis < 2 else (0, 0.5, 1)
    y_ticks = tuple(Tick(round(y_of(axis * f), 1), shown(axis * f, unit)) for f in fractions)
    x_ticks = tuple(
        Tick(round(x_of(i) + step / 2, 1), start.strftime("%H:%M"))
        for i, start in enumerate(starts)
        if i % label_every == 0
    )
    bars: list[Bar] = []
    points: list[Point] = []
    lines: list[str] = []
    run: list[str] = []
    for i, (value, start) in enumerate(zip(values, starts, strict=True)):
        label = f"{start:%H:%M}: {'none' if value is None else shown(value, unit)}"
        if kind == "bars":
            height = 0.0 if value is None else PLOT_H * value / axis
            bars.append(
                Bar(
                    round(x_of(i) + step * 0.1, 1),
                    round(TOP + PLOT_H - height, 1),
                    round(step * 0.8, 1),
                    round(height, 1),
                    label,
                )
            )
            continue
        if value is None:
            if run:
                lines.append(" ".join(run))
            run = []
            continue
        point = Point(round(x_of(i) + step / 2, 1), round(y_of(value), 1), label)
        points.append(point)
        run.append(f"{point.x},{point.y}")
    if run:
        lines.append(" ".join(run))
    return Chart(
        kind,
        tuple(values),
        y_ticks,
        x_ticks,
        tuple(bars),
        tuple(lines),
        tuple(points),
        None if shown_threshold is None else round(y_of(shown_threshold), 1),
        not known or (kind == "bars" and top == 0),
    )


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten at or above `value` (1 for 0)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return float(next(f * power for f in (1, 2, 5, 10) if f * power >= value))


def shown(value: float, unit: str) -> str:
    """A figure as a label: counts with thousands separators (or k, M), seconds as
    ms, s, min or h."""
    if unit == "seconds":
        if value == 0:
            return "0 s"
        if value < 1:
            return f"{value * 1000:.0f} ms"
        if value < 120:
            return f"{value:.1f} s".replace(".0 s", " s")
        if value < 7200:
            return f"{value / 60:.1f} min".replace(".0 min", " min")
        return f"{value / 3600:.1f} h".replace(".0 h", " h")
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:,.0f}"
