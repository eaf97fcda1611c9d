"""``/console/admin/health``: federation health for the instance's admins. Only reads.

Known servers (paged), their members, breakers and last errors (``groups/servers``); the
queues as ``/metrics`` sees them (``scrape.read_snapshot``); and two charts over the last
7 days, counted per UTC hour by ``server.days``: deliveries finished (done and dead,
``federation/delivery``) and inbox activities received (``inbox/store``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.days import count_per_hour
from server.federation import delivery
from server.groups import servers
from server.inbox import store as inbox_store
from server.scrape import QUEUES, read_snapshot
from server.web.charts import Series, bar_chart, hours_ending, table_rows
from server.web.console.admin import PAGE, admin_page, admin_render, int_param
from server.web.console.common import Console

QUEUE_LABELS = {"inbox": "Inbox", "deliveries": "Deliveries (retries and direct sends)", "fanouts": "Fan-outs"}
# Said under the chart: the delivery queue holds only part of what is sent.
DELIVERIES_NOTE = (
    "Counted from the delivery queue: direct sends (such as an Accept) and the retries of fan-out "
    "sends that failed. A fan-out's sends that succeed the first time are not counted here."
)


def waited(since: datetime | None, now: datetime) -> str:
    """How long the oldest waiting item has waited, for a person: ``3 min``, ``2 h 5 min``, ``-``."""
    if since is None:
        return "–"
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} days"


@admin_page
async def health(request: Request, console: Console) -> Response:
    """The federation health page."""
    number = int_param(request, "page") or 1
    async with console.services.db.read() as conn:
        snap = await read_snapshot(conn)
        now = snap.taken_at
        hours = hours_ending(now)
        start, end = hours[0], hours[-1] + timedelta(hours=1)
        sent = [
            Series("succeeded", "ok", await count_per_hour(conn, delivery.finished("done"), start, end)),
            Series("failed", "failed", await count_per_hour(conn, delivery.finished("dead"), start, end)),
        ]
        received = [Series("received", "ok", await count_per_hour(conn, inbox_store.received(), start, end))]
        total = await servers.count(conn)
        known = await servers.page(conn, offset=(number - 1) * PAGE, limit=PAGE)
    queues = [
        (
            QUEUE_LABELS[name],
            snap.queues[(name, "queued")],
            snap.queues[(name, "dead")],
            waited(snap.oldest_queued[name], now),
        )
        for name in QUEUES
    ]
    charts = [
        (
            "Deliveries per hour, last 7 days",
            bar_chart("chart-deliveries", "Deliveries per hour", hours, sent),
            sent,
            table_rows(hours, sent),
            DELIVERIES_NOTE,
        ),
        (
            "Inbox activities per hour, last 7 days",
            bar_chart("chart-inbox", "Inbox activities per hour", hours, received),
            received,
            table_rows(hours, received),
            "",
        ),
    ]
    return admin_render(
        request,
        console,
        "console/admin_health.html",
        "health",
        now=now,
        queues=queues,
        charts=charts,
        servers=known,
        total=total,
        page=number,
        pages=max(1, -(-total // PAGE)),
        open_breakers=snap.open_breakers,
    )


routes = [Route("/console/admin/health", health, methods=["GET"])]
