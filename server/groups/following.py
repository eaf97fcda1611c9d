"""Members of a group and follow requests: the one owner of the ``follows`` and
``membership_events`` tables.

Follow, accept, hold for a moderator, approve, reject, undo, and memberships ended by a
ban, a domain block or the member's actor deleting itself all happen here. Each change and
the activity that tells the follower about it are written in one transaction, so a crash
can never leave a member accepted without an Accept queued. Every membership that begins
or ends also writes a ``membership_events`` row in that transaction (a leave deletes the
``follows`` row, so that row is the only trace of it): a group's weekly figures count
joins and leaves from it (``groups/stats``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import BadRequest, NotFound
from server.federation import activities
from server.federation.actors import RemoteActor, find_actor
from server.federation.delivery import enqueue
from server.federation.objects import refused
from server.groups import crowd_alarm
from server.groups.membership import Group, get_group
from server.groups.welcome import welcome_member
from server.moderation import crowd
from server.moderation.notices import Notice, notify_moderators
from server.rows import record
from server.services import Services
from server.tables import follows, membership_events, remote_actors
from server.types import utcnow

log = logging.getLogger("kith.following")


@dataclass(frozen=True, slots=True)
class Follow:
    """A member (``accepted``) or a request awaiting a moderator (``pending``), with who it is."""

    id: int
    group_id: int
    actor_id: int
    activity_uri: str  # the Follow's id, echoed in Accept/Reject
    activity_raw: str
    state: str  # pending | accepted
    created_at: datetime
    decided_at: datetime | None
    actor_uri: str
    preferred_username: str | None
    domain: str

    @property
    def follow_activity(self) -> dict[str, Any]:
        """The Follow as it arrived."""
        doc: dict[str, Any] = json.loads(self.activity_raw)
        return doc


#: ``membership_events.kind``: accepted; ended by the member (an Undo, their actor deleted);
#: ended by a moderator or an admin (a ban, a domain block).
JOINED, LEFT, REMOVED = "joined", "left", "removed"


async def _joined(conn: AsyncConnection, group_id: int, actor_uri: str) -> None:
    await conn.execute(
        sa.insert(membership_events).values(group_id=group_id, actor_uri=actor_uri, kind=JOINED, created_at=utcnow())
    )


async def _end(conn: AsyncConnection, which: sa.ColumnElement[bool], kind: str) -> int:
    """Delete the follows ``which`` selects, first recording the memberships among them as ended by ``kind``."""
    ended = (
        await conn.execute(
            sa.select(follows.c.group_id, remote_actors.c.uri)
            .join(remote_actors, remote_actors.c.id == follows.c.actor_id)
            .where(which, follows.c.state == "accepted")
        )
    ).all()
    if ended:
        now = utcnow()
        await conn.execute(
            sa.insert(membership_events),
            [{"group_id": g, "actor_uri": uri, "kind": kind, "created_at": now} for g, uri in ended],
        )
    return (await conn.execute(sa.delete(follows).where(which))).rowcount


_FOLLOWS = sa.select(
    follows,
    remote_actors.c.uri.label("actor_uri"),
    remote_actors.c.preferred_username,
    remote_actors.c.domain,
).join(remote_actors, remote_actors.c.id == follows.c.actor_id)


async def _send(
    conn: AsyncConnection, services: Services, group: Group, activity: dict[str, Any], actor: RemoteActor
) -> None:
    await enqueue(conn, services.db, activity=activity, actor_id=group.id, inboxes=[actor.delivery_inbox])


async def receive_follow(services: Services, group: Group, actor: RemoteActor, follow: dict[str, Any]) -> str:
    """Record a Follow of ``group`` by remote ``actor``; returns the resulting state.

    Auto-approving groups accept at once, unless crowd control is on (then every new
    follow waits for a moderator); a new follow is counted for crowd control's alarm and
    may itself trip it. A repeated Follow is idempotent: an accepted member gets the
    Accept again (their server may have lost it), a pending one stays pending.
    """
    base = services.links.base
    group_uri = services.links.group(group.name)
    now = utcnow()
    async with services.db.transaction() as conn:
        existing = (
            await conn.execute(sa.select(follows).where(follows.c.group_id == group.id, follows.c.actor_id == actor.id))
        ).one_or_none()
        raw = json.dumps(follow, separators=(",", ":"))
        if existing is None:
            control = await crowd.watch_follow(conn, services.db, group, await crowd.load(conn, group.id), now=now)
            await crowd_alarm.tell(conn, services, group, control)
            state = "accepted" if group.approval == "auto" and not control.on(now) else "pending"
            await conn.execute(
                sa.insert(follows).values(
                    group_id=group.id,
                    actor_id=actor.id,
                    activity_uri=follow["id"],
                    activity_raw=raw,
                    state=state,
                    created_at=now,
                    decided_at=now if state == "accepted" else None,
                )
            )
        else:
            state = existing.state
            await conn.execute(
                sa.update(follows)
                .where(follows.c.id == existing.id)
                .values(activity_uri=follow["id"], activity_raw=raw)
            )
        if state == "accepted":
            await _send(conn, services, group, activities.accept_follow(base, group_uri, follow), actor)
            if existing is None:
                await _joined(conn, group.id, actor.uri)
                await welcome_member(conn, services, group, actor)
        elif existing is None:
            notice = Notice(
                "follow", follow_actor=actor.uri, author=actor.handle, excerpt=actor.name or "", link=actor.uri
            )
            await notify_moderators(conn, services, group, notice)
    return state


async def decide_follow(services: Services, group_name: str, actor_uri: str, *, approve: bool) -> str:
    """A moderator approves (Accept) or refuses (Reject) a pending follow."""
    async with services.db.transaction() as conn:
        group = await get_group(conn, group_name)
        return await decide_pending(conn, services, group, actor_uri, approve=approve)


async def decide_pending(
    conn: AsyncConnection, services: Services, group: Group, actor_uri: str, *, approve: bool
) -> str:
    """Approve or refuse a pending follow in the caller's transaction (the moderation log's too)."""
    row = await find_follow(conn, group.id, actor_uri)
    if row.state != "pending":
        raise BadRequest(f"{actor_uri} is already a member")
    actor = await find_actor(conn, actor_uri)
    assert actor is not None  # the follow row references it
    group_uri = services.links.group(group.name)
    if approve:
        await conn.execute(
            sa.update(follows).where(follows.c.id == row.id).values(state="accepted", decided_at=utcnow())
        )
        activity = activities.accept_follow(services.links.base, group_uri, row.follow_activity)
        await _joined(conn, group.id, actor.uri)
        await welcome_member(conn, services, group, actor)
    else:
        await conn.execute(sa.delete(follows).where(follows.c.id == row.id))
        activity = activities.reject_follow(services.links.base, group_uri, row.follow_activity)
    await _send(conn, services, group, activity, actor)
    return "accepted" if approve else "rejected"


async def undo_follow(services: Services, group: Group, actor: RemoteActor) -> bool:
    """Remove ``actor`` from ``group`` (their Undo(Follow)); True when they were there."""
    async with services.db.transaction() as conn:
        return await end_membership(conn, group.id, actor.id, kind=LEFT)


async def end_membership(conn: AsyncConnection, group_id: int, actor_id: int, *, kind: str = REMOVED) -> bool:
    """End a membership or a pending request, in the caller's transaction: a ban (``REMOVED``), or
    the member's own leave (``LEFT``)."""
    return await _end(conn, sa.and_(follows.c.group_id == group_id, follows.c.actor_id == actor_id), kind) > 0


