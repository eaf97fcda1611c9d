"""``/metrics``: Prometheus's text format, for the bearer of ``KITH_METRICS_TOKEN`` or a loopback client.

Two sources. What the database keeps is read from it at scrape time (``Snapshot``, turned
into metric families by ``DatabaseCollector``): queue depths by state, the processing lag,
open circuit breakers and reports. Those are right whichever process answers, however many
web and worker processes share the database. What only a process knows (inbox answers,
signatures, fetches, sends, fan-out durations) comes from ``server.metrics``: the files of
every process in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), else this process's counters.

The admin console's federation health page shows the same snapshot (``read_snapshot``).
The statements here only read; the tables' owners still write them. They run on the
scraper's schedule (every 15-60 s), each over a queue table kept small by the worker's
prune (``server.retention``) and through the indexes on ``state``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import metrics
from server.db import Database
from server.tables import deliveries, fanouts, inbox_items, reports, server_health
from server.types import utcnow

log = logging.getLogger("kith.metrics")

QUEUES = {"inbox": inbox_items, "deliveries": deliveries, "fanouts": fanouts}
QUEUE_STATES = ("queued", "done", "dead", "gone")
RESOLVED = ("resolved", "rejected")
# A request a proxy passed on comes from the proxy's address: on the same host that is
# loopback, though the client is anywhere. Any of these headers means "not from here".
_FORWARDED = ("forwarded", "x-forwarded-for", "x-real-ip")


@dataclass
class Snapshot:
    """What the database says at one moment about the work it holds."""

    queues: dict[tuple[str, str], int] = field(default_factory=dict)  # (queue, state) -> rows
    oldest_unprocessed: datetime | None = None  # the inbox's oldest queued activity
    oldest_queued: dict[str, datetime | None] = field(default_factory=dict)  # queue -> its oldest waiting row
    open_breakers: int = 0
    reports_total: int = 0
    reports_resolved: int = 0
    reports_open: int = 0
    oldest_open_report: datetime | None = None
    taken_at: datetime = field(default_factory=utcnow)


async def read_snapshot(conn: AsyncConnection) -> Snapshot:
    """Count the queues by state, and read the lag, the open breakers and the reports."""
    snap = Snapshot()
    for name, table in QUEUES.items():
        for state in QUEUE_STATES:
            snap.queues[(name, state)] = 0
        rows = await conn.execute(sa.select(table.c.state, sa.func.count()).group_by(table.c.state))
        for state, count in rows:
            snap.queues[(name, state)] = count
        oldest = (
            await conn.execute(sa.select(sa.func.min(table.c.created_at)).where(table.c.state == "queued"))
        ).scalar()
        snap.oldest_queued[name] = _aware(datetime.fromisoformat(oldest)) if isinstance(oldest, str) else oldest
    snap.oldest_unprocessed = snap.oldest_queued["inbox"]
    snap.open_breakers = (
        await conn.execute(
            sa.select(sa.func.count()).select_from(server_health).where(server_health.c.open_until > snap.taken_at)
        )
    ).scalar_one()
    is_open = reports.c.state.not_in(RESOLVED)
    row = (
        await conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.count().filter(reports.c.state.in_(RESOLVED)),
                sa.func.count().filter(is_open),
                sa.func.min(reports.c.created_at).filter(is_open),
            ).where(reports.c.outgoing.is_(False))
        )
    ).one()
    snap.reports_total, snap.reports_resolved, snap.reports_open, snap.oldest_open_report = row
    if isinstance(snap.oldest_open_report, str):  # SQLite: an aggregate loses the column's type
        snap.oldest_open_report = _aware(datetime.fromisoformat(snap.oldest_open_report))
    return snap


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class DatabaseCollector(Collector):
    """Metric families from a ``Snapshot`` (None: the database did not answer, ``kith_database_up`` 0)."""

    def __init__(self, snapshot: Snapshot | None) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("kith_database_up", "1 when the database answered this scrape, else 0.")
        up.add_metric([], 0 if self.snapshot is None else 1)
        yield up
        snap = self.snapshot
        if snap is None:
            return
        depth = GaugeMetricFamily(
            "kith_queue_items",
            "Rows in each work queue by state (queued: waiting or retrying; done, dead, gone: finished, "
            "kept until pruned). Deliveries rows exist only for sends that a fan-out could not complete.",
            labels=["queue", "state"],
        )
        for (queue, state), count in sorted(snap.queues.items()):
            depth.add_metric([queue, state], count)
        yield depth
        lag = GaugeMetricFamily(
            "kith_inbox_lag_seconds", "Age of the oldest inbox activity not yet processed (0 when none waits)."
        )
        lag.add_metric([], _age(snap.oldest_unprocessed, snap.taken_at))
        yield lag
        breakers = GaugeMetricFamily(
            "kith_circuit_breakers_open", "Remote servers whose circuit breaker is open (sends paused)."
        )
        breakers.add_metric([], snap.open_breakers)
        yield breakers
        opened = CounterMetricFamily("kith_reports_opened", "Reports received (incoming Flags and local reports).")
        opened.add_metric([], snap.reports_total)
        yield opened
        resolved = CounterMetricFamily("kith_reports_resolved", "Reports resolved or rejected by a moderator.")
        resolved.add_metric([], snap.reports_resolved)
        yield resolved
        still_open = GaugeMetricFamily("kith_reports_open", "Reports awaiting a moderator (open or assigned).")
        still_open.add_metric([], snap.reports_open)
        yield still_open
        oldest = GaugeMetricFamily(
            "kith_reports_oldest_open_age_seconds", "Age of the oldest report awaiting a moderator (0 when none)."
        )
        oldest.add_metric([], _age(snap.oldest_open_report, snap.taken_at))
        yield oldest


def _age(since: datetime | None, now: datetime) -> float:
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())


def exposition(snapshot: Snapshot | None) -> bytes:
    """The text a scrape gets: the database's families and every process's counters."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(snapshot))
    directory = metrics.multiprocess_dir()
    if directory is not None:
        MultiProcessCollector(registry, path=directory)
        text = generate_latest(registry)
    else:
        text = generate_latest(registry) + generate_latest(metrics.REGISTRY)
    return text


