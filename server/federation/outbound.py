"""Activities we authored (Accept, Reject, Announce, Delete ...): the one owner of ``outbound_activities``
and of ``outbox_counts``, part of each actor's outbox total, kept.

Each is stored once, however many inboxes it goes to, so that it dereferences at its
id and every delivery signs the same bytes. What an activity carried being deleted
turns its id into a tombstone (410); its post's origin being suspended hides it.

The outbox's ``totalItems`` (Mastodon shows it as the group's post count) would be a count
of every row: 243-294 ms at a million rows on PostgreSQL, 521-589 ms on SQLite, for any
anonymous GET. So part of it is kept: ``outbox_counts.n`` is how many of the actor's
Announces and Creates (public) have an id up to ``upto``, whatever became of them since.
Those facts never change (a row's actor, type and visibility are fixed, and rows are never
deleted), so the total needs no adjustment and no lock: the count is ``n``, plus the rows
after ``upto`` that are still shown, minus the rows up to it that are gone (tombstoned or
hidden: a partial index holds only those, usually few). The worker moves ``upto`` on every
minute (``settle``). Inserting costs nothing more (a counter bumped by every Announce would
lock a busy group's intake behind one row, as crowd control's count did), and a tombstone or
a hide touches only its own rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database, upsert
from server.rows import record, record_or_none
from server.tables import OUTBOX_GONE as GONE
from server.tables import outbound_activities, outbox_counts
from server.types import utcnow

# How long after its ``created_at`` an inserted row may still be uncommitted. ``settle`` moves
# ``upto`` only past rows older than this: a row with a lower id that committed later would be
# neither in ``n`` nor live. Every transaction that writes outbox rows lasts milliseconds (and
# the hosts' clocks must agree within this): a wide margin.
SETTLE_AFTER = timedelta(minutes=10)
OUTBOX_TYPES = ("Announce", "Create")  # its redistributions, and what it posted itself


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


def _outbox_filter(actor_id: Any) -> sa.ColumnElement[bool]:
    return sa.and_(
        outbound_activities.c.actor_id == actor_id,
        # Its redistributions, and what it posted itself (a direct message is not public).
        outbound_activities.c.type.in_(OUTBOX_TYPES),
        outbound_activities.c.public.is_(True),
        outbound_activities.c.deleted_at.is_(None),
        outbound_activities.c.hidden.is_(False),
    )


def _listed(actor_id: Any) -> list[sa.ColumnElement[bool]]:
    """The actor's rows an outbox lists while they last: fixed facts of a row."""
    return [
        outbound_activities.c.actor_id == actor_id,
        outbound_activities.c.type.in_(OUTBOX_TYPES),
        outbound_activities.c.public.is_(True),
    ]


def _count(*where: sa.ColumnElement[bool]) -> sa.ScalarSelect[int]:
    return sa.select(sa.func.count()).select_from(outbound_activities).where(*where).scalar_subquery()


_KEPT = sa.select(outbox_counts.c.n, outbox_counts.c.upto).where(outbox_counts.c.actor_id == sa.bindparam("actor"))
# One statement, so one snapshot: the rows after ``upto`` still shown, less those up to it gone.
_ACTOR, _UPTO = sa.bindparam("actor"), sa.bindparam("upto")
_TYPES = ", ".join(f"'{t}'" for t in OUTBOX_TYPES)
_SINCE = {
    "postgresql": sa.select(
        _count(_outbox_filter(_ACTOR), outbound_activities.c.id > _UPTO)
        - _count(*_listed(_ACTOR), outbound_activities.c.id <= _UPTO, GONE)
    ),
    # SQLite, without statistics, walked the whole outbox index up to ``upto`` for the gone
    # rows; told the index (INDEXED BY fails the statement if it cannot serve it), and stating
    # its predicate as the index does, as SQLite needs to use a partial index.
    "sqlite": sa.text(
        "SELECT (SELECT count(*) FROM outbound_activities WHERE actor_id = :actor"
        f" AND type IN ({_TYPES}) AND public IS 1 AND deleted_at IS NULL AND hidden IS 0 AND id > :upto)"
        " - (SELECT count(*) FROM outbound_activities INDEXED BY ix_outbound_activities_gone WHERE actor_id = :actor"
        f" AND type IN ({_TYPES}) AND public IS 1 AND id <= :upto AND {GONE.text})"
    ),
}


