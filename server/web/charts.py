"""Bar charts as inline SVG, drawn by the server: readable without JavaScript. Pure.

Written by hand: what is needed is a few ``<rect>`` elements, and a charting library
would bring a browser script or an image pipeline for it. Each chart carries its
``<title>`` and ``<desc>`` (named by ``aria-labelledby``), each bar a ``<title>`` with
its count, and ``table_rows`` gives the same numbers for a table beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

WIDTH = 840  # viewBox units; the SVG scales to its box
HEIGHT = 180
LEFT = 36  # room for the y axis's labels
BOTTOM = 20  # room for the day labels


@dataclass(frozen=True, slots=True)
class Series:
    """One kind of bar (stacked in the order given): its name, CSS class and counts by hour."""

    name: str
    css_class: str
    counts: Mapping[datetime, int]


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


def bar_chart(chart_id: str, title: str, hours: Sequence[datetime], series: Sequence[Series]) -> Markup:
    """A stacked bar chart, one bar per hour, as an ``<svg>`` element."""
    totals = {s.name: sum(s.counts.get(h, 0) for h in hours) for s in series}
    peak = max((sum(s.counts.get(h, 0) for s in series) for h in hours), default=0)
    top = _top(max(peak, 1))
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM
    slot = plot_w / max(len(hours), 1)
    summary = ", ".join(f"{n} {name}" for name, n in totals.items())
    span = f"{_label(hours[0])} to {_label(hours[-1])}" if hours else "no hours"
    desc = f"Per hour, {span} UTC: {summary}. Busiest hour: {peak}."
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>',
        f'<line class="axis" x1="{LEFT}" y1="{plot_h}" x2="{WIDTH}" y2="{plot_h}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="10" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{LEFT - 4}" y="{plot_h}" text-anchor="end">0</text>',
    ]
    for i, hour in enumerate(hours):
        x = LEFT + i * slot
        if hour.hour == 0:
            parts.append(f'<line class="day" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{plot_h}"/>')
            parts.append(f'<text class="tick" x="{x + 2:.1f}" y="{HEIGHT - 6}">{hour:%a %d}</text>')
        base = float(plot_h)
        for s in series:
            n = s.counts.get(hour, 0)
            if n <= 0:
                continue
            h = n / top * plot_h
            base -= h
            parts.append(
                f'<rect class="{escape(s.css_class)}" x="{x + 0.5:.1f}" y="{base:.1f}" width="{max(slot - 1, 1):.1f}" '
                f'height="{h:.1f}" data-count="{n}">'
                f"<title>{escape(_label(hour))} UTC: {n} {escape(s.name)}</title></rect>"
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
    return f"{hour:%a %d %b %H}:00"
