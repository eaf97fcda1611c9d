"""Groups, their leaders, members and pending follows.

Functions take an open connection so callers compose them into one transaction
(for example: accept a follow *and* queue the Accept delivery, atomically).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.accounts import get_user
from server.db import Database
from server.errors import BadRequest, NotFound
from server.local_actors import ensure_no_clash, get_local_actor, insert_local_actor
from server.names import validate_name
from server.tables import follows, group_roles, local_actors, remote_actors, users
from server.types import utcnow

APPROVAL_MODES = ("auto", "manual")
POSTING_MODES = ("members", "anyone", "moderators")


@dataclass(frozen=True)
class GroupSpec:
    """What a new group is made of; validated by ``create_group``."""

    name: str
    title: str = ""
    summary: str = ""
    owner: str | None = None
    approval: str = "auto"
    posting: str = "members"
    rules: str = ""  # one rule per line


async def create_group(db: Database, spec: GroupSpec) -> sa.Row:
    """Create a group actor with its own key pair (and its owner's role, when named)."""
    validate_name(spec.name)
    if spec.approval not in APPROVAL_MODES:
        raise BadRequest(f"approval must be one of {', '.join(APPROVAL_MODES)}")
    if spec.posting not in POSTING_MODES:
        raise BadRequest(f"posting must be one of {', '.join(POSTING_MODES)}")
    if len(spec.title) > 200:
        raise BadRequest("the title must be at most 200 characters")
    if len(spec.summary) > 5000:
        raise BadRequest("the summary must be at most 5000 characters")
    if len(spec.rules) > 5000:
        raise BadRequest("the rules must be at most 5000 characters")
    async with db.transaction() as conn:
        await ensure_no_clash(conn, spec.name)
        owner = await get_user(conn, spec.owner) if spec.owner else None
        group = await insert_local_actor(
            conn,
            name=spec.name,
            kind="group",
            title=spec.title or spec.name,
            summary=spec.summary,
            approval=spec.approval,
            posting=spec.posting,
            rules=spec.rules,
        )
        if owner is not None:
            await conn.execute(
                sa.insert(group_roles).values(group_id=group.id, user_id=owner.id, role="owner", created_at=utcnow())
            )
    return group


async def get_group(conn: AsyncConnection, name: str) -> sa.Row:
    """The group called ``name``, else ``NotFound``."""
    return await get_local_actor(conn, name, "group")


async def get_group_by_id(conn: AsyncConnection, group_id: int) -> sa.Row:
    row = (
        await conn.execute(sa.select(local_actors).where(local_actors.c.id == group_id, local_actors.c.kind == "group"))
    ).one_or_none()
    if row is None:
        raise NotFound("no such group")
    return row


async def list_groups(conn: AsyncConnection) -> list[sa.Row]:
    query = sa.select(local_actors).where(local_actors.c.kind == "group").order_by(local_actors.c.name)
    return list((await conn.execute(query)).all())


async def moderator_names(conn: AsyncConnection, group_id: int) -> list[tuple[str, str]]:
    """(name, role) of each local leader of a group, owner first."""
    query = (
        sa.select(local_actors.c.name, group_roles.c.role)
        .join(users, users.c.id == group_roles.c.user_id)
        .join(local_actors, local_actors.c.id == users.c.actor_id)
        .where(group_roles.c.group_id == group_id)
        .order_by(group_roles.c.role.desc(), local_actors.c.name)
    )
    return [(r.name, r.role) for r in (await conn.execute(query)).all()]


def member_column(group_id: sa.ColumnElement[Any], actor_uri: Any) -> sa.ColumnElement[bool]:
    """``member``: is ``actor_uri`` (a URI or a bind parameter) an accepted member, per group row of a larger query."""
    return (
        sa.exists()
        .select_from(follows.join(remote_actors, remote_actors.c.id == follows.c.actor_id))
        .where(follows.c.group_id == group_id, remote_actors.c.uri == actor_uri, follows.c.state == "accepted")
        .label("member")
    )


async def count_members(conn: AsyncConnection, group_id: int) -> int:
    query = sa.select(sa.func.count()).where(follows.c.group_id == group_id, follows.c.state == "accepted")
    return int((await conn.execute(query)).scalar_one())


async def list_follows(conn: AsyncConnection, group_id: int, state: str | None = None) -> list[sa.Row]:
    """Members and/or pending follow requests, with each actor's URI and handle."""
    query = (
        sa.select(
            follows,
            remote_actors.c.uri.label("actor_uri"),
            remote_actors.c.preferred_username,
            remote_actors.c.domain,
        )
        .join(remote_actors, remote_actors.c.id == follows.c.actor_id)
        .where(follows.c.group_id == group_id)
        .order_by(follows.c.created_at, follows.c.id)
    )
    if state is not None:
        query = query.where(follows.c.state == state)
    return list((await conn.execute(query)).all())


async def find_follow(conn: AsyncConnection, group_id: int, actor_uri: str) -> sa.Row:
    query = (
        sa.select(follows, remote_actors.c.uri.label("actor_uri"))
        .join(remote_actors, remote_actors.c.id == follows.c.actor_id)
        .where(follows.c.group_id == group_id, remote_actors.c.uri == actor_uri)
    )
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        raise NotFound(f"no follow of this group by {actor_uri}")
    return row


async def count_usage(conn: AsyncConnection) -> dict[str, int]:
    """Real counts for NodeInfo: local users, groups, and members active in any group."""
    n_users = (await conn.execute(sa.select(sa.func.count()).select_from(users))).scalar_one()
    n_groups = (await conn.execute(sa.select(sa.func.count()).where(local_actors.c.kind == "group"))).scalar_one()
    return {"users": int(n_users), "groups": int(n_groups)}


def group_name_from_uri(uri: str, links: Any) -> str | None:
    """The local group name in a group actor URI of ours, else None."""
    prefix = links.base + "/groups/"
    if not uri.startswith(prefix):
        return None
    name = uri[len(prefix) :]
    return name if name and "/" not in name and "#" not in name and "?" not in name else None
