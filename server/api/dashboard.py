"""Mastodon's admin dashboard API and its public instance statistics, for a group server.

``POST /api/v1/admin/measures``, ``/dimensions`` and ``/retention`` answer with
Mastodon 4.3's request parameters and entities (Admin::Measure, Admin::Dimension,
Admin::Cohort), so that admin tools work unchanged: fediblockhole asks for
``instance_follows`` of a domain before it suspends it. What each key counts on a
group server is said in ``server.groups.tallies`` (members, their posts, memberships)
and in docs/api.md. ``GET /api/v1/instance/peers`` and ``/activity`` are public, as
Mastodon's are by default, and answer 404 in allowlist mode as Mastodon's do.

Days are UTC days from ``start_at``'s to ``end_at``'s, both included, at most
``MAX_DAYS`` of them; a time of day in either is ignored, as Mastodon does.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import __version__
from server.api.auth import Caller, api_endpoint, flag, read_params, services_of
from server.days import count_between, count_per_day
from server.errors import BadRequest, NotFound, Unprocessable
from server.federation.actors import known_domains
from server.groups import tallies
from server.moderation import reports
from server.moderation.blocklist.cache import load_policy
from server.moderation.blocklist.matcher import host_of_authority, normalize_domain
from server.services import Services

MAX_DAYS = 366  # the longest period one request may ask about (a year's dashboard)
EARLIEST, LATEST = date(1970, 1, 1), date(9998, 12, 31)
DIMENSION_LIMIT = 10  # Mastodon's admin dashboard asks for 8 to 10 lines
MAX_DIMENSION_LIMIT = 100
SCOPES = ("admin:read",)  # as Mastodon: the dashboard is behind ``admin:read`` and an admin role
WEEKS = 12  # /api/v1/instance/activity
PUBLIC = {"Access-Control-Allow-Origin": "*", "Cache-Control": "max-age=86400, public"}

# Keys Mastodon knows that a group server has nothing to count for (it keeps no hashtags,
# languages or media): asked for, they are refused with this reason rather than answered with zeros.
NOT_COUNTED = {
    "tag_accounts": "Kith keeps no hashtags",
    "tag_uses": "Kith keeps no hashtags",
    "tag_servers": "Kith keeps no hashtags",
    "languages": "Kith does not record the language of posts",
    "instance_languages": "Kith does not record the language of posts",
    "tag_languages": "Kith keeps no hashtags",
    "space_usage": "Kith stores no media and does not measure its database",
}


# --------------------------------------------------------------------------- parameters (pure)


@dataclass(frozen=True)
class Period:
    """UTC days ``first`` to ``last``, both included."""

    first: date
    last: date

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    @property
    def start(self) -> datetime:
        return datetime(self.first.year, self.first.month, self.first.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first moment after the period."""
        return self.start + timedelta(days=len(self.days))

    def previous(self) -> Period:
        """As many days again, just before (Mastodon's ``previous_total``)."""
        length = timedelta(days=len(self.days))
        return Period(self.first - length, self.last - length)


def parse_day(value: Any, name: str) -> date:
    """The UTC day of an ISO 8601 date or date-time (a time is converted to UTC, then ignored)."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} must be an ISO 8601 date such as 2026-01-31")
    raw = value.strip()
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw)
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date such as 2026-01-31, not {raw[:40]!r}") from None
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


def parse_period(params: dict[str, Any], *, required: bool = True) -> Period | None:
    """``start_at`` and ``end_at`` as a period; None when both are absent and that is allowed."""
    start, end = params.get("start_at"), params.get("end_at")
    if start in (None, "") and end in (None, "") and not required:
        return None
    period = Period(parse_day(start, "start_at"), parse_day(end, "end_at"))
    if period.last < period.first:
        raise BadRequest("end_at is before start_at")
    # Far enough from the calendar's ends that the period before and the day after still exist.
    if period.first < EARLIEST or period.last > LATEST:
        raise BadRequest(f"start_at and end_at must fall between {EARLIEST} and {LATEST}")
    if len(period.days) > MAX_DAYS:
        raise BadRequest(f"the period is {len(period.days)} days long; at most {MAX_DAYS} may be asked for at once")
    return period


def parse_keys(params: dict[str, Any], known: dict[str, Any]) -> list[str]:
    """``keys[]``: each a key of ``known``; 400 naming the first that is not."""
    keys = params.get("keys")
    if isinstance(keys, str):
        keys = [keys]
    if not keys or not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise BadRequest("keys[] is required: the names of what to count")
    for key in keys:
        if key in NOT_COUNTED and key not in known:
            raise BadRequest(f"{key} is not counted here: {NOT_COUNTED[key]}")
        if key not in known:
            raise BadRequest(f"unknown key {key[:60]!r}; known keys: {', '.join(known)}")
    return list(dict.fromkeys(keys))  # each once, in the order asked


def key_params(params: dict[str, Any], key: str) -> dict[str, Any]:
    """A key's own parameters: ``{"instance_follows": {"domain": ...}}`` in JSON, ``key[domain]=`` in a form."""
    nested = params.get(key)
    if isinstance(nested, dict):
        return nested
    prefix = key + "["
    return {k[len(prefix) : -1]: v for k, v in params.items() if k.startswith(prefix) and k.endswith("]")}


