"""Storing verified incoming activities, once each."""

from __future__ import annotations

import json
from typing import Any

from server.db import Database
from server.tables import inbox_items
from server.types import utcnow


async def store_activity(db: Database, activity: dict[str, Any], *, actor: str, group_id: int | None) -> bool:
    """Queue ``activity`` for the worker; False when its id was already stored (a duplicate)."""
    now = utcnow()
    stmt = db.insert_ignore(inbox_items, ["activity_uri"]).values(
        activity_uri=activity["id"],
        actor_uri=actor,
        group_id=group_id,
        body=json.dumps(activity, separators=(",", ":")),
        next_attempt_at=now,
        created_at=now,
    )
    async with db.transaction() as conn:
        result = await conn.execute(stmt)
    return result.rowcount > 0
