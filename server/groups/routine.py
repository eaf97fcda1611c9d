"""Recurring threads: a group posts the same kind of thread every day, week or month, by itself.

The one owner of the ``schedules`` table. A schedule is a title and a text (templates, with
the placeholders of ``PLACEHOLDERS``), a period (``day``, ``week``, ``month``), a first
occurrence in local wall time and an IANA time zone. The occurrences are computed with
dateutil's ``rrule`` in local wall time, then converted to UTC with the standard library's
``zoneinfo``: "every week, Monday 09:00 Europe/Berlin" is 09:00 on the wall in winter and in
summer (08:00 UTC, then 07:00 UTC). Two corner cases, chosen and documented:

- A wall time that does not exist (02:30 on the night clocks go forward) is taken as the
  clocks read it an hour later (zoneinfo's ``fold=0``: 03:30 summer time); a wall time that
  happens twice (the night clocks go back) is its first, summer-time, instance.
- Monthly from the 29th, 30th or 31st: a month without that day gets the thread on its
  last day (31 January, 28 February, 31 March, 30 April ...), never skipped.

The row keeps the next occurrence (``next_at``, UTC, and ``next_n``, its number in the
series: the first occurrence, at the start, is 1). Firing (``fire_due``, run by the worker)
posts each occurrence exactly once with ``groups.voice.speak``, whichever worker gets there:
the conditional ``UPDATE ... WHERE id = :id AND next_at = :due`` that advances the row and
the post commit in one transaction, and only the worker whose update changed the row posts.
A worker that was down posts the missed occurrence late when less than one period has gone
by (before the following occurrence is due); later than that the missed occurrences are
skipped, not posted one after another: ``next_at`` jumps to the next future occurrence,
the row counts them (``skipped``) and the mod log says so (action ``schedule_skip``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from dateutil import rrule
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import BadRequest, NotFound
from server.groups.membership import Group, get_group_by_id
from server.groups.voice import SYSTEM, check_text, may_speak, speak
from server.moderation import modlog
from server.rows import record, record_or_none
from server.services import Services
from server.tables import schedules
from server.types import utcnow

log = logging.getLogger("kith.routine")

EVERY = {"day": rrule.DAILY, "week": rrule.WEEKLY, "month": rrule.MONTHLY}
MAX_PER_GROUP = 20  # a group's schedules: enough for a busy club, few enough to list on one page
EARLIEST_START = datetime(2000, 1, 1)  # the series is counted from its start: keep that count small
LATEST_START_AHEAD = timedelta(days=366 * 5)
BATCH = 50  # due schedules a firing round takes

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
PLACEHOLDERS = {
    "date": "the occurrence's date, e.g. 2 December 2026",
    "weekday": "its day of the week, e.g. Wednesday",
    "time": "its local time, e.g. 09:00",
    "week": "its ISO week number, 1 to 53",
    "month": "its month's name, e.g. December",
    "year": "its year, e.g. 2026",
    "n": "its number in the series: 1 for the first, at the start",
}


# --------------------------------------------------------------------------- placeholders


def placeholders_in(template: str) -> list[str]:
    """The placeholders a title or text uses; ``BadRequest`` for an unknown one or a stray brace.

    ``{{`` and ``}}`` are literal braces, as in Python's ``str.format`` (whose parser this uses).
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise BadRequest(f"bad placeholder in {template[:60]!r}: {exc} (write {{{{ and }}}} for braces)") from None
    used = []
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise BadRequest(f"unknown placeholder {shown}; known: {known}")
        used.append(field)
    return used


def expand(template: str, local: datetime, n: int) -> str:
    """``template`` with its placeholders filled for the occurrence ``n`` at ``local`` (its wall time)."""
    placeholders_in(template)
    values = {
        "date": f"{local.day} {MONTHS[local.month - 1]} {local.year}",
        "weekday": WEEKDAYS[local.weekday()],
        "time": f"{local:%H:%M}",
        "week": str(local.isocalendar().week),
        "month": MONTHS[local.month - 1],
        "year": str(local.year),
        "n": str(n),
    }
    return template.format_map(values)


# --------------------------------------------------------------------------- recurrence


