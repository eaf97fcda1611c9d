"""A group's rulebook as stored: its guards and its bans (the I/O beside the pure guards).

The one owner of the ``group_guards`` and ``bans`` tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database, upsert
from server.errors import BadRequest
from server.moderation.guards import Guards
from server.rows import record
from server.tables import bans, group_guards
from server.types import utcnow

GUARD_COLUMNS = (
    "hold_first_posts",
    "keywords",
    "link_domains",
    "filter_action",
    "member_posts_per_hour",
    "instance_posts_per_hour",
    "max_group_mentions",
)


def guard_columns() -> list[sa.ColumnElement[Any]]:
    """The guard settings as ``guard_*`` columns, to outer-join into a query about a group."""
    return [group_guards.c[name].label(f"guard_{name}") for name in GUARD_COLUMNS]


def guards_from(values: Any, prefix: str = "") -> Guards:
    """Guards from a row of ``group_guards`` (or of ``guard_columns()`` with ``prefix="guard_"``).

    A group without a guards row (every column None from an outer join) has every guard off.
    """
    if getattr(values, prefix + "filter_action") is None:
        return Guards()

    def get(name: str) -> Any:
        return getattr(values, prefix + name)

    return Guards(
        hold_first_posts=get("hold_first_posts"),
        keywords=tuple(w.strip() for w in get("keywords").splitlines() if w.strip()),
        link_domains=tuple(d.strip().lower() for d in get("link_domains").splitlines() if d.strip()),
        filter_action=get("filter_action"),
        member_posts_per_hour=get("member_posts_per_hour"),
        instance_posts_per_hour=get("instance_posts_per_hour"),
        max_group_mentions=get("max_group_mentions"),
    )


async def load_guards(conn: AsyncConnection, group_id: int) -> Guards:
    """A group's guard settings (all off when it never set any)."""
    row = (await conn.execute(sa.select(group_guards).where(group_guards.c.group_id == group_id))).one_or_none()
    return Guards() if row is None else guards_from(row)


GUARD_FIELDS = {
    "hold_first_posts": int,
    "keywords": list,
    "link_domains": list,
    "filter_action": str,
    "member_posts_per_hour": int,
    "instance_posts_per_hour": int,
    "max_group_mentions": int,
}


async def save_guards(conn: AsyncConnection, db: Database, group_id: int, changes: dict[str, Any]) -> Guards:
    """Change some guard settings; validated, the rest kept."""
    current = await load_guards(conn, group_id)
    values: dict[str, Any] = {
        "hold_first_posts": current.hold_first_posts,
        "keywords": "\n".join(current.keywords),
        "link_domains": "\n".join(current.link_domains),
        "filter_action": current.filter_action,
        "member_posts_per_hour": current.member_posts_per_hour,
        "instance_posts_per_hour": current.instance_posts_per_hour,
        "max_group_mentions": current.max_group_mentions,
    }
    for key, value in changes.items():
        kind = GUARD_FIELDS.get(key)
        if kind is None:
            raise BadRequest(f"unknown guard {key!r}")
        if kind is int:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100_000:
                raise BadRequest(f"{key} must be a whole number from 0 to 100000")
            values[key] = value
        elif kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 500:
                raise BadRequest(f"{key} must be a list of at most 500 strings")
            values[key] = "\n".join(v.strip() for v in value if v.strip())
        else:
            if value not in ("hold", "reject"):
                raise BadRequest("filter_action must be hold or reject")
            values[key] = value
    values["updated_at"] = utcnow()
    await conn.execute(upsert(db.dialect, group_guards, ["group_id"], {"group_id": group_id, **values}, values))
    return await load_guards(conn, group_id)


def ban_in_force(expires_at: datetime | None) -> bool:
    """Does a ban with this expiry (None: never) still hold now?"""
    return expires_at is None or expires_at > utcnow()


@dataclass(frozen=True, slots=True)
class Ban:
    """A remote actor banned from a group, until ``expires_at`` when set."""

    group_id: int
    actor_uri: str
    reason: str
    expires_at: datetime | None
    created_at: datetime


async def add_ban(
    conn: AsyncConnection, db: Database, group_id: int, actor_uri: str, *, reason: str, expires_at: datetime | None
) -> None:
    """Ban ``actor_uri`` from the group (a new ban replaces the reason and expiry of an old one)."""
    values = {
        "group_id": group_id,
        "actor_uri": actor_uri,
        "reason": reason,
        "expires_at": expires_at,
        "created_at": utcnow(),
    }
    await conn.execute(
        upsert(db.dialect, bans, ["group_id", "actor_uri"], values, {"reason": reason, "expires_at": expires_at})
    )


async def lift_ban(conn: AsyncConnection, group_id: int, actor_uri: str) -> bool:
    """Lift a ban; False when there was none."""
    result = await conn.execute(sa.delete(bans).where(bans.c.group_id == group_id, bans.c.actor_uri == actor_uri))
    return result.rowcount > 0


async def list_bans(conn: AsyncConnection, group_id: int) -> list[Ban]:
    """A group's bans, newest first (expired ones too: the moderators see what was)."""
    query = sa.select(bans).where(bans.c.group_id == group_id).order_by(bans.c.created_at.desc())
    return [record(Ban, r) for r in (await conn.execute(query)).all()]


async def get_ban(conn: AsyncConnection, group_id: int, actor_uri: str) -> Ban | None:
    """The actor's ban from the group (in force or not), or None."""
    query = sa.select(bans).where(bans.c.group_id == group_id, bans.c.actor_uri == actor_uri)
    row = (await conn.execute(query)).one_or_none()
    return None if row is None else record(Ban, row)


def ban_columns(group_id: sa.ColumnElement[Any], actor_uri: Any) -> list[sa.ColumnElement[Any]]:
    """``banned`` (a ban row exists) and ``ban_expires_at`` for each group row of a larger query.

    ``actor_uri`` is a URI or a bind parameter (so the query can be built once).
    The expiry is judged in Python by ``ban_in_force``.
    """
    where = (bans.c.group_id == group_id, bans.c.actor_uri == actor_uri)
    return [
        sa.exists().where(*where).label("banned"),
        sa.select(bans.c.expires_at).where(*where).scalar_subquery().label("ban_expires_at"),
    ]
