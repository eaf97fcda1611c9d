"""Taking a post into a group: which group, trust by origin, the thread, the policy, the Announces.

Used by the Create handler (a member posts or replies) and the Announce handler
(content seen through someone else's Announce, always refetched from its origin).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from server.errors import NotFound
from server.federation import activities
from server.federation.client import FetchError
from server.federation.delivery import enqueue
from server.federation.urls import host_of
from server.federation.vocab import AS_CONTEXT
from server.groups.following import inbox_of
from server.groups.membership import get_group, get_group_by_id, group_name_from_uri
from server.groups.posts import find_post, find_post_by_id, insert_post, is_tombstoned
from server.groups.redistribute import redistribute
from server.inbox.parse import ParseError, PostEnvelope, parse_post, same_origin
from server.moderation.authority import is_moderator
from server.moderation.guards import ACCEPT, screen
from server.moderation.policy import may_post
from server.moderation.settings import active_ban, known_group_uris, load_guards, recent_counts
from server.services import Services
from server.tables import follows

log = logging.getLogger("kith.intake")

FETCH_BUDGET = 20  # remote fetches one activity may cause (parents of a reply, refetches)


@dataclass
class Budget:
    """How many more remote fetches this activity may cost."""

    left: int = FETCH_BUDGET

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


async def fetch_trusted(services: Services, uri: str, budget: Budget) -> dict[str, Any] | None:
    """Fetch an object from its origin; None when over budget, unreachable, or its id is not ``uri``'s host."""
    if not budget.take():
        log.info("fetch budget spent before %s", uri)
        return None
    try:
        fetched = await services.fetcher.fetch_json(uri)
    except FetchError as exc:
        log.info("could not fetch %s: %s", uri, exc.reason)
        return None
    obj = fetched.data
    ident = obj.get("id")
    if not isinstance(ident, str) or not same_origin(ident, fetched.url):
        log.info("object fetched from %s claims id %r", fetched.url, ident)
        return None
    return obj


async def _group_of(services: Services, env: PostEnvelope) -> Any | None:
    """The first of our groups the post is addressed to, mentions, or names as audience."""
    for uri in (*env.audience, *env.mentions):
        name = group_name_from_uri(uri, services.links)
        if name is None:
            continue
        try:
            async with services.db.read() as conn:
                return await get_group(conn, name)
        except NotFound:
            continue
    return None


async def _is_member(conn: Any, group_id: int, actor_id: int) -> bool:
    row = await conn.execute(
        sa.select(follows.c.id).where(
            follows.c.group_id == group_id, follows.c.actor_id == actor_id, follows.c.state == "accepted"
        )
    )
    return row.first() is not None


async def _ancestors(services: Services, env: PostEnvelope, budget: Budget) -> tuple[Any | None, list[tuple]]:
    """Walk up a reply chain: the nearest known post, and the unknown public ancestors fetched on the way."""
    chain: list[tuple[PostEnvelope, dict[str, Any]]] = []
    current = env.in_reply_to
    seen = {env.uri}
    while current and current not in seen:
        seen.add(current)
        async with services.db.read() as conn:
            known = await find_post(conn, current)
        if known is not None:
            return known, chain
        obj = await fetch_trusted(services, current, budget)
        if obj is None:
            break
        try:
            parent = parse_post(obj)
        except ParseError:
            break
        if not parent.public or not same_origin(parent.author, parent.uri):
            break  # never pull a private or misattributed post into a public thread
        chain.append((parent, obj))
        current = parent.in_reply_to
    return None, chain