def domain_of(params: dict[str, Any], key: str) -> tuple[str, bool]:
    """The ``domain`` (normalised) and ``include_subdomains`` of a per-server key; 400 when missing or bad."""
    own = key_params(params, key)
    raw = own.get("domain")
    if not isinstance(raw, str) or not raw.strip():
        raise BadRequest(f"{key}[domain] is required with {key}")
    try:
        domain = normalize_domain(raw)
    except Unprocessable as exc:
        raise BadRequest(f"{key}[domain]: {exc}") from None
    try:
        subdomains = bool(flag(own, "include_subdomains"))
    except Unprocessable:
        raise BadRequest(f"{key}[include_subdomains] must be true or false") from None
    return domain, subdomains


def parse_limit(params: dict[str, Any]) -> int:
    """``limit`` for dimensions: 10 unless given, at most 100."""
    raw = params.get("limit")
    if raw in (None, ""):
        return DIMENSION_LIMIT
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        raise BadRequest("limit must be a number") from None
    if limit < 1:
        raise BadRequest("limit must be at least 1")
    return min(limit, MAX_DIMENSION_LIMIT)


def day_time(day: date) -> str:
    """A day as Mastodon's measures and cohorts show it."""
    return f"{day.isoformat()}T00:00:00.000+00:00"


def human_bytes(value: int) -> str:
    """Rails' ``number_to_human_size`` for what Kith can hold: 0 Bytes (it stores no media)."""
    return f"{value} Bytes"


# --------------------------------------------------------------------------- measures


@dataclass(frozen=True)
class Measure:
    """One of Mastodon's measures: what it counts, and whether its total is over the period."""

    source: Callable[[str | None, bool], tallies.Source] | None  # None: nothing stored to count
    per_server: bool = False  # needs ``key[domain]``; its total is all time, with no previous_total
    distinct: bool = False  # count each person once (a day, or the period)
    unit: str | None = None


MEASURES: dict[str, Measure] = {
    "active_users": Measure(lambda _d, _s: tallies.participants(), distinct=True),
    "new_users": Measure(lambda _d, _s: tallies.members()),
    "interactions": Measure(lambda _d, _s: tallies.interactions()),
    "opened_reports": Measure(lambda _d, _s: reports.filed()),
    "resolved_reports": Measure(lambda _d, _s: reports.closed()),
    "instance_accounts": Measure(lambda d, s: tallies.members(d, subdomains=s), per_server=True),
    "instance_media_attachments": Measure(None, per_server=True, unit="bytes"),
    "instance_reports": Measure(lambda d, s: reports.filed(d, subdomains=s), per_server=True),
    "instance_statuses": Measure(lambda d, s: tallies.group_posts(d, subdomains=s), per_server=True),
    "instance_follows": Measure(lambda d, s: tallies.memberships(d, subdomains=s), per_server=True),
    "instance_followers": Measure(lambda d, s: tallies.memberships(d, subdomains=s), per_server=True),
}


