"""A group's weekly figures, put together from counts: pure (no database, no clock).

``groups/stats`` reads the counts (one ``GROUP BY`` per kind of count over the window);
this module buckets moments into UTC ISO weeks, takes medians and shares, and assembles
``GroupFigures``, the one shape the CLI (a table or JSON) and the console's charts show.
A week runs Monday 00:00 to Monday 00:00 UTC (ISO 8601); the current week is partial.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

#: The most weeks one view may ask for, and the default: the window stays bounded.
MAX_WEEKS = 52
DEFAULT_WEEKS = 12


def week_start(moment: datetime) -> date:
    """The Monday (a UTC date) that starts ``moment``'s ISO week; ``moment`` must be aware."""
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def week_label(monday: date) -> str:
    """The ISO week's name, ``2026-W10`` (the ISO year, which may differ from the calendar year)."""
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def weeks_ending(now: datetime, count: int) -> list[date]:
    """The Mondays of the ``count`` ISO weeks up to and including ``now``'s, oldest first."""
    last = week_start(now)
    return [last - timedelta(weeks=n) for n in range(count - 1, -1, -1)]


def monday_midnight(monday: date) -> datetime:
    """The moment a week starts (00:00 UTC of its Monday)."""
    return datetime.combine(monday, time(), tzinfo=UTC)


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values (``statistics.median``: the mean of the middle two for an even count)."""
    return statistics.median(values) if values else None


def share(part: int, whole: int) -> float | None:
    """``part / whole``, or None when there is no whole to share (no threads: not 0 %)."""
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class ThreadStart:
    """A thread begun in the window: when, and when someone other than its author first replied."""

    started: datetime
    first_reply: datetime | None

    @property
    def wait(self) -> float | None:
        """Seconds from the thread's start to its first reply by someone else, or None."""
        return None if self.first_reply is None else max(0.0, (self.first_reply - self.started).total_seconds())


@dataclass(frozen=True, slots=True)
class Replies:
    """Threads begun, how many got a reply from someone else, and the median wait for it (seconds)."""

    threads: int
    replied: int
    median_wait: float | None

    @property
    def share(self) -> float | None:
        """The share of threads that got a reply (None: no threads)."""
        return share(self.replied, self.threads)


def replies_of(threads: Iterable[ThreadStart]) -> Replies:
    """Threads, replied threads and the median first-reply wait of ``threads``."""
    started = list(threads)
    waits = [t.wait for t in started if t.wait is not None]
    return Replies(len(started), len(waits), median(waits))


def replies_by_week(threads: Iterable[ThreadStart]) -> dict[date, Replies]:
    """``replies_of`` for each ISO week, by the week each thread began in."""
    weeks: dict[date, list[ThreadStart]] = {}
    for t in threads:
        weeks.setdefault(week_start(t.started), []).append(t)
    return {monday: replies_of(started) for monday, started in weeks.items()}


@dataclass(frozen=True, slots=True)
class WeekFigures:
    """One ISO week of a group. ``joined``, ``left`` and ``removed`` are None for a week that
    ended before joins and leaves were recorded (``GroupFigures.memberships_since``)."""

    start: date  # its Monday
    active: int  # people who posted, replied, reacted or voted (ACTIVITY_SOURCES)
    joined: int | None
    left: int | None  # members who went (an Undo, their account deleted)
    removed: int | None  # memberships ended by a ban or a domain block
    threads: int  # new threads (first posts)
    replies: int
    replies_to_threads: Replies  # of the threads begun this week

    @property
    def label(self) -> str:
        """``2026-W10``."""
        return week_label(self.start)


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """What a group's moderators read of how it is doing, over the last ``len(weeks)`` weeks."""

    group: str
    as_of: datetime
    members: int
    active_7_days: int
    active_30_days: int
    weeks: tuple[WeekFigures, ...]  # oldest first; the last is the current, partial week
    replies: Replies  # over every thread begun in the window
    memberships_since: datetime | None  # when joins and leaves began to be recorded

    def as_json(self) -> dict[str, Any]:
        """The figures as JSON (``kith group stats --json``): times ISO 8601, waits in seconds."""
        return {
            "group": self.group,
            "as_of": self.as_of.isoformat(),
            "members": self.members,
            "active_members": {"last_7_days": self.active_7_days, "last_30_days": self.active_30_days},
            "threads": self.replies.threads,
            "threads_replied": self.replies.replied,
            "reply_share": self.replies.share,
            "median_first_reply_seconds": self.replies.median_wait,
            "memberships_recorded_since": self.memberships_since.isoformat() if self.memberships_since else None,
            "weeks": [
                {
                    "week": w.label,
                    "start": w.start.isoformat(),
                    "active_members": w.active,
                    "joined": w.joined,
                    "left": w.left,
                    "removed": w.removed,
                    "threads": w.threads,
                    "replies": w.replies,
                    "threads_replied": w.replies_to_threads.replied,
                    "reply_share": w.replies_to_threads.share,
                    "median_first_reply_seconds": w.replies_to_threads.median_wait,
                }
                for w in self.weeks
            ],
        }


