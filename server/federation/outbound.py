"""Activities we authored (Accept, Reject, Announce, Delete ...): the one owner of ``outbound_activities``.

Each is stored once, however many inboxes it goes to, so that it dereferences at its
id and every delivery signs the same bytes. What an activity carried being deleted
turns its id into a tombstone (410); its post's origin being suspended hides it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.rows import record, record_or_none
from server.tables import outbound_activities
from server.types import utcnow


@dataclass(frozen=True, slots=True)
class OutboundActivity:
    """One stored activity of ours, and what it is about."""

    id: int
    uri: str
    actor_id: int
    type: str
    public: bool
    body: str  # the JSON as sent, byte for byte
    post_id: int | None
    deleted_at: datetime | None
    hidden: bool
    created_at: datetime

    def document(self) -> dict[str, Any]:
        """The activity as JSON."""
        doc: dict[str, Any] = json.loads(self.body)
        return doc


_INSERT = sa.insert(outbound_activities).returning(outbound_activities.c.id, sort_by_parameter_order=True)


def _values(
    activity: dict[str, Any], *, actor_id: int, public: bool, post_id: int | None, now: datetime
) -> dict[str, Any]:
    return {
        "uri": activity["id"],
        "actor_id": actor_id,
        "type": activity["type"],
        "public": public,
        "post_id": post_id,
        "body": json.dumps(activity, separators=(",", ":")),
        "created_at": now,
    }


async def store_many(
    conn: AsyncConnection,
    activities: Sequence[dict[str, Any]],
    *,
    actor_id: int,
    public: bool,
    post_id: int | None,
) -> list[int]:
    """Store ``activities`` in one statement (statements, not rows, are the cost); their row ids, in order."""
    now = utcnow()
    rows = [_values(a, actor_id=actor_id, public=public, post_id=post_id, now=now) for a in activities]
    return list((await conn.execute(_INSERT, rows)).scalars())


async def store(
    conn: AsyncConnection, activity: dict[str, Any], *, actor_id: int, public: bool, post_id: int | None
) -> int:
    """Store one activity; its row id."""
    [pk] = await store_many(conn, [activity], actor_id=actor_id, public=public, post_id=post_id)
    return pk


async def replace_body(conn: AsyncConnection, uri: str, activity: dict[str, Any]) -> None:
    """Serve ``activity`` at ``uri`` from now on: an object of ours that changes (a poll's counts)."""
    await conn.execute(
        sa.update(outbound_activities)
        .where(outbound_activities.c.uri == uri)
        .values(body=json.dumps(activity, separators=(",", ":")))
    )


_BODY = sa.select(outbound_activities.c.body, outbound_activities.c.actor_id).where(
    outbound_activities.c.id == sa.bindparam("pk")
)


async def body_and_actor(conn: AsyncConnection, pk: int) -> tuple[bytes, int]:
    """What a delivery sends (the stored bytes) and whose key signs it."""
    row = (await conn.execute(_BODY, {"pk": pk})).one()
    return row.body.encode(), row.actor_id


async def find(conn: AsyncConnection, uri: str) -> OutboundActivity | None:
    """The activity with this id, or None."""
    query = sa.select(outbound_activities).where(outbound_activities.c.uri == uri)
    return record_or_none(OutboundActivity, (await conn.execute(query)).one_or_none())


async def live_announces_of(conn: AsyncConnection, post_id: int) -> list[OutboundActivity]:
    """The Announces of a post not yet tombstoned (what a removal or a delete withdraws)."""
    query = sa.select(outbound_activities).where(
        outbound_activities.c.post_id == post_id,
        outbound_activities.c.type == "Announce",
        outbound_activities.c.deleted_at.is_(None),
    )
    return [record(OutboundActivity, r) for r in (await conn.execute(query)).all()]


async def tombstone_for_post(conn: AsyncConnection, post_id: int) -> None:
    """What carried the post is gone: its activities' ids answer 410 from now on."""
    await conn.execute(
        sa.update(outbound_activities)
        .where(outbound_activities.c.post_id == post_id, outbound_activities.c.deleted_at.is_(None))
        .values(deleted_at=utcnow())
    )


async def set_hidden_for_posts(conn: AsyncConnection, post_ids: Sequence[int] | sa.Select[Any], hidden: bool) -> None:
    """Hide (or show again) the activities about these posts: their origin was suspended (or is no longer)."""
    await conn.execute(
        sa.update(outbound_activities).where(outbound_activities.c.post_id.in_(post_ids)).values(hidden=hidden)
    )


def _outbox_filter(actor_id: int) -> sa.ColumnElement[bool]:
    return sa.and_(
        outbound_activities.c.actor_id == actor_id,
        # Its redistributions, and what it posted itself (a direct message is not public).
        outbound_activities.c.type.in_(("Announce", "Create")),
        outbound_activities.c.public.is_(True),
        outbound_activities.c.deleted_at.is_(None),
        outbound_activities.c.hidden.is_(False),
    )


async def outbox_count(conn: AsyncConnection, actor_id: int) -> int:
    """How many public, live Announces and Creates an actor's outbox holds."""
    query = sa.select(sa.func.count()).select_from(outbound_activities).where(_outbox_filter(actor_id))
    return int((await conn.execute(query)).scalar_one())


async def outbox_page(
    conn: AsyncConnection, actor_id: int, *, max_id: int | None, limit: int
) -> list[tuple[int, dict[str, Any]]]:
    """(id, activity) of an actor's public Announces and Creates, newest first, older than ``max_id``."""
    query = (
        sa.select(outbound_activities.c.id, outbound_activities.c.body)
        .where(_outbox_filter(actor_id))
        .order_by(outbound_activities.c.id.desc())
        .limit(limit)
    )
    if max_id is not None:
        query = query.where(outbound_activities.c.id < max_id)
    return [(r.id, json.loads(r.body)) for r in (await conn.execute(query)).all()]
