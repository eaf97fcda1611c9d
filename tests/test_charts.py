"""The server-drawn SVG charts (pure) and the hourly counting beneath them (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET  # our own markup, parsed to check it is well formed
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from server.days import count_per_hour
from server.federation import delivery
from server.inbox import store as inbox_store
from server.tables import inbox_items
from server.web.charts import Series, _top, bar_chart, hours_ending, table_rows

SVG = "{http://www.w3.org/2000/svg}"
END = datetime(2026, 3, 8, 13, 40, tzinfo=UTC)


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def test_hours_ending_are_seven_days_of_whole_hours_ending_with_the_current_one():
    hours = hours_ending(END)
    assert len(hours) == 168 and hours[-1] == datetime(2026, 3, 8, 13, tzinfo=UTC)
    assert hours[0] == datetime(2026, 3, 1, 14, tzinfo=UTC)
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(hours))


def test_bars_stack_per_hour_with_their_counts_and_the_chart_is_described():
    hours = hours_ending(END)
    ok = Series("succeeded", "ok", {hours[0]: 3, hours[100]: 7})
    bad = Series("failed", "failed", {hours[100]: 2, hours[167]: 1})
    svg = _parse(bar_chart("c1", "Deliveries <per hour>", hours, [ok, bad]))
    assert svg.get("role") == "img" and svg.get("aria-labelledby") == "c1-title c1-desc"
    assert svg.find(f"{SVG}title").text == "Deliveries <per hour>"  # escaped in the markup, read back whole
    assert "10 succeeded, 3 failed" in svg.find(f"{SVG}desc").text and "Busiest hour: 9" in svg.find(f"{SVG}desc").text
    rects = [
        (r.get("class"), int(r.get("data-count")), float(r.get("y")), float(r.get("height")))
        for r in svg.iter(f"{SVG}rect")
    ]
    assert [(c, n) for c, n, _, _ in rects] == [("ok", 3), ("ok", 7), ("failed", 2), ("failed", 1)]
    # Hour 100: the failed bar sits on top of the succeeded one; heights are in proportion (top of axis: 10).
    (_, _, y7, h7), (_, _, y2, h2) = rects[1], rects[2]
    assert abs(y2 + h2 - y7) < 0.2 and abs(h7 / h2 - 3.5) < 0.01
    assert all(r.find(f"{SVG}title") is not None for r in svg.iter(f"{SVG}rect"))
    assert [t.text for t in svg.iter(f"{SVG}text")][:2] == ["10", "0"]


def test_an_empty_chart_still_says_what_it_is():
    svg = _parse(bar_chart("e", "Inbox", hours_ending(END), [Series("received", "ok", {})]))
    assert list(svg.iter(f"{SVG}rect")) == [] and "0 received" in svg.find(f"{SVG}desc").text


def test_the_axis_top_is_a_round_number_at_or_above_the_peak():
    assert [_top(n) for n in (1, 2, 3, 6, 10, 11, 260)] == [1, 2, 5, 10, 10, 20, 500]


def test_table_rows_are_the_hours_with_anything():
    hours = hours_ending(END)
    rows = table_rows(hours, [Series("a", "ok", {hours[5]: 2}), Series("b", "failed", {hours[9]: 1})])
    assert rows == [("Sun 01 Mar 19:00", [2, 0]), ("Sun 01 Mar 23:00", [0, 1])]


async def test_count_per_hour_groups_by_utc_hour_on_either_database(db):
    base = datetime(2026, 3, 8, 10, 0, tzinfo=UTC)
    arrived = [base + timedelta(minutes=m) for m in (0, 59, 60, 61, 179)] + [base - timedelta(seconds=1)]
    rows = [
        {
            "activity_uri": f"https://a.example/activities/{n}",
            "actor_uri": "https://a.example/users/a",
            "body": "{}",
            "next_attempt_at": at,
            "created_at": at,
        }
        for n, at in enumerate(arrived)
    ]
    async with db.transaction() as conn:
        await conn.execute(sa.insert(inbox_items), rows)
    async with db.read() as conn:
        got = await count_per_hour(conn, inbox_store.received(), base, base + timedelta(hours=3))
        none = await count_per_hour(conn, delivery.finished("dead"), base, base + timedelta(hours=3))
    assert got == {base: 2, base + timedelta(hours=1): 2, base + timedelta(hours=2): 1}
    assert none == {}