def zone_of(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (e.g. Europe/Berlin), else ``BadRequest``."""
    try:
        if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadRequest(f"unknown time zone {name[:64]!r}; use an IANA name such as Europe/Berlin or UTC") from None


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of a schedule: its number in the series, its local wall time and its instant."""

    n: int
    local: datetime  # naive, the wall time in the schedule's zone
    at: datetime  # aware, UTC


@dataclass(frozen=True, slots=True)
class Recurrence:
    """Every day, week or month from ``start`` (a naive local wall time) in the zone ``zone``."""

    every: str
    start: datetime
    zone: str

    def _rule(self) -> rrule.rrule:
        freq = EVERY[self.every]
        if freq == rrule.MONTHLY and self.start.day > 28:
            # The 29th-31st, or the month's last day when it is shorter (see the module's docstring).
            days = list(range(28, self.start.day + 1))
            return rrule.rrule(freq, dtstart=self.start, bymonthday=days, bysetpos=-1)
        return rrule.rrule(freq, dtstart=self.start)

    def instant(self, local: datetime) -> datetime:
        """The UTC instant of the wall time ``local`` in this zone (fold=0 for gaps and overlaps)."""
        return local.replace(tzinfo=zone_of(self.zone)).astimezone(UTC)

    def first_after(self, t: datetime) -> Occurrence:
        """The first occurrence strictly after the instant ``t``."""
        for n, local in enumerate(self._rule(), 1):
            at = self.instant(local)
            if at > t:
                return Occurrence(n, local, at)
        raise AssertionError("an rrule without an end never ends")  # pragma: no cover

    def following(self, current: Occurrence) -> Occurrence:
        """The occurrence after ``current``."""
        local = self._rule().after(current.local)
        assert local is not None  # no end
        return Occurrence(current.n + 1, local, self.instant(local))

    def occurrence(self, n: int, at: datetime) -> Occurrence:
        """The occurrence numbered ``n`` whose instant is ``at`` (as stored on the row)."""
        return Occurrence(n, at.astimezone(zone_of(self.zone)).replace(tzinfo=None), at)


@dataclass(frozen=True, slots=True)
class Decision:
    """What firing does with a schedule at a moment: post ``post`` (or nothing), then wait for ``following``."""

    post: Occurrence | None
    following: Occurrence
    skipped: int  # occurrences passed over without a post


def decide(rec: Recurrence, due: Occurrence, now: datetime) -> Decision | None:
    """What is due at ``now`` for a schedule whose next occurrence is ``due``; None when nothing is yet.

    Posted once, late, while the following occurrence is still ahead (less than one period
    late); otherwise every missed occurrence is skipped and the next one after ``now`` awaited.
    """
    if now < due.at:
        return None
    following = rec.following(due)
    if now < following.at:
        return Decision(due, following, 0)
    upcoming = rec.first_after(now)
    return Decision(None, upcoming, upcoming.n - due.n)


def next_full_hour(now: datetime, zone: str) -> datetime:
    """The next full hour after ``now`` as a naive wall time in ``zone`` (the default start)."""
    local = now.astimezone(zone_of(zone)).replace(tzinfo=None)
    return local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def parse_start(raw: str) -> datetime:
    """``--start``: an ISO 8601 local date and time (2026-12-07T09:00) in the schedule's zone."""
    try:
        start = datetime.fromisoformat(raw.strip()) if len(raw) <= 40 else None
    except ValueError:
        start = None
    if start is None:
        raise BadRequest(f"bad start {raw[:40]!r}: give a local date and time such as 2026-12-07T09:00")
    if start.tzinfo is not None:
        raise BadRequest("give the start without a UTC offset: it is read in the schedule's --timezone")
    return start.replace(second=0, microsecond=0)


def zone_abbreviation(local: datetime, zone: str) -> str:
    """The zone's abbreviation at that wall time (CET, CEST, EST), or its offset when it has none."""
    return local.replace(tzinfo=zone_of(zone)).tzname() or zone


def describe_next(local: datetime, zone: str, title: str) -> str:
    """ "Monday 7 December, 09:00 CET: Weekly reading thread", for the group and directory pages."""
    when = f"{WEEKDAYS[local.weekday()]} {local.day} {MONTHS[local.month - 1]}, {local:%H:%M}"
    return f"{when} {zone_abbreviation(local, zone)}: {title}"


# --------------------------------------------------------------------------- storage


@dataclass(frozen=True, slots=True)
class Schedule:
    """A row of ``schedules``."""

    id: int
    group_id: int
    title: str
    text: str
    every: str
    start_local: datetime
    timezone: str
    next_at: datetime
    next_n: int
    last_posted_at: datetime | None
    posted: int
    skipped: int
    created_by: str
    created_at: datetime

    @property
    def recurrence(self) -> Recurrence:
        return Recurrence(self.every, self.start_local, self.timezone)

    @property
    def due(self) -> Occurrence:
        return self.recurrence.occurrence(self.next_n, self.next_at)

    def describe(self) -> str:
        """The next occurrence, as the pages show it (``describe_next``), its title's placeholders filled."""
        due = self.due
        return describe_next(due.local, self.timezone, expand(self.title, due.local, due.n))

    def as_json(self) -> dict[str, object]:
        due = self.due
        return {
            "id": self.id,
            "title": self.title,
            "text": self.text,
            "every": self.every,
            "start": self.start_local.isoformat(timespec="minutes"),
            "timezone": self.timezone,
            "next_at": self.next_at.isoformat(),
            "next_local": due.local.isoformat(timespec="minutes"),
            "next_title": expand(self.title, due.local, due.n),
            "next_n": self.next_n,
            "posted": self.posted,
            "skipped": self.skipped,
            "last_posted_at": self.last_posted_at.isoformat() if self.last_posted_at else None,
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """What a leader asks for (``kith group schedule add``, the console's form)."""

    title: str
    text: str
    every: str
    start: str | None = None  # ISO local date and time; None: the next full hour
    timezone: str = "UTC"


def check_spec(spec: ScheduleSpec, now: datetime) -> tuple[str, str, Recurrence]:
    """The title, text and recurrence of ``spec``, checked; ``BadRequest`` saying what is wrong."""
    if spec.every not in EVERY:
        raise BadRequest(f"--every must be one of {', '.join(EVERY)}")
    zone_of(spec.timezone)
    title = " ".join((spec.title or "").split())
    if not title:
        raise BadRequest("the title is empty")
    text, _ = check_text(spec.text, title)
    placeholders_in(title)
    placeholders_in(text)
    start = parse_start(spec.start) if spec.start is not None else next_full_hour(now, spec.timezone)
    if not EARLIEST_START <= start <= now.replace(tzinfo=None) + LATEST_START_AHEAD:
        raise BadRequest("the start must lie between the year 2000 and five years from now")
    # The longest expansion (the longest date, a four-digit n) must still fit the caps of a post.
    widest = datetime(2026, 9, 30, 23, 59)
    check_text(expand(text, widest, 9999), expand(title, widest, 9999))
    return title, text, Recurrence(spec.every, start, spec.timezone)


async def add_schedule(
    conn: AsyncConnection, group: Group, by_user: str, spec: ScheduleSpec, *, now: datetime | None = None
) -> Schedule:
    """Add a schedule to ``group`` in the caller's transaction; ``by_user`` must lead the group."""
    await may_speak(conn, group, by_user)
    now = now or utcnow()
    title, text, rec = check_spec(spec, now)
    count = (await conn.execute(sa.select(sa.func.count()).where(schedules.c.group_id == group.id))).scalar_one()
    if count >= MAX_PER_GROUP:
        raise BadRequest(f"{group.name} has {count} schedules; at most {MAX_PER_GROUP}")
    first = rec.first_after(now)
    new_id = (
        await conn.execute(
            sa.insert(schedules)
            .values(
                group_id=group.id,
                title=title,
                text=text,
                every=rec.every,
                start_local=rec.start,
                timezone=rec.zone,
                next_at=first.at,
                next_n=first.n,
                posted=0,
                skipped=0,
                created_by=by_user,
                created_at=now,
            )
            .returning(schedules.c.id)
        )
    ).scalar_one()
    await modlog.write(
        conn, group_id=group.id, moderator=by_user, action="schedule_add", target=str(new_id), reason=title
    )
    return await get_schedule(conn, group, new_id)


async def get_schedule(conn: AsyncConnection, group: Group, schedule_id: int) -> Schedule:
    """One of ``group``'s schedules, else ``NotFound``."""
    row = (
        await conn.execute(sa.select(schedules).where(schedules.c.id == schedule_id, schedules.c.group_id == group.id))
    ).one_or_none()
    found = record_or_none(Schedule, row)
    if found is None:
        raise NotFound(f"{group.name} has no schedule {schedule_id}")
    return found


async def list_schedules(conn: AsyncConnection, group_id: int) -> list[Schedule]:
    """A group's schedules, the soonest first."""
    rows = await conn.execute(
        sa.select(schedules).where(schedules.c.group_id == group_id).order_by(schedules.c.next_at, schedules.c.id)
    )
    return [record(Schedule, r) for r in rows]


async def remove_schedule(conn: AsyncConnection, group: Group, schedule_id: int, by_user: str | None) -> Schedule:
    """Remove one of ``group``'s schedules (threads it posted stay); ``by_user`` None: the operator."""
    if by_user is not None:
        await may_speak(conn, group, by_user)
    gone = await get_schedule(conn, group, schedule_id)
    await conn.execute(sa.delete(schedules).where(schedules.c.id == schedule_id))
    await modlog.write(
        conn,
        group_id=group.id,
        moderator=by_user or "cli",
        action="schedule_remove",
        target=str(schedule_id),
        reason=gone.title,
    )
    return gone


async def next_up(conn: AsyncConnection, group_ids: Sequence[int]) -> dict[int, str]:
    """Each group's next recurring thread, described (``describe_next``); one query for all the groups."""
    if not group_ids:
        return {}
    rows = await conn.execute(
        sa.select(schedules)
        .where(schedules.c.group_id.in_(list(group_ids)))
        .order_by(schedules.c.group_id, schedules.c.next_at, schedules.c.id)
    )
    out: dict[int, str] = {}
    for row in rows:
        if row.group_id not in out:
            out[row.group_id] = record(Schedule, row).describe()
    return out


# --------------------------------------------------------------------------- firing


async def fire_one(services: Services, schedule: Schedule, now: datetime) -> int | None:
    """Act on one due schedule in a transaction of its own; the post's id when this call posted one.

    The conditional update is the claim: of several workers holding the same due row, one
    changes it (rowcount 1) and posts in the same transaction; the others change nothing and
    post nothing. On PostgreSQL the second update waits for the first's commit, then finds
    ``next_at`` moved on.
    """
    decision = decide(schedule.recurrence, schedule.due, now)
    if decision is None:
        return None
    async with services.db.transaction() as conn:
        claimed = await conn.execute(
            sa.update(schedules)
            .where(schedules.c.id == schedule.id, schedules.c.next_at == schedule.next_at)
            .values(
                next_at=decision.following.at,
                next_n=decision.following.n,
                posted=schedules.c.posted + (1 if decision.post else 0),
                skipped=schedules.c.skipped + decision.skipped,
                last_posted_at=now if decision.post else schedules.c.last_posted_at,
            )
        )
        if claimed.rowcount != 1:
            return None  # another worker took it, or it was removed
        group = await get_group_by_id(conn, schedule.group_id)
        if decision.post is None:
            await modlog.write(
                conn,
                group_id=group.id,
                moderator=SYSTEM,
                action="schedule_skip",
                target=str(schedule.id),
                reason=f"{decision.skipped} missed occurrence(s) of {schedule.title!r}, more than one period late",
            )
            return None
        occ = decision.post
        post = await speak(
            conn,
            services,
            group,
            None,
            text=expand(schedule.text, occ.local, occ.n),
            name=expand(schedule.title, occ.local, occ.n),
        )
    return post.id


async def fire_due(services: Services, *, now: datetime | None = None) -> list[int]:
    """Post every occurrence due at ``now`` (each once); the ids of the posts this call made."""
    now = now or utcnow()
    async with services.db.read() as conn:
        rows = await conn.execute(
            sa.select(schedules).where(schedules.c.next_at <= now).order_by(schedules.c.next_at).limit(BATCH)
        )
        due = [record(Schedule, r) for r in rows]
    posted = []
    for schedule in due:
        try:
            post_id = await fire_one(services, schedule, now)
        except Exception:  # one broken schedule must not hold up the others; it is tried again next round
            log.exception("schedule %s failed", schedule.id)
            continue
        if post_id is not None:
            posted.append(post_id)
    if posted:
        services.wake.set()  # the fan-outs were queued
    return posted


class Routine:
    """The worker's clock for schedules: look for due occurrences every ``interval``."""

    def __init__(self, services: Services, *, interval: timedelta = timedelta(seconds=30)) -> None:
        self.services = services
        self.interval = interval

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Fire due schedules until ``stop`` is set."""
        while not stop.is_set():
            try:
                await fire_due(self.services)
            except Exception:  # keep the clock through a database hiccup
                log.exception("firing schedules failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval.total_seconds())