async def measure_json(services: Services, key: str, params: dict[str, Any], period: Period | None) -> dict[str, Any]:
    """One Admin::Measure: ``key``, ``unit``, ``total``, ``previous_total`` (in-period measures), ``data``."""
    measure = MEASURES[key]
    domain, subdomains = domain_of(params, key) if measure.per_server else (None, False)
    doc: dict[str, Any] = {"key": key, "unit": measure.unit}
    if measure.source is None:  # remote media is never stored: always none
        doc.update(total="0", human_value=human_bytes(0))
        doc["data"] = [{"date": day_time(d), "value": "0"} for d in (period.days if period else [])]
        return doc
    source = measure.source(domain, subdomains)
    distinct = measure.distinct
    async with services.db.read() as conn:
        if measure.per_server or period is None:  # all time
            total = await count_between(conn, source, distinct=distinct)
        else:
            total = await count_between(conn, source, period.start, period.end, distinct=distinct)
        doc["total"] = str(total)
        if not measure.per_server:
            before = period.previous() if period else None
            previous = await count_between(conn, source, before.start, before.end, distinct=distinct) if before else 0
            doc["previous_total"] = str(previous)
        daily = await count_per_day(conn, source, period.start, period.end, distinct=distinct) if period else {}
    doc["data"] = [{"date": day_time(d), "value": str(daily.get(d, 0))} for d in (period.days if period else [])]
    return doc


@api_endpoint(*SCOPES, admin=True)
async def measures(request: Request, caller: Caller) -> Response:
    """``POST /api/v1/admin/measures``: Admin::Measure for each of ``keys[]``.

    ``start_at``/``end_at`` may both be left out (fediblockhole does): totals are then
    over all time and ``data`` is empty.
    """
    params = await read_params(request)
    keys = parse_keys(params, MEASURES)
    period = parse_period(params, required=False)
    services = services_of(request)
    return JSONResponse([await measure_json(services, key, params, period) for key in keys])


# --------------------------------------------------------------------------- dimensions


def _ranked(rows: list[tallies.Ranked]) -> list[dict[str, str]]:
    return [{"key": r.key, "human_key": r.label, "value": str(r.value)} for r in rows]


async def _software(services: Services) -> list[dict[str, str]]:
    database = "SQLite" if services.db.is_sqlite else "PostgreSQL"
    versions = [
        ("kith", "Kith", __version__),
        ("python", "Python", platform.python_version()),
        (database.lower(), database, await services.db.server_version()),
    ]
    return [{"key": k, "human_key": h, "value": v, "human_value": v} for k, h, v in versions]


async def dimension_data(
    services: Services, key: str, params: dict[str, Any], period: Period, limit: int
) -> list[dict[str, str]]:
    """The lines of one Admin::Dimension."""
    if key == "software_versions":
        return await _software(services)
    async with services.db.read() as conn:
        if key == "servers":
            return _ranked(await tallies.servers(conn, period.start, period.end, limit))
        if key == "sources":
            return _ranked(await tallies.joins_by_group(conn, period.start, period.end, limit))
        domain, subdomains = domain_of(params, key)
        return _ranked(await tallies.members_of_domain(conn, domain, subdomains=subdomains, limit=limit))


DIMENSIONS = {"servers": "posts", "software_versions": "versions", "sources": "joins", "instance_accounts": "members"}


@api_endpoint(*SCOPES, admin=True)
async def dimensions(request: Request, caller: Caller) -> Response:
    """``POST /api/v1/admin/dimensions``: Admin::Dimension (``key``, ``data``) for each of ``keys[]``."""
    params = await read_params(request)
    keys = parse_keys(params, DIMENSIONS)
    period = parse_period(params)
    assert period is not None
    limit = parse_limit(params)
    services = services_of(request)
    docs = [{"key": k, "data": await dimension_data(services, k, params, period, limit)} for k in keys]
    return JSONResponse(docs)


# --------------------------------------------------------------------------- retention


def period_of(moment: date, frequency: str) -> date:
    """The day, or the first of the month, that ``moment`` counts in."""
    return moment if frequency == "day" else moment.replace(day=1)