def refusal(request: Request, token: str | None) -> Response | None:
    """None when this request may read the metrics; else the 401 or 403 to answer, with the reason."""
    given = request.headers.get("authorization", "")
    scheme, _, credential = given.partition(" ")
    token_ok = token is not None and scheme.lower() == "bearer" and _same(credential.strip(), token)
    if token_ok or _from_loopback(request):
        return None
    if token is None:
        reason = "metrics are readable only from this host (set KITH_METRICS_TOKEN to read them from elsewhere)"
        return JSONResponse({"error": reason}, status_code=403)
    reason = "the metrics token is wrong" if given else "a bearer token (KITH_METRICS_TOKEN) is required"
    return JSONResponse({"error": reason}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})


def _same(given: str, token: str) -> bool:
    """Constant-time comparison, so the token cannot be guessed a byte at a time from timings."""
    return hmac.compare_digest(given.encode(), token.encode())


def _from_loopback(request: Request) -> bool:
    """The peer is a loopback address and no proxy says it forwarded the request."""
    if request.client is None or any(h in request.headers for h in _FORWARDED):
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


async def snapshot_of(db: Database) -> Snapshot | None:
    """The database's snapshot, or None when it does not answer (the scrape still answers)."""
    try:
        async with db.read() as conn:
            return await read_snapshot(conn)
    except Exception as exc:  # an unreachable database is a metric (kith_database_up 0), never a 500
        log.warning("metrics: the database did not answer: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return None


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``."""
    services = request.app.state.services
    refused = refusal(request, services.settings.metrics_token)
    if refused is not None:
        return refused
    body = exposition(await snapshot_of(services.db))
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


routes = [Route("/metrics", metrics_endpoint, methods=["GET"])]
