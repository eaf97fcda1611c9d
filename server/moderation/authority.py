"""Who may moderate a group: its local owner and moderators, and listed remote moderators.

FEP-1b12's authority rule: a moderation activity about a group counts only when it
comes from the group's own origin (us) or from an actor in its moderators collection.
The one owner of the ``group_roles`` and ``remote_moderators`` tables.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.links import Links
from server.tables import group_roles, local_actors, remote_moderators, users
from server.types import utcnow

ROLES = ("owner", "moderator")


async def moderator_uris(conn: AsyncConnection, group_id: int, links: Links) -> list[str]:
    """The moderators collection: local leaders' person URIs, then listed remote moderators."""
    local = (
        (
            await conn.execute(
                sa.select(local_actors.c.name)
                .join(users, users.c.actor_id == local_actors.c.id)
                .join(group_roles, group_roles.c.user_id == users.c.id)
                .where(group_roles.c.group_id == group_id)
                .order_by(group_roles.c.role.desc(), local_actors.c.name)
            )
        )
        .scalars()
        .all()
    )
    return [links.actor("person", name) for name in local] + await remote_moderator_uris(conn, group_id)


async def is_moderator(conn: AsyncConnection, group_id: int, actor_uri: str, links: Links) -> bool:
    """True when ``actor_uri`` may moderate the group (a local leader or a listed remote moderator)."""
    return actor_uri in await moderator_uris(conn, group_id, links)


def leader_name(actor_uri: str, links: Links) -> str | None:
    """The local account an actor URI names as a person of ours (``links.actor("person", name)``), else None."""
    prefix = links.actor("person", "")
    return actor_uri[len(prefix) :] if actor_uri.startswith(prefix) else None


def moderator_column(group_id: sa.ColumnElement[Any], actor_uri: Any, leader: Any) -> sa.ColumnElement[bool]:
    """``is_moderator`` as a column for each group row of a larger query.

    True when ``actor_uri`` is a listed remote moderator, or when ``leader`` (its
    ``leader_name``; NULL matches nobody) is a local owner or moderator. Both may be
    bind parameters, so the query can be built once.
    """
    remote = sa.exists().where(remote_moderators.c.group_id == group_id, remote_moderators.c.actor_uri == actor_uri)
    person = local_actors.alias("leader")  # the outer query reads local_actors for the group itself
    local = (
        sa.exists()
        .select_from(
            group_roles.join(users, users.c.id == group_roles.c.user_id).join(person, person.c.id == users.c.actor_id)
        )
        .where(group_roles.c.group_id == group_id, person.c.name == leader)
    )
    return sa.or_(remote, local).label("moderator")


async def local_role(conn: AsyncConnection, group_id: int, user_name: str) -> str | None:
    """``owner``, ``moderator`` or None for a local account in a group."""
    return (
        await conn.execute(
            sa.select(group_roles.c.role)
            .join(users, users.c.id == group_roles.c.user_id)
            .join(local_actors, local_actors.c.id == users.c.actor_id)
            .where(group_roles.c.group_id == group_id, local_actors.c.name == user_name)
        )
    ).scalar_one_or_none()


async def led_groups(conn: AsyncConnection, user_id: int) -> dict[int, str]:
    """The groups a local account leads: group id -> its role there."""
    query = sa.select(group_roles.c.group_id, group_roles.c.role).where(group_roles.c.user_id == user_id)
    return {r.group_id: r.role for r in (await conn.execute(query)).all()}


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