async def end_memberships_of(conn: AsyncConnection, actor_ids: Sequence[int]) -> int:
    """End every membership and request of these actors, in every group (their server was blocked)."""
    ended = 0
    for i in range(0, len(actor_ids), 500):
        ended += await _end(conn, follows.c.actor_id.in_(actor_ids[i : i + 500]), REMOVED)
    return ended


async def leave_everywhere(services: Services, actor_uri: str) -> int:
    """End every membership and request of a remote actor that deleted itself (before it is forgotten)."""
    async with services.db.transaction() as conn:
        actor = await find_actor(conn, actor_uri)
        return 0 if actor is None else await _end(conn, follows.c.actor_id == actor.id, LEFT)


def member_column(group_id: sa.ColumnElement[Any], actor_uri: Any) -> sa.ColumnElement[bool]:
    """``member``: is ``actor_uri`` (a URI or a bind parameter) an accepted member, per group row of a larger query."""
    return (
        sa.exists()
        .select_from(follows.join(remote_actors, remote_actors.c.id == follows.c.actor_id))
        .where(follows.c.group_id == group_id, remote_actors.c.uri == actor_uri, follows.c.state == "accepted")
        .label("member")
    )


def member_since_column(group_id: sa.ColumnElement[Any], actor_uri: Any) -> sa.ScalarSelect[Any]:
    """``member_since``: when ``actor_uri`` became an accepted member (None: not one), per group row.

    The moment the membership was accepted (a manual group's approval), else when it was asked.
    """
    return (
        sa.select(sa.func.coalesce(follows.c.decided_at, follows.c.created_at, type_=follows.c.created_at.type))
        .select_from(follows.join(remote_actors, remote_actors.c.id == follows.c.actor_id))
        .where(follows.c.group_id == group_id, remote_actors.c.uri == actor_uri, follows.c.state == "accepted")
        .scalar_subquery()
    )


