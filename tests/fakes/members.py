"""Members written straight into the database, for tests about sending to many servers.

Joining through the inbox (``tests/fakes/world.py``) proves the Follow path; tests of fan-out,
faults and admin tools need dozens of members on servers that exist only as inboxes, and
write their rows as the Follow handler would have.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import sqlalchemy as sa

from server.db import Database
from server.tables import follows, remote_actors
from server.types import utcnow


async def add_members(db: Database, group_id: int, members: Iterable[tuple[str, str | None]]) -> None:
    """An accepted member for each ``(actor URI, shared inbox or None)``; its own inbox is ``URI/inbox``."""
    now = utcnow()
    async with db.transaction() as conn:
        for uri, shared_inbox in members:
            actor_id = (
                await conn.execute(
                    sa.insert(remote_actors)
                    .values(
                        uri=uri,
                        domain=urlsplit(uri).hostname,
                        type="Person",
                        inbox=f"{uri}/inbox",
                        shared_inbox=shared_inbox,
                        raw="{}",
                        fetched_at=now,
                    )
                    .returning(remote_actors.c.id)
                )
            ).scalar_one()
            await conn.execute(
                sa.insert(follows).values(
                    group_id=group_id,
                    actor_id=actor_id,
                    activity_uri=f"{uri}#follow",
                    activity_raw="{}",
                    state="accepted",
                    created_at=now,
                    decided_at=now,
                )
            )