async def add_role(conn: AsyncConnection, group_id: int, user_id: int, role: str) -> None:
    """Make a local account the group's owner or a moderator (nothing when it already leads it)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    exists = (
        await conn.execute(
            sa.select(group_roles.c.role).where(group_roles.c.group_id == group_id, group_roles.c.user_id == user_id)
        )
    ).first()
    if exists is None:
        await conn.execute(
            sa.insert(group_roles).values(group_id=group_id, user_id=user_id, role=role, created_at=utcnow())
        )


async def remove_moderator_role(conn: AsyncConnection, group_id: int, user_id: int) -> bool:
    """A local moderator steps down (an owner stays); False when they were not one."""
    result = await conn.execute(
        sa.delete(group_roles).where(
            group_roles.c.group_id == group_id, group_roles.c.user_id == user_id, group_roles.c.role == "moderator"
        )
    )
    return result.rowcount > 0


async def add_remote_moderator(conn: AsyncConnection, group_id: int, actor_uri: str) -> None:
    """List a remote actor as a moderator (nothing when already listed)."""
    listed = (
        await conn.execute(
            sa.select(remote_moderators.c.actor_uri).where(
                remote_moderators.c.group_id == group_id, remote_moderators.c.actor_uri == actor_uri
            )
        )
    ).first()
    if listed is None:
        await conn.execute(
            sa.insert(remote_moderators).values(group_id=group_id, actor_uri=actor_uri, created_at=utcnow())
        )


async def remove_remote_moderator(conn: AsyncConnection, group_id: int, actor_uri: str) -> bool:
    """Unlist a remote moderator; False when they were not listed."""
    result = await conn.execute(
        sa.delete(remote_moderators).where(
            remote_moderators.c.group_id == group_id, remote_moderators.c.actor_uri == actor_uri
        )
    )
    return result.rowcount > 0


async def remote_moderator_uris(conn: AsyncConnection, group_id: int) -> list[str]:
    """The remote actors listed as the group's moderators, in the order they were added."""
    query = (
        sa.select(remote_moderators.c.actor_uri)
        .where(remote_moderators.c.group_id == group_id)
        .order_by(remote_moderators.c.created_at)
    )
    return list((await conn.execute(query)).scalars().all())


async def notice_recipients(conn: AsyncConnection, group_id: int) -> list[str]:
    """The fediverse accounts a group's moderation notices go to, as actor URIs.

    Listed remote moderators, then local leaders who linked a fediverse account
    (``kith user link``); a leader without one reads the console's queue instead.
    """
    linked = (
        await conn.execute(
            sa.select(users.c.linked_actor)
            .join(group_roles, group_roles.c.user_id == users.c.id)
            .where(group_roles.c.group_id == group_id, users.c.linked_actor.is_not(None), users.c.disabled_at.is_(None))
            .order_by(group_roles.c.role.desc(), users.c.id)
        )
    ).scalars()
    return list(dict.fromkeys([*await remote_moderator_uris(conn, group_id), *linked]))


async def linked_leader(conn: AsyncConnection, group_id: int, actor_uri: str) -> str | None:
    """The local leader (owner or moderator, not disabled) who linked ``actor_uri``, by name; else None."""
    query = (
        sa.select(local_actors.c.name)
        .join(users, users.c.actor_id == local_actors.c.id)
        .join(group_roles, group_roles.c.user_id == users.c.id)
        .where(group_roles.c.group_id == group_id, users.c.linked_actor == actor_uri, users.c.disabled_at.is_(None))
    )
    return (await conn.execute(query)).scalar_one_or_none()


async def is_remote_moderator(conn: AsyncConnection, group_id: int, actor_uri: str) -> bool:
    """Whether ``actor_uri`` is listed as one of the group's remote moderators."""
    query = sa.select(remote_moderators.c.actor_uri).where(
        remote_moderators.c.group_id == group_id, remote_moderators.c.actor_uri == actor_uri
    )
    return (await conn.execute(query)).first() is not None


async def transfer_owner(conn: AsyncConnection, group_id: int, user_id: int) -> bool:
    """Make a local account the group's one owner; the previous owner stays on as a moderator.

    Returns whether the new owner led the group before (as a moderator), i.e. whether the
    moderators collection is unchanged.
    """
    before = (
        await conn.execute(
            sa.select(group_roles.c.role).where(group_roles.c.group_id == group_id, group_roles.c.user_id == user_id)
        )
    ).scalar_one_or_none()
    await conn.execute(
        sa.update(group_roles)
        .where(group_roles.c.group_id == group_id, group_roles.c.role == "owner", group_roles.c.user_id != user_id)
        .values(role="moderator")
    )
    if before is None:
        await conn.execute(
            sa.insert(group_roles).values(group_id=group_id, user_id=user_id, role="owner", created_at=utcnow())
        )
    else:
        await conn.execute(
            sa.update(group_roles)
            .where(group_roles.c.group_id == group_id, group_roles.c.user_id == user_id)
            .values(role="owner")
        )
    return before is not None
