"""The moderation log of each group, like Lemmy's modlog: the one owner of the ``mod_log`` table.

Every moderation action writes its entry here in the action's own transaction; the
public page and the moderators' API and CLI read it back. The public view leaves the
moderator's name out (as Lemmy does for visitors).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.federation.vocab import iso
from server.rows import record
from server.tables import mod_log
from server.types import utcnow

PAGE = 100


@dataclass(frozen=True, slots=True)
class ModLogEntry:
    """One moderation action: who (a local name or a remote actor URI), what, on what, why."""

    id: int
    group_id: int
    moderator: str
    action: str
    target: str
    reason: str
    expires_at: datetime | None
    created_at: datetime


async def write(
    conn: AsyncConnection,
    *,
    group_id: int,
    moderator: str,
    action: str,
    target: str,
    reason: str = "",
    expires_at: datetime | None = None,
) -> None:
    """Record one action, in the caller's transaction (the action and its entry commit together)."""
    await conn.execute(
        sa.insert(mod_log).values(
            group_id=group_id,
            moderator=moderator,
            action=action,
            target=target,
            reason=reason,
            expires_at=expires_at,
            created_at=utcnow(),
        )
    )


async def entries(
    conn: AsyncConnection, group_id: int, *, max_id: int | None = None, limit: int = PAGE
) -> list[ModLogEntry]:
    """A group's entries, newest first, older than ``max_id`` when given."""
    query = sa.select(mod_log).where(mod_log.c.group_id == group_id).order_by(mod_log.c.id.desc()).limit(limit)
    if max_id is not None:
        query = query.where(mod_log.c.id < max_id)
    return [record(ModLogEntry, r) for r in (await conn.execute(query)).all()]


async def bans_since(conn: AsyncConnection, since: datetime) -> list[tuple[int, str]]:
    """``(group id, banned actor)`` of every ban logged since ``since``, in any group (lifted ones too)."""
    query = sa.select(mod_log.c.group_id, mod_log.c.target).where(
        mod_log.c.action == "ban", mod_log.c.created_at >= since
    )
    return [(r.group_id, r.target) for r in (await conn.execute(query)).all()]


def entry_json(entry: ModLogEntry, *, with_moderator: bool) -> dict[str, Any]:
    """An entry for the API and the CLI; ``with_moderator`` only for the group's moderators."""
    out: dict[str, Any] = {
        "id": entry.id,
        "action": entry.action,
        "target": entry.target,
        "reason": entry.reason,
        "expires_at": iso(entry.expires_at) if entry.expires_at else None,
        "created_at": iso(entry.created_at),
    }
    if with_moderator:
        out["moderator"] = entry.moderator
    return out