def member_count_column(group_id: sa.ColumnElement[Any]) -> sa.ScalarSelect[int]:
    """The number of accepted members, per group row of a larger query (as ``count_members``)."""
    return (
        sa.select(sa.func.count())
        .where(follows.c.group_id == group_id, follows.c.state == "accepted")
        .scalar_subquery()
    )


async def count_members(conn: AsyncConnection, group_id: int) -> int:
    """How many accepted members a group has."""
    query = sa.select(sa.func.count()).where(follows.c.group_id == group_id, follows.c.state == "accepted")
    return int((await conn.execute(query)).scalar_one())


async def list_follows(conn: AsyncConnection, group_id: int, state: str | None = None) -> list[Follow]:
    """Members and/or pending follow requests, oldest first, with each actor's URI and handle."""
    query = _FOLLOWS.where(follows.c.group_id == group_id).order_by(follows.c.created_at, follows.c.id)
    if state is not None:
        query = query.where(follows.c.state == state)
    return [record(Follow, r) for r in (await conn.execute(query)).all()]


async def pending_requests(conn: AsyncConnection, group_id: int, *, limit: int) -> list[Follow]:
    """Follow requests waiting for a moderator, oldest first (the moderation queue)."""
    query = (
        _FOLLOWS.where(follows.c.group_id == group_id, follows.c.state == "pending")
        .order_by(follows.c.created_at, follows.c.id)
        .limit(limit)
    )
    return [record(Follow, r) for r in (await conn.execute(query)).all()]


async def count_pending(conn: AsyncConnection, group_id: int) -> int:
    """How many follow requests wait for a moderator."""
    query = sa.select(sa.func.count()).where(follows.c.group_id == group_id, follows.c.state == "pending")
    return int((await conn.execute(query)).scalar_one())


async def page_follows(
    conn: AsyncConnection, group_id: int, *, state: str | None, max_id: int | None, limit: int
) -> list[Follow]:
    """Members and/or requests, newest first, older than ``max_id`` (a page of the moderation API)."""
    query = _FOLLOWS.where(follows.c.group_id == group_id).order_by(follows.c.id.desc()).limit(limit)
    if state is not None:
        query = query.where(follows.c.state == state)
    if max_id is not None:
        query = query.where(follows.c.id < max_id)
    return [record(Follow, r) for r in (await conn.execute(query)).all()]


async def find_follow(conn: AsyncConnection, group_id: int, actor_uri: str) -> Follow:
    """``actor_uri``'s membership or request, else ``NotFound``."""
    row = (
        await conn.execute(_FOLLOWS.where(follows.c.group_id == group_id, remote_actors.c.uri == actor_uri))
    ).one_or_none()
    if row is None:
        raise NotFound(f"no follow of this group by {actor_uri}")
    return record(Follow, row)


async def find_follow_by_activity(conn: AsyncConnection, activity_uri: str, actor_uri: str) -> Follow | None:
    """The membership a Follow of this id by this actor made (an Undo by reference), or None."""
    row = (
        await conn.execute(_FOLLOWS.where(follows.c.activity_uri == activity_uri, remote_actors.c.uri == actor_uri))
    ).first()
    return None if row is None else record(Follow, row)


async def member_inboxes(
    conn: AsyncConnection,
    group_id: int,
    *,
    after: str | None = None,
    until: str | None = None,
    is_blocked: Callable[[str], bool] | None = None,
) -> list[str]:
    """One inbox per member server (its shared inbox where it has one), in order, in (``after``, ``until``].

    Inboxes on a domain ``is_blocked`` refuses, or that are not http(s) URLs, are left out.
    """
    inbox = sa.func.coalesce(remote_actors.c.shared_inbox, remote_actors.c.inbox).label("inbox")
    query = (
        sa.select(inbox)
        .distinct()
        .join(follows, follows.c.actor_id == remote_actors.c.id)
        .where(follows.c.group_id == group_id, follows.c.state == "accepted")
        .order_by(inbox)
    )
    if after is not None:
        query = query.where(inbox > after)
    if until is not None:
        query = query.where(inbox <= until)
    found = [r.inbox for r in (await conn.execute(query)).all()]
    return [i for i in found if not refused(i, is_blocked or _open)]


async def member_servers(conn: AsyncConnection, *, is_blocked: Callable[[str], bool] | None = None) -> list[str]:
    """The inbox fan-outs use for each server with a member in any group (as ``member_inboxes``), sorted."""
    inbox = sa.func.coalesce(remote_actors.c.shared_inbox, remote_actors.c.inbox).label("inbox")
    query = (
        sa.select(inbox)
        .distinct()
        .join(follows, follows.c.actor_id == remote_actors.c.id)
        .where(follows.c.state == "accepted")
        .order_by(inbox)
    )
    found = [r.inbox for r in (await conn.execute(query)).all()]
    return [i for i in found if not refused(i, is_blocked or _open)]


def _open(_host: str) -> bool:
    return False
