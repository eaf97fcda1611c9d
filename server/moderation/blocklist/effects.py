"""What a policy change does to data already stored, through the owners of that data.

Run inside the change's transaction (``store.policy_change``), after the new policy is
written, so that the change and its effects commit together.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from server.federation.actors import actor_origins
from server.federation.delivery import drop_queued_to
from server.groups.following import end_memberships_of
from server.groups.posts import suspend_by_authors, unsuspend_except
from server.moderation.blocklist.cache import load_policy
from server.moderation.blocklist.matcher import host_of_authority

Effects = dict[str, int]
"""What a change did: memberships removed, posts hidden or restored, deliveries dropped."""


async def reconcile(conn: AsyncConnection) -> Effects:
    """Make stored data agree with the policy just written (one transaction with the change).

    Suspended origins lose their memberships and pending follows, their posts and our
    Announces of them are hidden, and deliveries queued to them are dropped. Origins no
    longer suspended get their posts back (the memberships are gone: they follow anew).
    Each table is changed by its owner.
    """
    policy = await load_policy(conn)
    cut = [
        a.id
        for a in await actor_origins(conn)
        if policy.is_suspended(host_of_authority(a.domain)) or policy.actor_suspended(a.uri)
    ]
    return {
        "memberships_removed": await end_memberships_of(conn, cut),
        "posts_hidden": await suspend_by_authors(conn, cut),
        "posts_restored": await unsuspend_except(conn, set(cut)),
        "deliveries_dropped": await drop_queued_to(conn, lambda d: policy.is_suspended(host_of_authority(d))),
    }