async def _kept(conn: AsyncConnection, actor_id: int) -> tuple[int, int]:
    """The actor's kept ``(n, upto)``; ``(0, 0)`` before its first settle."""
    kept = (await conn.execute(_KEPT, {"actor": actor_id})).one_or_none()
    return (int(kept.n), int(kept.upto)) if kept is not None else (0, 0)


async def outbox_count(conn: AsyncConnection, actor_id: int) -> int:
    """How many public, live Announces and Creates an actor's outbox holds.

    ``n`` and ``upto`` are read first, then the rest with ``upto`` as a parameter: as a
    subquery PostgreSQL could not see its value when planning, guessed a third of the table
    was newer and started parallel workers (10-17 ms at a million rows, against 0.2 ms).
    """
    n, upto = await _kept(conn, actor_id)
    since = _SINCE[conn.dialect.name]
    return n + int((await conn.execute(since, {"actor": actor_id, "upto": upto})).scalar_one())


async def settle_target(conn: AsyncConnection, now: datetime | None = None) -> int | None:
    """The id the kept totals may move on to: the newest row, anyone's, older than ``SETTLE_AFTER``.

    Ids and ``created_at`` rise together, so this walks back from the newest id over the
    last ``SETTLE_AFTER``'s rows only. Asked once a round, for every actor.
    """
    query = (
        sa.select(outbound_activities.c.id)
        .where(outbound_activities.c.created_at < (now or utcnow()) - SETTLE_AFTER)
        .order_by(outbound_activities.c.id.desc())
        .limit(1)
    )
    return (await conn.execute(query)).scalar_one_or_none()


async def unsettled(conn: AsyncConnection, target: int, after: int = 0) -> list[int]:
    """The actors with outbox rows in ``(after, target]`` not yet in their kept total (a read: no lock).

    ``after``: an id up to which every actor is known settled (the caller's last round), so
    that a round reads only the rows since, not the whole table."""
    kept = outbox_counts.alias("kept")
    oa = outbound_activities
    query = (
        sa.select(oa.c.actor_id)
        .select_from(oa.outerjoin(kept, kept.c.actor_id == oa.c.actor_id))
        .where(
            oa.c.type.in_(OUTBOX_TYPES),
            oa.c.public.is_(True),
            oa.c.id > sa.func.coalesce(kept.c.upto, 0),
            oa.c.id > after,
            oa.c.id <= target,
        )
        .group_by(oa.c.actor_id)
        .order_by(oa.c.actor_id)
    )
    return [int(pk) for pk in (await conn.execute(query)).scalars()]


async def settle(db: Database, actor_id: int, target: int) -> int:
    """Move ``actor_id``'s kept count on to ``target`` (from ``settle_target``); how many rows it added.

    Counts the rows between the old ``upto`` and ``target`` in a read (facts that do not
    change: no lock, and on SQLite no write lock held while a first settle counts a million
    rows), then moves the count on only if ``upto`` is still what it read, so two workers
    settling at once add each row once.
    """
    async with db.read() as conn:
        n, upto = await _kept(conn, actor_id)
        if target <= upto:
            return 0
        between = _count(*_listed(actor_id), outbound_activities.c.id > upto, outbound_activities.c.id <= target)
        added = int((await conn.execute(sa.select(between))).scalar_one())
    moved = {"upto": target, "n": n + added, "settled_at": utcnow()}
    async with db.transaction() as conn:
        stmt = upsert(
            conn.dialect.name,
            outbox_counts,
            ["actor_id"],
            {"actor_id": actor_id, **moved},
            moved,
            where=outbox_counts.c.upto == upto,
        )
        return added if (await conn.execute(stmt)).rowcount else 0


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
