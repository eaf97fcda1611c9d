"""Verified incoming activities, stored once each: the one owner of the ``inbox_items`` table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from server.db import Database
from server.queue import QueueRow
from server.tables import inbox_items
from server.types import utcnow


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
        status = await pool.execute(_PG_INSERT, activity["id"], actor, group_id, body, now)
        # The command tag is "INSERT 0 <rows>".
        return not status.endswith(" 0")
    stmt = db.insert_ignore(inbox_items, ["activity_uri"]).values(
        activity_uri=activity["id"],
        actor_uri=actor,
        group_id=group_id,
        body=body,
        next_attempt_at=now,
        created_at=now,
    )
    async with db.transaction() as conn:
        result = await conn.execute(stmt)
    return result.rowcount > 0


def received() -> sa.Select[Any]:
    """Every stored activity, by when it arrived: a ``server.days`` source."""
    return sa.select(inbox_items.c.created_at.label("at"), inbox_items.c.id.label("who"))
