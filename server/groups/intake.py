"""Taking a post into a group: which group, trust by origin, the thread, the policy, the Announces.

Used by the Create handler (a member posts or replies) and the Announce handler
(content seen through someone else's Announce, always refetched from its origin).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import in_batch
from server.federation import activities
from server.federation.actors import REFRESH_AFTER, RemoteActor, known_group_uris
from server.federation.client import FetchError
from server.federation.delivery import enqueue
from server.federation.objects import ParseError, PostEnvelope, parse_post, same_origin
from server.federation.urls import host_of
from server.federation.vocab import id_of
from server.groups import crowd_alarm
from server.groups.following import member_column, member_since_column
from server.groups.membership import Group, group_name_from_uri
from server.groups.posts import (
    Post,
    crowd_facts,
    find_post,
    find_post_by_id,
    insert_post,
    recent_counts,
    seen_columns,
)
from server.groups.redistribute import redistribute
from server.local_actors import PUBLIC_COLUMNS
from server.moderation import crowd, crowd_rules
from server.moderation.authority import leader_name, moderator_column
from server.moderation.digests import find_digest, may_be_notice
from server.moderation.guards import ACCEPT, Decision, Guards, screen
from server.moderation.notices import Notice, notify_moderators
from server.moderation.policy import may_post
from server.moderation.rulebook import (
    ban_columns,
    ban_in_force,
    guard_columns,
    guards_from,
)
from server.queue import Deferred
from server.rows import record
from server.services import Services
from server.tables import crowd_control, group_guards, local_actors, remote_actors
from server.types import utcnow

log = logging.getLogger("kith.intake")

FETCH_BUDGET = 20  # remote fetches one activity may cause (parents of a reply, refetches)

Chain = list[tuple[PostEnvelope, dict[str, Any]]]  # fetched ancestors, nearest first: (envelope, object)


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


@dataclass(frozen=True)
class Standing:
    """The group a post goes to, its guards and crowd control, and where the author stands there."""

    group: Group
    guards: Guards
    member: bool
    banned: bool
    moderator: bool
    member_since: datetime | None
    crowd: crowd.CrowdControl
    window: crowd.Window  # the group's last ten minutes before this post, for crowd control's watch


def _group_names(services: Services, env: PostEnvelope) -> list[str]:
    """Names of our groups a post is addressed to, mentions, or names as audience, in that order."""
    names: list[str] = []
    for uri in (*env.audience, *env.mentions):
        name = group_name_from_uri(uri, services.links)
        if name is not None and name not in names:
            names.append(name)
    return names


def _standing_query() -> sa.Select[Any]:
    """Candidate groups (by name, or the parent's group id) with the author's standing in each."""
    group_id = local_actors.c.id
    author_uri = sa.bindparam("author_uri", type_=sa.String)
    return (
        sa.select(
            *PUBLIC_COLUMNS,
            *guard_columns(),
            member_column(group_id, author_uri),
            *ban_columns(group_id, author_uri),
            moderator_column(group_id, author_uri, sa.bindparam("leader", type_=sa.String)),
            member_since_column(group_id, author_uri).label("member_since"),
            *crowd.crowd_columns(),
            *crowd.window_columns(group_id),
        )
        .outerjoin(group_guards, group_guards.c.group_id == group_id)
        .outerjoin(crowd_control, crowd_control.c.group_id == group_id)
        .where(
            local_actors.c.kind == "group",
            sa.or_(
                local_actors.c.name.in_(sa.bindparam("names", expanding=True)),
                group_id == sa.bindparam("parent_group_id", type_=sa.Integer),
            ),
        )
    )


# Built once, run with parameters: a statement object keeps its cache key, so each
# run skips rebuilding the query and re-keying SQLAlchemy's compiled-SQL cache.
_STANDING = _standing_query()
_POST_URI = sa.bindparam("post_uri", type_=sa.String)
_AUTHOR_URI = sa.bindparam("author_uri", type_=sa.String)
_FIRST_LOOK = sa.select(remote_actors, *seen_columns(_POST_URI, _AUTHOR_URI)).where(remote_actors.c.uri == _AUTHOR_URI)
_SEEN = sa.select(*seen_columns(_POST_URI, _AUTHOR_URI))


async def _standing(
    conn: AsyncConnection,
    services: Services,
    env: PostEnvelope,
    known_parent: Post | None,
    chain: Chain,
    author_uri: str,
    *,
    domain: str = "",
    now: datetime | None = None,
) -> Standing | None:
    """Which group takes the post, with the author's standing there, in one query; None: no group here.

    The group is the first of ours the post itself addresses, else its known parent's,
    else the first one an ancestor fetched on the way up addresses (nearest first).
    Membership, ban and moderator rights are columns of the same query (keyed by the
    author's URI), so deciding costs one round trip rather than one per question.
    """
    own = _group_names(services, env)
    inherited = [name for parent_env, _ in chain for name in _group_names(services, parent_env)]
    if not own and not inherited and known_parent is None:
        return None
    params = {
        "names": own + inherited,
        "parent_group_id": known_parent.group_id if known_parent is not None else None,
        "author_uri": author_uri,
        "leader": leader_name(author_uri, services.links),
        **crowd.window_params(domain, now or utcnow()),
    }
    rows = (await conn.execute(_STANDING, params)).all()
    by_name = {r.name: r for r in rows}
    row = next((by_name[n] for n in own if n in by_name), None)
    if row is None and known_parent is not None:
        row = next((r for r in rows if r.id == known_parent.group_id), None)
    if row is None:
        row = next((by_name[n] for n in inherited if n in by_name), None)
    if row is None:
        return None
    return Standing(
        group=record(Group, row),
        guards=guards_from(row, prefix="guard_"),
        member=bool(row.member),
        banned=bool(row.banned) and ban_in_force(row.ban_expires_at),
        moderator=bool(row.moderator),
        member_since=row.member_since,
        crowd=crowd.crowd_from(row.id, row, prefix="crowd_"),
        window=crowd.window_from(row),
    )


async def _ancestors(services: Services, env: PostEnvelope, budget: Budget) -> tuple[Post | None, Chain]:
    """Walk up a reply chain: the nearest known post, and the unknown public ancestors fetched on the way."""
    chain: Chain = []
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


@dataclass(frozen=True)
class Admission:
    """What became of a post; for a refusal, the group and author to send the Reject to."""

    outcome: str  # for logs and tests: accepted, held, refused: ..., ignored: ...
    group: Group | None = None
    author: RemoteActor | None = None
    refused: bool = False


async def take_post(services: Services, obj: dict[str, Any], *, activity: dict[str, Any] | None, budget: Budget) -> str:
    """Take a trusted post object into its group; returns what happened (for logs and tests).

    ``activity`` is the author's own Create, wrapped unchanged in the group's
    Announce; None when the post reached us any other way (then only its id travels).
    A Create whose actor is not the post's ``attributedTo`` is refused here too:
    whether the author may post is asked of the author, so only the author may ask.

    The common case (author cached and fresh; no parent, or a known one) needs no
    network, so it runs whole in one transaction on one connection: seen before,
    which group, may the author post, guards, store, redistribute. Otherwise the
    fetches come first, outside any transaction, and the rest in one afterwards.
    """
    try:
        env = parse_post(obj)
    except ParseError as exc:
        return f"ignored: {exc}"
    if activity is not None and id_of(activity.get("actor")) != env.author:
        return "refused: the sender is not the author"
    if env.in_reply_to is not None and may_be_notice(services.links, env.in_reply_to):
        async with services.db.read() as conn:
            if await find_digest(conn, env.in_reply_to) is not None:
                # An answer to the group's message to a moderator (and so never public by right),
                # whoever sent it and however it came: never a group post.
                return "ignored: a reply to a moderator notice"
    if not env.public:
        # Followers-only and direct posts are never redistributed nor shown, even when
        # they mention a group: Mastodon never boosts them, and a group must not leak them.
        return "ignored: not public"
    admission: Admission | None = None
    async with services.db.transaction() as conn:
        seen, author = await _first_look(conn, env)
        if seen is not None:
            return seen
        known_parent = await find_post(conn, env.in_reply_to) if env.in_reply_to else None
        if _fresh(author) and (env.in_reply_to is None or known_parent is not None):
            admission = await _admit(conn, services, env, obj, activity, known_parent, [], author)
    if admission is None:
        if in_batch():  # fetches must not hold a shared transaction open: run on its own
            raise Deferred("the author or a parent must be fetched")
        admission = await _admit_after_fetching(services, env, obj, activity, budget)
    if admission.refused and activity is not None and admission.group and admission.author:
        await _reject(services, admission.group, activity, admission.author)
    if admission.outcome == "accepted":
        services.wake.set()
    return admission.outcome


async def _first_look(conn: AsyncConnection, env: PostEnvelope) -> tuple[str | None, RemoteActor | None]:
    """(why to stop: duplicate or deleted, else None; the author's cached row or None), in one query."""
    params = {"post_uri": env.uri, "author_uri": env.author}
    row = (await conn.execute(_FIRST_LOOK, params)).one_or_none()
    author = None if row is None else record(RemoteActor, row)
    if row is None:  # an author we have never seen: still ask about the post itself
        row = (await conn.execute(_SEEN, params)).one()
    if row.seen_post:
        return "duplicate", author
    if row.seen_tombstone:
        return "ignored: deleted", author
    return None, author


def _fresh(author: RemoteActor | None) -> bool:
    """Is this cached author row usable as is (``RemoteActors.get`` would not refetch it)?"""
    return author is not None and utcnow() - author.fetched_at < REFRESH_AFTER


async def _admit_after_fetching(
    services: Services, env: PostEnvelope, obj: dict[str, Any], activity: dict[str, Any] | None, budget: Budget
) -> Admission:
    """The slow path: walk up unknown parents and (re)fetch the author, then admit in one transaction."""
    known_parent, chain = await _ancestors(services, env, budget) if env.in_reply_to else (None, [])
    async with services.db.read() as conn:
        # Which group, before the author costs a fetch: a post for no group here stops now.
        if await _standing(conn, services, env, known_parent, chain, env.author) is None:
            return Admission("ignored: not addressed to a group here")
    author = await services.actors.get(env.author)
    async with services.db.transaction() as conn:
        return await _admit(conn, services, env, obj, activity, known_parent, chain, author)


async def _admit(
    conn: AsyncConnection,
    services: Services,
    env: PostEnvelope,
    obj: dict[str, Any],
    activity: dict[str, Any] | None,
    known_parent: Post | None,
    chain: Chain,
    author: RemoteActor,
) -> Admission:
    """Decide and, when the group takes the post, store it (and its new ancestors) and redistribute it."""
    now = utcnow()
    standing = await _standing(conn, services, env, known_parent, chain, author.uri, domain=author.domain, now=now)
    if standing is None:
        return Admission("ignored: not addressed to a group here")
    group = standing.group
    if known_parent is not None and known_parent.group_id != group.id:
        known_parent, chain = None, []  # a reply into another group's thread starts its own thread here

    refusal = await _refusal(conn, standing, known_parent)
    if refusal is not None:
        return Admission(f"refused: {refusal}", group, author, refused=True)
    new = crowd_rules.is_new(standing.member_since, moderator=standing.moderator, now=now)
    admission = await _decide_and_store(
        conn, services, standing, env, obj, activity, known_parent, chain, author, new=new, now=now
    )
    return admission


async def _decide_and_store(
    conn: AsyncConnection,
    services: Services,
    standing: Standing,
    env: PostEnvelope,
    obj: dict[str, Any],
    activity: dict[str, Any] | None,
    known_parent: Post | None,
    chain: Chain,
    author: RemoteActor,
    *,
    new: bool,
    now: datetime,
) -> Admission:
    """The guards decide; crowd control's watch counts the post in (it may turn it on now, for
    this post too) and, while on, may hold it; store it, held or shown and announced.

    Only posts the group takes (shown or held) are counted: a flood the per-server rate
    limit refuses costs the members nothing, and is that guard's business, not an alarm's.
    The count's upsert holds the group's counter rows until this transaction commits, so
    concurrent posts to one group are counted (and judged) one after the other: exact.
    """
    group = standing.group
    decision = ACCEPT
    if not standing.moderator:
        decision = await _screen(conn, standing, env, author)
        if decision.action == "reject":
            return Admission(f"refused: {decision.reason}", group, author, refused=True)
    control = await crowd.watch_post(
        conn, services.db, group, standing.crowd, standing.window, domain=author.domain, new=new, now=now
    )
    await crowd_alarm.tell(conn, services, group, control)
    if not standing.moderator and decision.action == "accept" and control.on(now):
        decision = await _crowd_screen(conn, group, author, known_parent, new=new, now=now) or decision

    silenced = services.blocklist.policy.is_silenced(host_of(env.author))
    held = silenced or decision.action == "hold"
    parent = await _store_ancestors(conn, group, known_parent, chain)
    post = await insert_post(
        conn,
        group_id=group.id,
        env=env,
        raw=obj,
        author_id=author.id,
        parent=parent,
        state="held" if held else "visible",
        held_reason=(decision.reason or "its server is silenced by this instance") if held else None,
    )
    if held:
        # A silenced origin, a guard or crowd control: kept for a moderator to approve, not announced, not shown.
        log.info("held %s in %s: %s", env.uri, group.name, decision.reason or "silenced domain")
        await notify_moderators(
            conn,
            services,
            group,
            Notice(
                "held",
                reason=post.held_reason or "",
                post_uri=env.uri,
                author=author.handle,
                excerpt=env.content_html or env.summary or env.name or "",
                link=env.url or env.uri,
            ),
        )
        return Admission("held", group, author)
    if activity is not None:
        await redistribute(
            conn, services, group, activity, post_id=post.id, plain_object=env.uri if parent is None else None
        )
    else:
        # Not the author's own Create: announce only the id, so every receiver
        # fetches the post from its origin rather than trusting our copy.
        await redistribute(conn, services, group, env.uri, post_id=post.id)
    return Admission("accepted", group, author)


async def _crowd_screen(
    conn: AsyncConnection, group: Group, author: RemoteActor, known_parent: Post | None, *, new: bool, now: datetime
) -> Decision | None:
    """While crowd control is on: hold a new member's post, a new server's, or a reply over slow mode's limit.

    Held, not refused: a held post is kept for a moderator to approve (nothing is lost, and
    the queue says why), where a refusal would vanish from the author's view with no word.
    """
    if new:
        return crowd_rules.screen(crowd_rules.Author(new=True, server_known=False, thread_posts=0))
    # A reply into a thread fetched just now (no known parent) is its first post there.
    root_id = (known_parent.root_id or known_parent.id) if known_parent is not None else None
    known, in_thread = await crowd_facts(conn, group.id, author, root_id, now - crowd_rules.WINDOW)
    return crowd_rules.screen(crowd_rules.Author(new=False, server_known=known, thread_posts=in_thread))


async def _store_ancestors(conn: AsyncConnection, group: Group, known_parent: Post | None, chain: Chain) -> Post | None:
    """Store the fetched ancestors, from the top of the thread down; returns the new post's parent."""
    parent = known_parent
    for parent_env, parent_obj in reversed(chain):
        if await find_post(conn, parent_env.uri) is None:
            author_id = (
                await conn.execute(sa.select(remote_actors.c.id).where(remote_actors.c.uri == parent_env.author))
            ).scalar_one_or_none()
            parent = await insert_post(
                conn, group_id=group.id, env=parent_env, raw=parent_obj, author_id=author_id, parent=parent
            )
    return parent


async def _refusal(conn: AsyncConnection, standing: Standing, parent: Post | None) -> str | None:
    """Why the group will not take this post at all, or None."""
    verdict = may_post(standing.group.posting, is_member=standing.member, is_moderator=standing.moderator)
    if not verdict.allowed:
        return verdict.reason
    if standing.banned:
        return "the author is banned from this group"
    if parent is not None and not standing.moderator:
        root = parent if parent.root_id is None else await find_post_by_id(conn, parent.root_id)
        if root is not None and root.locked:
            return "the thread is locked"
    return None


async def _screen(conn: AsyncConnection, standing: Standing, env: PostEnvelope, author: RemoteActor) -> Decision:
    """The group's guards on a non-moderator's post; the counts are read only when a guard uses them."""
    guards = standing.guards
    member_hour, instance_hour, accepted = (
        await recent_counts(conn, standing.group.id, author) if guards.counts_matter else (0, 0, 0)
    )
    known = await known_group_uris(conn, list(env.mentions)) if guards.known_groups_matter else frozenset()
    return screen(
        guards,
        env,
        member_posts_last_hour=member_hour,
        instance_posts_last_hour=instance_hour,
        member_accepted_posts=accepted,
        known_groups=known,
    )


async def _reject(services: Services, group: Group, activity: dict[str, Any], author: RemoteActor) -> None:
    """Tell the author's server the group did not take their post."""
    reject = activities.reject_post(services.links.base, services.links.group(group.name), activity["id"], author.uri)
    async with services.db.transaction() as conn:
        await enqueue(conn, services.db, activity=reject, actor_id=group.id, inboxes=[author.delivery_inbox])
    log.info("refused %s in %s", activity["id"], group.name)
