"""Events per group per minute, for sliding ten-minute windows: the one owner of ``event_counts``.

Each event adds one to its minute's row with ``INSERT ... ON CONFLICT DO UPDATE SET n = n + 1``
(every key of one event in one statement, committed at once on PostgreSQL: see ``add``), so
any number of worker processes count into the same rows and the database holds the truth
(no counter lives in a process).
A window is the sum of at most ``minutes`` rows per key, found through the
``(group_id, key, minute)`` unique index: cheap whatever the group's size or age. Rows
older than a day are pruned by the worker's retention pass (``expired``).
Knows nothing of what the keys mean (``moderation/crowd.py`` names them).
Hand-written: two statements, no library needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database
from server.tables import TS, event_counts

KEEP = timedelta(days=1)  # a row older than this answers no window any more


def minute_of(at: datetime) -> datetime:
    """The start of ``at``'s minute: the row an event at ``at`` counts into."""
    return at.replace(second=0, microsecond=0)


# PostgreSQL: the rows in sorted order (one lock order for every writer), one prepared
# statement whatever the number of keys.
_PG_ADD = (
    "INSERT INTO event_counts (group_id, key, minute, n) "
    "SELECT $1, k, $3, 1 FROM unnest($2::text[]) AS k ORDER BY k "
    "ON CONFLICT (group_id, key, minute) DO UPDATE SET n = event_counts.n + 1 "
    "RETURNING key, n"
)


async def add(conn: AsyncConnection, db: Database, group_id: int, keys: Iterable[str], at: datetime) -> dict[str, int]:
    """Count one event under each of ``keys`` at ``at``; returns each key's count in ``at``'s minute,
    this event included. Two processes counting at once get different answers (1 and 2, never
    1 and 1): with ``window(..., current=False)`` for the minutes before, an exact window
    whatever runs beside it.

    On PostgreSQL the count commits at once, in a statement of its own on the raw pool, not in
    the caller's transaction: an upsert there would hold the minute's row (a group's posts
    this minute: every post's) locked until that transaction commits, and a worker batch of
    ten posts would make every other batch to the same group wait for all ten. The price: an
    event whose transaction then fails, and runs again, is counted twice (never missed, so a
    flood is never under-counted). On SQLite, one writer at a time anyway, it is the caller's
    transaction's. Either way the rows are written in one (sorted) order, so two writers
    never wait on each other crosswise.
    """
    minute = minute_of(at)
    wanted = sorted({key[:300] for key in keys})
    pool = await db.raw_pool()
    if pool is not None:
        rows = await pool.fetch(_PG_ADD, group_id, wanted, minute)
        return {row["key"]: int(row["n"]) for row in rows}
    params: dict[str, Any] = {}
    for i, key in enumerate(wanted):
        params.update({f"g{i}": group_id, f"k{i}": key, f"m{i}": minute})
    result = await conn.execute(_sqlite_add(len(wanted)), params)
    return {row.key: int(row.n) for row in result}


def _sqlite_add(rows: int) -> Any:
    """SQLite's upsert of ``rows`` rows with bind parameters ``g0, k0, m0, g1, ...``: built once per
    size and kept.

    Text, not ``sqlite.insert(...).values([...]).on_conflict_do_update(...)``: SQLAlchemy cannot
    cache a multi-row VALUES upsert (no cache key), so that one was compiled again for every
    post (~15 % of the worker's CPU on SQLite, ``bench.processing --database sqlite``); a text
    statement with typed parameters compiles in microseconds.
    """
    stmt = _SQLITE_ADDS.get(rows)
    if stmt is None:  # (a statement has no truth value: no ``or`` here)
        values = ", ".join(f"(:g{i}, :k{i}, :m{i}, 1)" for i in range(rows))
        stmt = _SQLITE_ADDS[rows] = (
            sa.text(
                "INSERT INTO event_counts (group_id, key, minute, n) VALUES "
                + values
                + " ON CONFLICT (group_id, key, minute) DO UPDATE SET n = event_counts.n + 1 RETURNING key, n"
            )
            .bindparams(*(sa.bindparam(f"m{i}", type_=TS) for i in range(rows)))  # stored as Kith stores times
            .columns(key=sa.String, n=sa.Integer)
        )
    return stmt


_SQLITE_ADDS: dict[int, Any] = {}


def bounds(at: datetime, minutes: int = 10, *, current: bool = True) -> tuple[datetime, datetime]:
    """The first and last minute rows of the ``minutes``-minute window up to ``at``
    (without ``at``'s own minute when not ``current``: ``add`` answers for that one)."""
    last = minute_of(at) if current else minute_of(at) - timedelta(minutes=1)
    return minute_of(at) - timedelta(minutes=minutes - 1), last


def window_column(group_id: Any, key: Any, first: Any, last: Any) -> sa.ScalarSelect[int]:
    """One key's events in the window from minute ``first`` to ``last`` (values or bind parameters),
    per group row of a larger query: as ``window``, folded into a query the caller runs anyway."""
    return (
        sa.select(sa.func.coalesce(sa.func.sum(event_counts.c.n), 0))
        .where(
            event_counts.c.group_id == group_id,
            event_counts.c.key == key,
            event_counts.c.minute >= first,
            event_counts.c.minute <= last,
        )
        .scalar_subquery()
    )


async def window(
    conn: AsyncConnection, group_id: int, keys: Iterable[str], at: datetime, *, minutes: int = 10, current: bool = True
) -> dict[str, int]:
    """Each key's events in the ``minutes`` minutes up to ``at`` (its own minute, unless not
    ``current``, and the ones before)."""
    wanted = [k[:300] for k in dict.fromkeys(keys)]
    since, last = bounds(at, minutes, current=current)
    query = (
        sa.select(event_counts.c.key, sa.func.sum(event_counts.c.n))
        .where(
            event_counts.c.group_id == group_id,
            event_counts.c.key.in_(wanted),
            event_counts.c.minute >= since,
            event_counts.c.minute <= last,
        )
        .group_by(event_counts.c.key)
    )
    found = {key: int(n) for key, n in (await conn.execute(query)).all()}
    return {key: found.get(key, 0) for key in wanted}


def expired(now: datetime) -> sa.ColumnElement[bool]:
    """The rows the retention pass may delete at ``now``."""
    return event_counts.c.minute < now - KEEP
