"""Events per group per minute, for sliding ten-minute windows: the one owner of ``event_counts``.

Each event adds one to its minute's row with ``INSERT ... ON CONFLICT DO UPDATE SET n = n + 1``
(every key of one event in one statement),
so any number of worker processes count into the same rows and the database holds the
truth (no counter lives in a process). A window is the sum of at most ``minutes`` rows
per key, found through the ``(group_id, key, minute)`` unique index: cheap whatever the
group's size or age. Rows older than a day are pruned by the worker's retention pass
(``expired``). Knows nothing of what the keys mean (``moderation/crowd.py`` names them).
Hand-written: two statements, no library needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database
from server.tables import event_counts

KEEP = timedelta(days=1)  # a row older than this answers no window any more


def minute_of(at: datetime) -> datetime:
    """The start of ``at``'s minute: the row an event at ``at`` counts into."""
    return at.replace(second=0, microsecond=0)


async def add(conn: AsyncConnection, db: Database, group_id: int, keys: Iterable[str], at: datetime) -> dict[str, int]:
    """Count one event under each of ``keys`` at ``at``, in the caller's transaction: one statement.

    Returns each key's count in ``at``'s minute, this event included. The upsert takes the
    minute's rows' locks, so two processes counting at once get different answers (1 and 2,
    never 1 and 1): with ``window(..., current=False)`` for the minutes before, an exact
    window whatever runs beside it. Keys are locked in the order given: callers name them
    in one order, so two transactions never wait on each other crosswise.
    """
    minute = minute_of(at)
    rows = [{"group_id": group_id, "key": key[:300], "minute": minute, "n": 1} for key in dict.fromkeys(keys)]
    dialect_insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    stmt = dialect_insert(event_counts).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["group_id", "key", "minute"], set_={"n": event_counts.c.n + stmt.excluded.n}
    ).returning(event_counts.c.key, event_counts.c.n)
    return {key: int(n) for key, n in (await conn.execute(stmt)).all()}


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
