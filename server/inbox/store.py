"""Verified incoming activities, stored once each: the one owner of the ``inbox_items`` table."""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database
from server.errors import ServiceUnavailable
from server.queue import QueueRow
from server.tables import inbox_items
from server.types import utcnow

log = logging.getLogger("kith.inbox")

# Activities committed in one SQLite transaction at most: 200 rows of 6 values stay far
# below SQLite's 32,766 bound variables, and a batch commits in a few milliseconds.
MAX_BATCH = 200


@dataclass(frozen=True, slots=True)
class InboxItem(QueueRow):
    """One stored activity, as the worker runs it: who sent it, its body as received."""

    activity_uri: str
    actor_uri: str
    group_id: int | None  # the group it was addressed to: its inbox, or the group a Follow names
    body: str


# The same statement as the SQLAlchemy one below, written out for asyncpg: on the hot
# path SQLAlchemy's compile, checkout and BEGIN/COMMIT cost several times the insert.
# state and attempts take their server defaults, as they do below.
_PG_INSERT = (
    "INSERT INTO inbox_items (activity_uri, actor_uri, group_id, body, next_attempt_at, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (activity_uri) DO NOTHING"
)


def body_text(body: bytes) -> str | None:
    """The received body as text to store as it is, or None when it must be re-serialised.

    The raw body is what was digested and signed, so keeping it loses nothing; it is
    only usable when it is plain UTF-8 that ``json.loads`` on text reads back the same
    way. ``json.loads`` on bytes also accepts UTF-16/32 and a UTF-8 byte order mark,
    which the worker's ``json.loads(str)`` would not; those fall back to a re-dump.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if text.startswith("\ufeff") else text


async def store_activity(
    db: Database, activity: dict[str, Any], *, actor: str, group_id: int | None, raw: str | None = None
) -> bool:
    """Queue ``activity`` for the worker; False when its id was already stored (a duplicate).

    ``raw`` is the activity's JSON text as received (see :func:`body_text`); without
    it the activity is serialised again.
    """
    body = raw if raw is not None else json.dumps(activity, separators=(",", ":"))
    now = utcnow()
    pool = await db.raw_pool()
    if pool is not None:
        try:
            status = await pool.execute(_PG_INSERT, activity["id"], actor, group_id, body, now)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            # Not stored: the sender hears 503 and retries, as from a batch that failed on SQLite.
            log.warning("inbox: %s not stored: %s", activity["id"][:200], str(exc).splitlines()[0][:300])
            raise ServiceUnavailable("could not store the activity, try again later") from None
        # The command tag is "INSERT 0 <rows>".
        return not status.endswith(" 0")
    # SQLite: one writer at a time, so every activity waiting at once commits in one
    # transaction; this returns only after that COMMIT (see server/group_commit.py).
    row = {
        "activity_uri": activity["id"],
        "actor_uri": actor,
        "group_id": group_id,
        "body": body,
        "next_attempt_at": now,
        "created_at": now,
    }
    return await db.group_commit("inbox", insert_batch, max_batch=MAX_BATCH).submit(row)


async def insert_batch(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[bool | BaseException]:
    """Insert ``rows`` into ``inbox_items`` in the open transaction; per row: stored (True), duplicate (False)
    or its own error.

    One multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` does the common case. If it
    fails (a row breaks a constraint, such as a group deleted meanwhile), it is undone to
    its savepoint and each row is tried alone under its own, so one bad row fails only
    its own sender. A row repeated within the batch is stored once: the first is stored,
    the rest are duplicates.
    """
    try:
        async with conn.begin_nested():
            params = tuple(value for row in rows for value in _sqlite_values(row))
            result = await conn.exec_driver_sql(_sqlite_insert(len(rows)), params)
            stored = {uri for (uri,) in result.all()}
    except sa.exc.DBAPIError:
        stmt = sqlite.insert(inbox_items).on_conflict_do_nothing(index_elements=["activity_uri"])
        return [await _insert_alone(conn, stmt, row) for row in rows]
    results: list[bool | BaseException] = []
    for row in rows:
        uri = row["activity_uri"]
        results.append(uri in stored)
        stored.discard(uri)  # a second copy in the same batch is a duplicate
    return results


@functools.lru_cache(maxsize=MAX_BATCH)
def _sqlite_insert(rows: int) -> str:
    """The SQLite statement inserting ``rows`` rows, written out once per size.

    SQLAlchemy compiles a multi-row insert anew for each batch, which cost more of the
    web process's CPU than the insert itself; this is the statement it would compile.
    """
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    return (
        "INSERT INTO inbox_items (activity_uri, actor_uri, group_id, body, next_attempt_at, created_at) "
        f"VALUES {values} ON CONFLICT (activity_uri) DO NOTHING RETURNING activity_uri"
    )


def _sqlite_values(row: dict[str, Any]) -> tuple[Any, ...]:
    at = _sqlite_time(row["created_at"])
    return (row["activity_uri"], row["actor_uri"], row["group_id"], row["body"], at, at)


def _sqlite_time(at: datetime) -> str:
    """``at`` as SQLAlchemy stores a ``UTCDateTime`` in SQLite: naive UTC text with microseconds."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


async def _insert_alone(conn: AsyncConnection, stmt: Any, row: dict[str, Any]) -> bool | BaseException:
    try:
        async with conn.begin_nested():
            return (await conn.execute(stmt.values(row))).rowcount > 0
    except sa.exc.DBAPIError as exc:
        log.warning("inbox: %s not stored: %s", row["activity_uri"][:200], str(exc).splitlines()[0][:300])
        return ServiceUnavailable("could not store the activity, try again later")


def received() -> sa.Select[Any]:
    """Every stored activity, by when it arrived: a ``server.days`` source."""
    return sa.select(inbox_items.c.created_at.label("at"), inbox_items.c.id.label("who"))
