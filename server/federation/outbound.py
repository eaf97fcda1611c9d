"""Activities we authored (Accept, Reject, Announce, Delete ...): the one owner of ``outbound_activities``
and of ``outbox_counts``, each actor's outbox total.

Each is stored once, however many inboxes it goes to, so that it dereferences at its
id and every delivery signs the same bytes. What an activity carried being deleted
turns its id into a tombstone (410); its post's origin being suspended hides it.

The outbox's ``totalItems`` (Mastodon shows it as the group's post count) would be a count
of every row: 280 ms at a million posts on PostgreSQL, 530 ms on SQLite, for any anonymous
GET. So each actor's total is kept: ``outbox_counts.n`` holds the rows up to ``upto``, the
rows after it are counted live (a range of the outbox index), and the worker moves ``upto``
on every minute (``settle``). Inserting costs nothing more: a counter row bumped by every
Announce would lock each busy group's intake behind one row, as crowd control's count did.
A tombstone or a hide adjusts ``n`` for the rows it flips at or below ``upto``, under the
counts row's lock, which ``settle`` takes before it counts; so either one counts after the
other committed, or the adjustment sees the ``upto`` the other wrote. Exact, with any
number of processes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import upsert
from server.rows import record, record_or_none
from server.tables import outbound_activities, outbox_counts
from server.types import utcnow

# How long after its ``created_at`` an inserted row may still be uncommitted. ``settle`` moves
# ``upto`` only past rows older than this: a row with a lower id that committed later would be
# neither in ``n`` nor live. Intake's transactions last milliseconds; this is a wide margin.
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


_FLIPPED = (
    outbound_activities.c.id,
    outbound_activities.c.actor_id,
    outbound_activities.c.type,
    outbound_activities.c.public,
    outbound_activities.c.deleted_at,
    outbound_activities.c.hidden,
)


async def tombstone_for_post(conn: AsyncConnection, post_id: int) -> None:
    """What carried the post is gone: its activities' ids answer 410 from now on."""
    flipped = await conn.execute(
        sa.update(outbound_activities)
        .where(outbound_activities.c.post_id == post_id, outbound_activities.c.deleted_at.is_(None))
        .values(deleted_at=utcnow())
        .returning(*_FLIPPED)
    )
    await _recount(conn, [r for r in flipped.all() if not r.hidden], -1)


async def set_hidden_for_posts(conn: AsyncConnection, post_ids: Sequence[int] | sa.Select[Any], hidden: bool) -> None:
    """Hide (or show again) the activities about these posts: their origin was suspended (or is no longer)."""
    flipped = await conn.execute(
        sa.update(outbound_activities)
        .where(outbound_activities.c.post_id.in_(post_ids), outbound_activities.c.hidden.is_not(hidden))
        .values(hidden=hidden)
        .returning(*_FLIPPED)
    )
    await _recount(conn, [r for r in flipped.all() if r.deleted_at is None], -1 if hidden else 1)


async def _recount(conn: AsyncConnection, flipped: Sequence[sa.Row[Any]], sign: int) -> None:
    """Adjust the kept totals for rows that just left (``sign`` -1) or rejoined (+1) their outbox.

    Only rows at or below their actor's ``upto`` are in ``n``; the others are counted live.
    The counts row is locked first (created empty if missing, so a first ``settle`` racing
    this waits for it), and its ``upto`` read under the lock, as ``settle`` last wrote it.
    """
    by_actor: dict[int, list[int]] = {}
    for row in flipped:
        if row.type in OUTBOX_TYPES and row.public:
            by_actor.setdefault(row.actor_id, []).append(row.id)
    for actor_id, ids in sorted(by_actor.items()):  # one lock order
        upto = await _lock_count(conn, actor_id)
        delta = sign * sum(1 for pk in ids if pk <= upto)
        if delta:
            await conn.execute(
                sa.update(outbox_counts).where(outbox_counts.c.actor_id == actor_id).values(n=outbox_counts.c.n + delta)
            )


async def _lock_count(conn: AsyncConnection, actor_id: int) -> int:
    """Lock ``actor_id``'s counts row (inserting an empty one if missing); its ``upto`` as last committed."""
    values = {"actor_id": actor_id, "upto": 0, "n": 0, "settled_at": utcnow()}
    # An upsert that changes nothing: it waits for, locks and answers with the latest row.
    stmt = upsert(conn.dialect.name, outbox_counts, ["actor_id"], values, {"n": outbox_counts.c.n})
    return int((await conn.execute(stmt.returning(outbox_counts.c.upto))).scalar_one())


def _outbox_filter(actor_id: Any) -> sa.ColumnElement[bool]:
    return sa.and_(
        outbound_activities.c.actor_id == actor_id,
        # Its redistributions, and what it posted itself (a direct message is not public).
        outbound_activities.c.type.in_(OUTBOX_TYPES),
        outbound_activities.c.public.is_(True),
        outbound_activities.c.deleted_at.is_(None),
        outbound_activities.c.hidden.is_(False),
    )


def _counted(actor_id: Any, after: Any, upto: Any = None) -> sa.ScalarSelect[int]:
    """How many of the actor's outbox rows have ``after < id <= upto`` (no upper bound: None)."""
    where = [_outbox_filter(actor_id), outbound_activities.c.id > after]
    if upto is not None:
        where.append(outbound_activities.c.id <= upto)
    return sa.select(sa.func.count()).select_from(outbound_activities).where(*where).scalar_subquery()


_KEPT = sa.select(outbox_counts.c.n, outbox_counts.c.upto).where(outbox_counts.c.actor_id == sa.bindparam("actor"))
_LIVE = sa.select(_counted(sa.bindparam("actor"), sa.bindparam("upto")))


async def outbox_count(conn: AsyncConnection, actor_id: int) -> int:
    """How many public, live Announces and Creates an actor's outbox holds: the kept total, and
    the rows after its ``upto`` counted live.

    Two statements, not one with ``upto`` as a subquery: PostgreSQL cannot see a subquery's
    value when it plans, guesses a third of the table is newer and starts parallel workers
    (10-17 ms at a million rows, against 0.2 ms). Read apart, each row still counts once, in
    its state at one moment of the request: those up to ``upto`` in the kept pair (read
    together), the rest live.
    """
    kept = (await conn.execute(_KEPT, {"actor": actor_id})).one_or_none()
    n, upto = (int(kept.n), int(kept.upto)) if kept is not None else (0, 0)
    return n + int((await conn.execute(_LIVE, {"actor": actor_id, "upto": upto})).scalar_one())


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


async def settle(conn: AsyncConnection, actor_id: int, target: int) -> int:
    """Move ``actor_id``'s kept total on to ``target`` (from ``settle_target``), in the caller's
    transaction; how many rows it added (for logs and tests).

    Counts only the rows between the old ``upto`` and ``target``, under the counts row's
    lock (the module's docstring says why that is exact beside tombstones and hides).
    """
    upto = await _lock_count(conn, actor_id)
    if target <= upto:
        return 0
    added = int((await conn.execute(sa.select(_counted(actor_id, upto, target)))).scalar_one())
    await conn.execute(
        sa.update(outbox_counts)
        .where(outbox_counts.c.actor_id == actor_id)
        .values(n=outbox_counts.c.n + added, upto=target, settled_at=utcnow())
    )
    return added


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
