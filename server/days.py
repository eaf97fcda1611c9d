"""Counting rows per UTC day (or hour, or ISO week), the same way on SQLite and PostgreSQL.

The admin dashboard API (Mastodon's measures, dimensions and retention) and the
instance's weekly activity count events by day. A *source* is any ``SELECT`` whose
columns are labelled ``at`` (an aware UTC moment, a ``UTCDateTime``) and ``who`` (what
is counted: a row id, an actor); the owners of the tables build their sources and
these functions count them, grouped by the UTC day of ``at``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement


class utc_day(FunctionElement[str]):  # lower case: an SQL function, named like one
    """``YYYY-MM-DD`` of a UTC moment: SQLite keeps naive UTC text, PostgreSQL a timestamptz."""

    type = sa.String()
    inherit_cache = True


# SQLite keeps a moment as text, ``YYYY-MM-DD HH:MM:SS.ffffff``, and its date functions round
# the fraction to milliseconds: 23:59:59.9995 would fall on the next day. The day and hour are
# read from the text itself instead.
@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"to_char(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


class utc_hour(FunctionElement[str]):  # lower case: an SQL function, named like one
    """``YYYY-MM-DDTHH`` of a UTC moment (the federation health page's hourly charts)."""

    type = sa.String()
    inherit_cache = True


@compiles(utc_hour, "sqlite")
def _utc_hour_sqlite(element: utc_hour, compiler: Any, **kw: Any) -> str:
    moment = compiler.process(element.clauses, **kw)
    return f"substr({moment}, 1, 10) || 'T' || substr({moment}, 12, 2)"


@compiles(utc_hour, "postgresql")
def _utc_hour_postgresql(element: utc_hour, compiler: Any, **kw: Any) -> str:
    return f"to_char(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')"


class utc_week(FunctionElement[str]):  # lower case: an SQL function, named like one
    """``YYYY-MM-DD`` of the Monday that starts a UTC moment's ISO week (a group's weekly figures).

    SQLite before 3.46 has no ``%V``: its ``weekday 0`` modifier moves the day (read from the
    text, as ``utc_day``) to the next Sunday (or stays on one), six days before which is that
    week's Monday; PostgreSQL's ``date_trunc('week')`` is the ISO Monday already.
    """

    type = sa.String()
    inherit_cache = True


@compiles(utc_week, "sqlite")
def _utc_week_sqlite(element: utc_week, compiler: Any, **kw: Any) -> str:
    return f"date(substr({compiler.process(element.clauses, **kw)}, 1, 10), 'weekday 0', '-6 days')"


@compiles(utc_week, "postgresql")
def _utc_week_postgresql(element: utc_week, compiler: Any, **kw: Any) -> str:
    moment = compiler.process(element.clauses, **kw)
    return f"to_char(date_trunc('week', ({moment}) AT TIME ZONE 'UTC'), 'YYYY-MM-DD')"


def _counted(sub: sa.Subquery, distinct: bool) -> sa.ColumnElement[int]:
    return sa.func.count(sa.distinct(sub.c.who)) if distinct else sa.func.count()


def _within(sub: sa.Subquery, start: datetime | None, end: datetime | None) -> list[sa.ColumnElement[bool]]:
    clauses = []
    if start is not None:
        clauses.append(sub.c.at >= start)
    if end is not None:
        clauses.append(sub.c.at < end)
    return clauses


async def count_per_day(
    conn: AsyncConnection,
    source: sa.Select[Any] | sa.CompoundSelect,
    start: datetime,
    end: datetime,
    *,
    distinct: bool = False,
) -> dict[date, int]:
    """How many of ``source`` fall on each UTC day in ``[start, end)``; days with none are absent.

    ``distinct``: count each ``who`` once a day (active people rather than their posts).
    """
    sub = source.subquery()
    day = utc_day(sub.c.at)
    stmt = sa.select(day, _counted(sub, distinct)).select_from(sub).where(*_within(sub, start, end)).group_by(day)
    rows = (await conn.execute(stmt)).all()
    return {date.fromisoformat(str(d)): int(n) for d, n in rows if d is not None}


async def count_per_hour(
    conn: AsyncConnection, source: sa.Select[Any] | sa.CompoundSelect, start: datetime, end: datetime
) -> dict[datetime, int]:
    """How many of ``source`` fall in each UTC hour in ``[start, end)``, keyed by the hour's start.

    Hours with none are absent.
    """
    sub = source.subquery()
    hour = utc_hour(sub.c.at)
    stmt = sa.select(hour, sa.func.count()).select_from(sub).where(*_within(sub, start, end)).group_by(hour)
    rows = (await conn.execute(stmt)).all()
    return {datetime.strptime(str(h), "%Y-%m-%dT%H").replace(tzinfo=UTC): int(n) for h, n in rows if h is not None}


async def count_between(
    conn: AsyncConnection,
    source: sa.Select[Any] | sa.CompoundSelect,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    distinct: bool = False,
) -> int:
    """How many of ``source`` fall in ``[start, end)`` (either bound may be open)."""
    sub = source.subquery()
    stmt = sa.select(_counted(sub, distinct)).select_from(sub).where(*_within(sub, start, end))
    return int((await conn.execute(stmt)).scalar_one())


async def count_per_week(
    conn: AsyncConnection,
    source: sa.Select[Any] | sa.CompoundSelect,
    start: datetime,
    end: datetime,
    *,
    distinct: bool = False,
    by: str | None = None,
) -> dict[tuple[date, str], int]:
    """How many of ``source`` fall in each UTC ISO week in ``[start, end)``, in one ``GROUP BY``.

    Keyed by (the week's Monday, the value of ``source``'s column ``by``, or ``""`` without
    one); weeks with none are absent. ``distinct``: count each ``who`` once a week.
    """
    sub = source.subquery()
    week = utc_week(sub.c.at).label("week")
    keys: list[sa.ColumnElement[Any]] = [week] if by is None else [week, sub.c[by].label("by")]
    if distinct:
        # Each (week, who) once, then count them: two hashed GROUP BYs. count(DISTINCT) would
        # sort every row of the window instead (seconds, spilling to disk, for a busy group).
        pairs = sa.select(*keys, sub.c.who).select_from(sub).where(*_within(sub, start, end))
        once = pairs.group_by(*keys, sub.c.who).subquery()
        outer = [once.c.week] if by is None else [once.c.week, once.c.by]
        stmt = sa.select(*outer, sa.func.count()).select_from(once).group_by(*outer)
    else:
        stmt = sa.select(*keys, sa.func.count()).select_from(sub).where(*_within(sub, start, end)).group_by(*keys)
    counts: dict[tuple[date, str], int] = {}
    for row in (await conn.execute(stmt)).all():
        if row[0] is not None:
            counts[(date.fromisoformat(str(row[0])), "" if by is None else str(row[1]))] = int(row[-1])
    return counts