async def take_post(services: Services, obj: dict[str, Any], *, activity: dict[str, Any] | None, budget: Budget) -> str:
    """Take a trusted post object into its group; returns what happened (for logs and tests).

    ``activity`` is the author's own Create, wrapped unchanged in the group's
    Announce; None when the post reached us any other way (then only its id travels).
    """
    try:
        env = parse_post(obj)
    except ParseError as exc:
        return f"ignored: {exc}"
    if not env.public:
        # Followers-only and direct posts are never redistributed nor shown, even when
        # they mention a group: Mastodon never boosts them, and a group must not leak them.
        return "ignored: not public"
    async with services.db.read() as conn:
        if await find_post(conn, env.uri) is not None:
            return "duplicate"
        if await is_tombstoned(conn, env.uri):
            return "ignored: deleted"
    known_parent, chain = await _ancestors(services, env, budget) if env.in_reply_to else (None, [])
    group = await _group_of(services, env)
    if group is None and known_parent is not None:
        async with services.db.read() as conn:
            group = await get_group_by_id(conn, known_parent.group_id)
    if group is None:
        for parent_env, _ in chain:
            group = await _group_of(services, parent_env)
            if group is not None:
                break
    if group is None:
        return "ignored: not addressed to a group here"
    if known_parent is not None and known_parent.group_id != group.id:
        known_parent, chain = None, []  # a reply into another group's thread starts its own thread here

    author = await services.actors.get(env.author)
    async with services.db.read() as conn:
        moderator = await is_moderator(conn, group.id, author.uri, services.links)
        refusal = await _refusal(services, conn, group, env, author, known_parent, moderator)
        decision = ACCEPT
        if refusal is None and not moderator:
            guards = await load_guards(conn, group.id)
            member_hour, instance_hour, accepted = await recent_counts(conn, group.id, author)
            decision = screen(
                guards,
                env,
                member_posts_last_hour=member_hour,
                instance_posts_last_hour=instance_hour,
                member_accepted_posts=accepted,
                known_groups=await known_group_uris(conn, list(env.mentions)),
            )
            if decision.action == "reject":
                refusal = decision.reason
    if refusal is not None:
        if activity is not None:
            await _reject(services, group, activity, author)
        return f"refused: {refusal}"

    silenced = services.blocklist is not None and services.blocklist.policy.is_silenced(host_of(env.author))
    held = silenced or decision.action == "hold"
    async with services.db.transaction() as conn:
        parent = known_parent
        for parent_env, parent_obj in reversed(chain):  # context first, from the top of the thread down
            if await find_post(conn, parent_env.uri) is None:
                parent_author = await services.actors.cached(parent_env.author)
                parent = await insert_post(
                    conn,
                    group_id=group.id,
                    env=parent_env,
                    raw=parent_obj,
                    author_id=parent_author.id if parent_author else None,
                    parent=parent,
                )
        post = await insert_post(
            conn,
            group_id=group.id,
            env=env,
            raw=obj,
            author_id=author.id,
            parent=parent,
            state="held" if held else "visible",
        )
        if held:
            # A silenced origin or a guard: kept for a moderator to approve, not announced, not shown.
            log.info("held %s in %s: %s", env.uri, group.name, decision.reason or "silenced domain")
            return "held"
        if activity is not None:
            await redistribute(
                conn, services, group, activity, post_id=post.id, plain_object=env.uri if parent is None else None
            )
        else:
            # Not the author's own Create: announce only the id, so every receiver
            # fetches the post from its origin rather than trusting our copy.
            await redistribute(conn, services, group, env.uri, post_id=post.id)
    services.wake.set()
    return "accepted"


async def _refusal(
    services: Services, conn: Any, group: Any, env: PostEnvelope, author: Any, parent: Any, moderator: bool
) -> str | None:
    """Why the group will not take this post at all, or None."""
    member = await _is_member(conn, group.id, author.id)  # on the caller's connection: no second checkout
    verdict = may_post(group.posting, is_member=member, is_moderator=moderator)
    if not verdict.allowed:
        return verdict.reason
    if await active_ban(conn, group.id, author.uri) is not None:
        return "the author is banned from this group"
    if parent is not None and not moderator:
        root = parent if parent.root_id is None else await find_post_by_id(conn, parent.root_id)
        if root is not None and root.locked:
            return "the thread is locked"
    return None


async def _reject(services: Services, group: Any, activity: dict[str, Any], author: Any) -> None:
    """Tell the author's server the group did not take their post."""
    group_uri = services.links.group(group.name)
    reject = {
        "@context": AS_CONTEXT,
        "id": activities.new_activity_id(services.links.base),
        "type": "Reject",
        "actor": group_uri,
        "object": activity["id"],
        "to": [author.uri],
    }
    async with services.db.transaction() as conn:
        await enqueue(conn, services.db, activity=reject, actor_id=group.id, inboxes=[inbox_of(author)])
    log.info("refused %s in %s", activity["id"], group.name)
