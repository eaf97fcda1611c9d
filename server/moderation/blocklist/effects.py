"""What a policy change does to data already stored: the one place that acts on other modules' tables.

Run inside the change's transaction (``store.policy_change``), after the new policy is
written, so that the change and its effects commit together.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.moderation.blocklist.cache import load_policy
from server.moderation.blocklist.matcher import host_of_authority
from server.tables import deliveries, follows, outbound_activities, posts, remote_actors
from server.types import utcnow

Effects = dict[str, int]
"""What a change did: memberships removed, posts hidden or restored, deliveries dropped."""


async def reconcile(conn: AsyncConnection) -> Effects:
    """Make stored data agree with the policy just written (one transaction with the change).

    Suspended origins lose their memberships and pending follows, their posts and our
    Announces of them are hidden, and deliveries queued to them are dropped. Origins no
    longer suspended get their posts back (the memberships are gone: they follow anew).

    These statements touch tables other modules own (follows, posts, outbound activities,
    deliveries); they are kept together here until each owner offers them.
    """
    policy = await load_policy(conn)
    actors = (await conn.execute(sa.select(remote_actors.c.id, remote_actors.c.uri, remote_actors.c.domain))).all()
    cut = [a.id for a in actors if policy.is_suspended(host_of_authority(a.domain)) or policy.actor_suspended(a.uri)]
    stats = {"memberships_removed": 0, "posts_hidden": 0, "posts_restored": 0, "deliveries_dropped": 0}
    for chunk in _chunks(cut):
        stats["memberships_removed"] += (
            await conn.execute(sa.delete(follows).where(follows.c.actor_id.in_(chunk)))
        ).rowcount
        hidden = (
            (
                await conn.execute(
                    sa.update(posts)
                    .where(posts.c.author_id.in_(chunk), posts.c.state == "visible")
                    .values(state="suspended")
                    .returning(posts.c.id)
                )
            )
            .scalars()
            .all()
        )
        stats["posts_hidden"] += len(hidden)
    await conn.execute(
        sa.update(outbound_activities)
        .where(outbound_activities.c.post_id.in_(sa.select(posts.c.id).where(posts.c.state == "suspended")))
        .values(hidden=True)
    )
    # Restore what is no longer cut off.
    cut_set = set(cut)
    restorable = (
        await conn.execute(sa.select(posts.c.id, posts.c.author_id).where(posts.c.state == "suspended"))
    ).all()
    restore = [p.id for p in restorable if p.author_id not in cut_set]
    for chunk in _chunks(restore):
        await conn.execute(sa.update(posts).where(posts.c.id.in_(chunk)).values(state="visible"))
        await conn.execute(
            sa.update(outbound_activities).where(outbound_activities.c.post_id.in_(chunk)).values(hidden=False)
        )
        stats["posts_restored"] += len(chunk)
    queued = (
        (await conn.execute(sa.select(deliveries.c.domain).where(deliveries.c.state == "queued").distinct()))
        .scalars()
        .all()
    )
    dead = [d for d in queued if policy.is_suspended(host_of_authority(d))]
    for chunk in _chunks(dead):
        stats["deliveries_dropped"] += (
            await conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.domain.in_(chunk), deliveries.c.state == "queued")
                .values(state="dead", last_error="the domain is suspended", lease_until=None, finished_at=utcnow())
            )
        ).rowcount
    return stats


def _chunks(items: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
