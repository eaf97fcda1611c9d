"""Bar charts as inline SVG, drawn by the server: readable without JavaScript. Pure.

Written by hand: what is needed is a few ``<rect>`` elements, and a charting library
would bring a browser script or an image pipeline for it. Each chart carries its
``<title>`` and ``<desc>`` (named by ``aria-labelledby``), each bar a ``<title>`` with
its count, and ``table_rows`` gives the same numbers for a table beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

WIDTH = 840  # viewBox units; the SVG scales to its box
HEIGHT = 180
LEFT = 36  # room for the y axis's labels
BOTTOM = 20  # room for the day labels


@dataclass(frozen=True, slots=True)
class Series:
    """One kind of bar (stacked, or side by side, in the order given): its name, CSS class and
    values by slot (an hour, a week). Values are counts, or any number (a median wait in hours)."""

    name: str
    css_class: str
    counts: Mapping[datetime, float]


@dataclass(frozen=True, slots=True)
class Scale:
    """What one bar stands for: its name (``hour``), how a slot reads, and which slots get a tick
    label and a divider line on the x axis."""

    name: str
    label: Callable[[datetime], str]
    tick: Callable[[datetime], str | None]


def _hour_label(hour: datetime) -> str:
    return f"{hour:%a %d %b %H}:00 UTC"


def _week_label(monday: datetime) -> str:
    year, week, _ = monday.isocalendar()
    return f"week {year}-W{week:02d} (from {monday:%a %d %b})"


HOURLY = Scale("hour", _hour_label, lambda h: f"{h:%a %d}" if h.hour == 0 else None)
WEEKLY = Scale("week", _week_label, lambda m: f"{m:%d %b}")


def hours_ending(end: datetime, days: int = 7) -> list[datetime]:
    """The starts of the ``days * 24`` whole UTC hours up to and including the one ``end`` is in."""
    last = end.replace(minute=0, second=0, microsecond=0)
    return [last - timedelta(hours=n) for n in range(days * 24 - 1, -1, -1)]


def _top(peak: int) -> int:
    """A round value at or above ``peak`` for the y axis (1, 2, 5, 10, 20, 50 ...)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= peak:
                return step * m
        step *= 10


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def bar_chart(
    chart_id: str,
    title: str,
    hours: Sequence[datetime],
    series: Sequence[Series],
    *,
    scale: Scale = HOURLY,
    stacked: bool = True,
) -> Markup:
    """A bar chart, one slot per hour (or per ``scale``'s unit), as an ``<svg>`` element: the
    series stacked in each slot, or side by side (``stacked=False``: counts that do not add up,
    such as members who joined and who left)."""
    slots = hours
    totals = {s.name: sum(s.counts.get(h, 0) for h in slots) for s in series}
    if stacked:
        peak = max((sum(s.counts.get(h, 0) for s in series) for h in slots), default=0)
    else:
        peak = max((s.counts.get(h, 0) for s in series for h in slots), default=0)
    top = _top(max(peak, 1))
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM
    slot = plot_w / max(len(slots), 1)
    summary = ", ".join(f"{_number(n)} {name}" for name, n in totals.items())
    span = f"{scale.label(slots[0])} to {scale.label(slots[-1])}" if slots else f"no {scale.name}s"
    desc = f"Per {scale.name}, {span}: {summary}. Busiest {scale.name}: {_number(peak)}."
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>',
        f'<line class="axis" x1="{LEFT}" y1="{plot_h}" x2="{WIDTH}" y2="{plot_h}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="10" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{LEFT - 4}" y="{plot_h}" text-anchor="end">0</text>',
    ]
    bar_w = slot if stacked else slot / max(len(series), 1)
    for i, hour in enumerate(slots):
        x = LEFT + i * slot
        tick = scale.tick(hour)
        if tick is not None:
            parts.append(f'<line class="day" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{plot_h}"/>')
            parts.append(f'<text class="tick" x="{x + 2:.1f}" y="{HEIGHT - 6}">{escape(tick)}</text>')
        base = float(plot_h)
        for k, s in enumerate(series):
            n = s.counts.get(hour, 0)
            if n <= 0:
                continue
            h = n / top * plot_h
            if stacked:
                base -= h
                left, y = x, base
            else:
                left, y = x + k * bar_w, plot_h - h
            parts.append(
                f'<rect class="{escape(s.css_class)}" x="{left + 0.5:.1f}" y="{y:.1f}" '
                f'width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}" data-count="{_number(n)}">'
                f"<title>{escape(scale.label(hour))}: {_number(n)} {escape(s.name)}</title></rect>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def table_rows(hours: Sequence[datetime], series: Sequence[Series]) -> list[tuple[str, list[int]]]:
    """The chart's numbers for a table: each hour with any count, and its count in each series."""
    rows = []
    for hour in hours:
        counts = [s.counts.get(hour, 0) for s in series]
        if any(counts):
            rows.append((_label(hour), counts))
    return rows


def _label(hour: datetime) -> str:
    return f"{hour:%a %d %b %H}:00"  # the table's column says UTC