def assemble(
    *,
    group: str,
    now: datetime,
    mondays: Sequence[date],
    members: int,
    active_7_days: int,
    active_30_days: int,
    active: Mapping[date, int],
    posts: Mapping[tuple[date, str], int],
    memberships: Mapping[tuple[date, str], int],
    threads: Sequence[ThreadStart],
    memberships_since: datetime | None,
) -> GroupFigures:
    """Put the counts together. ``posts`` is keyed by (Monday, ``thread`` | ``reply``),
    ``memberships`` by (Monday, ``joined`` | ``left`` | ``removed``); missing keys are zeros."""
    by_week = replies_by_week(threads)
    empty = Replies(0, 0, None)

    def membership(monday: date, kind: str) -> int | None:
        week_end = monday_midnight(monday) + timedelta(weeks=1)
        if memberships_since is not None and week_end <= memberships_since:
            return None  # nothing was recorded in that week
        return memberships.get((monday, kind), 0)

    weeks = tuple(
        WeekFigures(
            start=monday,
            active=active.get(monday, 0),
            joined=membership(monday, "joined"),
            left=membership(monday, "left"),
            removed=membership(monday, "removed"),
            threads=posts.get((monday, "thread"), 0),
            replies=posts.get((monday, "reply"), 0),
            replies_to_threads=by_week.get(monday, empty),
        )
        for monday in mondays
    )
    return GroupFigures(
        group=group,
        as_of=now,
        members=members,
        active_7_days=active_7_days,
        active_30_days=active_30_days,
        weeks=weeks,
        replies=replies_of(threads),
        memberships_since=memberships_since,
    )


def duration(seconds: float | None) -> str:
    """A wait for a person: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``; ``–`` for none."""
    if seconds is None:
        return "–"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def percent(value: float | None) -> str:
    """A share for a person: ``67 %``; ``–`` for none."""
    return "–" if value is None else f"{round(value * 100)} %"


def _count(value: int | None) -> str:
    return "–" if value is None else str(value)


def text_table(figures: GroupFigures) -> str:
    """The figures for a terminal (``kith group stats``): a summary, then one line per week."""
    r = figures.replies
    lines = [
        f"{figures.group}: {figures.members} members, as of {figures.as_of:%Y-%m-%d %H:%M} UTC",
        f"Active members (posted, replied, reacted or voted): {figures.active_7_days} in the last 7 days, "
        f"{figures.active_30_days} in the last 30 days",
        f"Threads begun in these {len(figures.weeks)} weeks: {r.threads}; got a reply from someone else: "
        f"{r.replied} ({percent(r.share)}); median time to a first reply: {duration(r.median_wait)}",
    ]
    if figures.memberships_since is not None:
        lines.append(f"Joins and leaves recorded since {figures.memberships_since:%Y-%m-%d %H:%M} UTC (– before)")
    header = ("week", "starts", "active", "joined", "left", "removed", "threads", "replies", "replied", "first reply")
    rows = [
        (
            w.label,
            w.start.isoformat(),
            str(w.active),
            _count(w.joined),
            _count(w.left),
            _count(w.removed),
            str(w.threads),
            str(w.replies),
            percent(w.replies_to_threads.share),
            duration(w.replies_to_threads.median_wait),
        )
        for w in figures.weeks
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines.append("")
    for row in [header, *rows]:
        # The first two columns read left to right; the figures line up on the right.
        cells = [c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    lines.append("replied: the share of the week's new threads that got a reply from someone other than their author;")
    lines.append("first reply: the median time until that reply. The last week is the current one, still running.")
    return "\n".join(lines) + "\n"
