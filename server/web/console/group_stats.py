"""``/console/groups/NAME/stats``: how a group is doing, for its owner, its moderators and admins.

The figures of ``kith group stats`` (``groups/stats``, put together by ``groups/figures``)
as five charts drawn by the server as SVG (``web/charts``, no JavaScript), and every
number as one table beside them. Only reads; anyone else gets the console's 403 page.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.errors import BadRequest
from server.groups.figures import DEFAULT_WEEKS, MAX_WEEKS, GroupFigures, duration, monday_midnight, percent
from server.groups.stats import group_figures
from server.web.charts import WEEKLY, Series, bar_chart
from server.web.console.common import Console, console_page
from server.web.console.group import group_page, moderating


def weeks_param(request: Request) -> int:
    """``?weeks=N``: 1 to ``MAX_WEEKS``, ``DEFAULT_WEEKS`` when absent; else 400."""
    raw = request.query_params.get("weeks", "")
    if raw == "":
        return DEFAULT_WEEKS
    if not (len(raw) <= 2 and raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_WEEKS:
        raise BadRequest(f"weeks must be a whole number from 1 to {MAX_WEEKS}")
    return int(raw)


def charts(figures: GroupFigures) -> list[tuple[str, str, object, list[Series]]]:
    """(id, heading, SVG, series) of each chart, in the page's order."""
    weeks = figures.weeks
    slots = [monday_midnight(w.start) for w in weeks]

    def per_week(values: list[float | None]) -> dict:
        return {slot: v for slot, v in zip(slots, values, strict=True) if v}

    active = [Series("active members", "fig-active", per_week([w.active for w in weeks]))]
    members = [
        Series("joined", "fig-joined", per_week([w.joined for w in weeks])),
        Series("left", "fig-left", per_week([w.left for w in weeks])),
        Series("removed (ban, block)", "fig-removed", per_week([w.removed for w in weeks])),
    ]
    posts = [
        Series("new threads", "fig-thread", per_week([w.threads for w in weeks])),
        Series("replies", "fig-reply", per_week([w.replies for w in weeks])),
    ]
    replied = [
        Series("threads with a reply", "fig-replied", per_week([w.replies_to_threads.replied for w in weeks])),
        Series(
            "threads without one",
            "fig-unreplied",
            per_week([w.replies_to_threads.threads - w.replies_to_threads.replied for w in weeks]),
        ),
    ]
    medians = [w.replies_to_threads.median_wait for w in weeks]
    hours = [None if m is None else m / 3600 for m in medians]
    wait = [Series("hours to a first reply (median)", "fig-wait", per_week(hours))]
    shown = [
        ("chart-active", "Active members per week", active, True),
        ("chart-members", "Members who joined, left and were removed, per week", members, False),
        ("chart-posts", "New threads and replies per week", posts, True),
        ("chart-replied", "New threads with and without a reply from someone else", replied, True),
        ("chart-wait", "Median time to a first reply, in hours", wait, True),
    ]
    return [
        (chart_id, title, bar_chart(chart_id, title, slots, series, scale=WEEKLY, stacked=stacked), series)
        for chart_id, title, series, stacked in shown
    ]


@console_page
async def stats_page(request: Request, console: Console) -> Response:
    """The group's figures over the last N weeks (``?weeks=``, 12 by default)."""
    weeks = weeks_param(request)
    mod = await moderating(console, request.path_params["name"])
    async with console.services.db.read() as conn:
        figures = await group_figures(conn, mod.group, weeks=weeks)
    context = {
        "figures": figures,
        "charts": charts(figures),
        "weeks": weeks,
        "duration": duration,
        "percent": percent,
    }
    return group_page(request, mod, "console/stats.html", "stats", **context)


routes = [Route("/console/groups/{name}/stats", stats_page, methods=["GET"])]
