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


async def add(conn: AsyncConnection, db: Database, group_id: int, keys: Iterable[str], at: datetime) -> None:
    """Count one event under each of ``keys`` at ``at``, in the caller's transaction: one statement."""
    minute = minute_of(at)
    rows = [{"group_id": group_id, "key": key[:300], "minute": minute, "n": 1} for key in dict.fromkeys(keys)]
    dialect_insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    stmt = dialect_insert(event_counts).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["group_id", "key", "minute"], set_={"n": event_counts.c.n + stmt.excluded.n}
    )
    await conn.execute(stmt)


def bounds(at: datetime, minutes: int = 10) -> tuple[datetime, datetime]:
    """The first and last minute rows of the ``minutes``-minute window up to ``at``."""
    return minute_of(at) - timedelta(minutes=minutes - 1), minute_of(at)


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
    conn: AsyncConnection, group_id: int, keys: Iterable[str], at: datetime, *, minutes: int = 10
) -> dict[str, int]:
    """Each key's events in the ``minutes`` minutes up to ``at`` (its own minute and the ones before)."""
    wanted = [k[:300] for k in dict.fromkeys(keys)]
    since, last = bounds(at, minutes)
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