def cohorts(period: Period, frequency: str, people: list[tuple[datetime, datetime | None]]) -> list[dict[str, Any]]:
    """Mastodon's retention cohorts from (joined, last seen) pairs: pure, so tested alone.

    A member counts in the cohort of the period they joined, and as retained in every
    later period up to the one they were last seen in (joining counts as being seen), as
    Mastodon counts users by their last sign-in.
    """
    axis = sorted({period_of(d, frequency) for d in period.days})
    joined: dict[date, list[date]] = {p: [] for p in axis}
    for first, last in people:
        start = period_of(first.astimezone(UTC).date(), frequency)
        seen = max(first, last) if last is not None else first
        if start in joined:
            joined[start].append(period_of(seen.astimezone(UTC).date(), frequency))
    docs = []
    for cohort_period in axis:
        size = len(joined[cohort_period])
        data = []
        for retention_period in (p for p in axis if p >= cohort_period):
            kept = sum(1 for seen in joined[cohort_period] if seen >= retention_period)
            data.append({"date": day_time(retention_period), "rate": kept / max(size, 1), "value": str(kept)})
        docs.append({"period": day_time(cohort_period), "frequency": frequency, "data": data})
    return docs


@api_endpoint(*SCOPES, admin=True)
async def retention(request: Request, caller: Caller) -> Response:
    """``POST /api/v1/admin/retention``: Admin::Cohort per day or month (``frequency``) of new members."""
    params = await read_params(request)
    period = parse_period(params)
    assert period is not None
    frequency = params.get("frequency") or "day"
    if frequency not in ("day", "month"):
        raise BadRequest("frequency must be day or month")
    # A month's cohort counts everyone who joined that month, so read from its first day.
    first = period_of(period.first, frequency)
    whole = Period(first, period.last)
    async with services_of(request).db.read() as conn:
        people = await tallies.cohort(conn, whole.start, whole.end)
    return JSONResponse(cohorts(whole, frequency, people))


# --------------------------------------------------------------------------- public instance statistics


async def _federates_openly(services: Services) -> bool:
    async with services.db.read() as conn:
        return not (await load_policy(conn)).allowlist_mode


async def peers(request: Request) -> Response:
    """``GET /api/v1/instance/peers``: the domains Kith knows, less every blocked one (and those beneath)."""
    services = services_of(request)
    async with services.db.read() as conn:
        policy = await load_policy(conn)
        domains = await known_domains(conn)
    if policy.allowlist_mode:  # Mastodon hides its peers in limited federation mode
        raise NotFound("Not found")
    shown = [d for d in domains if policy.block_for(host_of_authority(d)) is None]
    return JSONResponse(shown, headers=PUBLIC)


def weeks(now: datetime) -> list[tuple[datetime, Period]]:
    """Mastodon's twelve weeks: each starts a whole number of weeks ago and spans seven days from there."""
    out = []
    for i in range(WEEKS):
        start = now - timedelta(weeks=i)
        out.append((start, Period(start.date(), start.date() + timedelta(days=6))))
    return out


async def activity(request: Request) -> Response:
    """``GET /api/v1/instance/activity``: per week, posts taken, active members and new members, as strings."""
    services = services_of(request)
    if not await _federates_openly(services):
        raise NotFound("Not found")
    spans = weeks(datetime.now(UTC))
    span = Period(spans[-1][1].first, spans[0][1].last)
    async with services.db.read() as conn:
        statuses = await count_per_day(conn, tallies.group_posts(), span.start, span.end)
        logins = await count_per_day(conn, tallies.participants(), span.start, span.end, distinct=True)
        joins = await count_per_day(conn, tallies.members(), span.start, span.end)

    def total(daily: dict[date, int], week: Period) -> str:
        return str(sum(daily.get(d, 0) for d in week.days))

    docs = [
        {
            "week": str(int(start.timestamp())),
            "statuses": total(statuses, week),
            "logins": total(logins, week),
            "registrations": total(joins, week),
        }
        for start, week in spans
    ]
    return JSONResponse(docs, headers=PUBLIC)


routes = [
    Route("/api/v1/admin/measures", measures, methods=["POST"]),
    Route("/api/v1/admin/dimensions", dimensions, methods=["POST"]),
    Route("/api/v1/admin/retention", retention, methods=["POST"]),
    Route("/api/v1/instance/peers", peers, methods=["GET"]),
    Route("/api/v1/instance/activity", activity, methods=["GET"]),
]
