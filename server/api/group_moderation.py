"""Moderating a group through Kith's API: guards, members and follow requests, posts, bans, moderators.

``/api/kith/v1/groups/{name}/...``; who may call and how lists page are in ``server.api.groups``.
Each action is the same as its ``kith mod`` command (``moderation.actions``): logged, and
federated as Lemmy sends it.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.api.groups import GROUP, READ, WRITE, Moderating, moderation_endpoint, paged
from server.api.operation import Operation, answer, read_body, read_path, read_query
from server.api.requests import (
    ActorRequest,
    BanRequest,
    DecisionPath,
    GroupPath,
    GuardsPatch,
    MembersQuery,
    ModeratorRequest,
    PostActionPath,
    PostActionRequest,
    UnbanRequest,
)
from server.api.schemas import Ban, BanCreated, FollowDecision, Guards, Member, Moderator, PostState, Unbanned
from server.errors import BadRequest, NotFound, Unprocessable
from server.groups.following import Follow, page_follows
from server.groups.posts import find_post, find_post_by_id
from server.moderation import actions, rulebook
from server.moderation.authority import moderator_names, remote_moderator_uris
from server.moderation.rulebook import ban_in_force, load_guards, save_guards
from server.types import utcnow

# --------------------------------------------------------------------------- guards


def guards_of(guards: rulebook.Guards) -> Guards:
    return Guards.model_validate(dataclasses.asdict(guards))


@moderation_endpoint(*READ)
async def show_guards(request: Request, mod: Moderating) -> Response:
    """``GET .../guards``: the group's automatic guards."""
    async with mod.services.db.read() as conn:
        return answer(guards_of(await load_guards(conn, mod.group.id)))


@moderation_endpoint(*WRITE)
async def update_guards(request: Request, mod: Moderating) -> Response:
    """``PATCH .../guards``: change some guards; those not named are kept."""
    changes = (await read_body(request, GuardsPatch)).model_dump(exclude_unset=True)
    async with mod.services.db.transaction() as conn:
        try:
            guards = await save_guards(conn, mod.services.db, mod.group.id, changes)
        except BadRequest as exc:  # the rulebook's own checks, should they ever be stricter than the model's
            raise Unprocessable(exc.reason) from None
    return answer(guards_of(guards))


# --------------------------------------------------------------------------- members


def member_of(row: Follow) -> Member:
    handle = f"@{row.preferred_username}@{row.domain}" if row.preferred_username else row.actor_uri
    return Member(
        id=row.id,
        actor=row.actor_uri,
        handle=handle,
        state=row.state,
        created_at=row.created_at,
        decided_at=row.decided_at,
    )


@moderation_endpoint(*READ)
async def members(request: Request, mod: Moderating) -> Response:
    """``GET .../members[?state=pending|accepted]``: members and follow requests."""
    page = read_query(request, MembersQuery)
    async with mod.services.db.read() as conn:
        rows = await page_follows(conn, mod.group.id, state=page.state, max_id=page.max_id, limit=page.limit)
    return paged(request, [member_of(r) for r in rows], rows[-1].id if rows else None, page, state=page.state or "")


@moderation_endpoint(*WRITE)
async def decide_follow(request: Request, mod: Moderating) -> Response:
    """``POST .../follows/{approve|reject}`` ``{actor}``: answer a pending follow request."""
    approve = read_path(request, DecisionPath).decision == "approve"
    actor = (await read_body(request, ActorRequest)).actor
    state = await actions.decide_follow_request(mod.services, mod.group, actor, approve, by=mod.by)
    return answer(FollowDecision(actor=actor, state=state))


# --------------------------------------------------------------------------- posts


async def post_state(mod: Moderating, uri: str) -> PostState:
    async with mod.services.db.read() as conn:
        post = await find_post(conn, uri)
        if post is None:
            raise NotFound("no such post in this group")
        root = post if post.root_id is None else await find_post_by_id(conn, post.root_id)
        assert root is not None  # a thread's first post stays (a deleted one as a tombstone)
    return PostState(
        uri=post.uri,
        state=post.state,
        removed_reason=post.removed_reason,
        locked=root.locked,  # a lock applies to the whole thread
        pinned=post.pinned_at is not None,
    )


@moderation_endpoint(*WRITE)
async def post_action(request: Request, mod: Moderating) -> Response:
    """``POST .../posts/{action}`` ``{uri, reason}``: remove, restore, lock, unlock, pin, unpin,
    approve or reject (held posts). Answers the post's state afterwards."""
    action = read_path(request, PostActionPath).action
    body = await read_body(request, PostActionRequest)
    uri, reason = body.uri, body.reason
    services, group, by = mod.services, mod.group, mod.by
    match action:
        case "remove":
            await actions.remove_post(services, group, uri, by=by, reason=reason)
        case "restore":
            await actions.restore_post(services, group, uri, by=by, reason=reason)
        case "lock" | "unlock":
            await actions.set_locked(services, group, uri, action == "lock", by=by, reason=reason)
        case "pin" | "unpin":
            await actions.set_pinned(services, group, uri, action == "pin", by=by)
        case "approve" | "reject":
            await actions.decide_held_post(services, group, uri, action == "approve", by=by, reason=reason)
    return answer(await post_state(mod, uri))


# --------------------------------------------------------------------------- bans


def ban_fields(row: rulebook.Ban) -> dict[str, Any]:
    return {
        "actor": row.actor_uri,
        "reason": row.reason,
        "expires_at": row.expires_at,
        "active": ban_in_force(row.expires_at),
        "created_at": row.created_at,
    }


@moderation_endpoint(*READ)
async def list_bans(request: Request, mod: Moderating) -> Response:
    """``GET .../bans``: every ban, newest first; expired ones show ``active: false``."""
    async with mod.services.db.read() as conn:
        rows = await rulebook.list_bans(conn, mod.group.id)
    return answer([Ban(**ban_fields(r)) for r in rows])


@moderation_endpoint(*WRITE)
async def create_ban(request: Request, mod: Moderating) -> Response:
    """``POST .../bans`` ``{actor, reason, expires_in_days, remove_content}``: ban (or change a ban)."""
    body = await read_body(request, BanRequest)
    if body.actor == mod.by.uri:
        raise Unprocessable("you cannot ban yourself")
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    removed = await actions.ban(
        mod.services,
        mod.group,
        body.actor,
        by=mod.by,
        reason=body.reason,
        expires_at=expires,
        remove_content=body.remove_content,
    )
    async with mod.services.db.read() as conn:
        row = await rulebook.get_ban(conn, mod.group.id, body.actor)
    assert row is not None  # just written
    return answer(BanCreated(**ban_fields(row), removed_posts=removed))


@moderation_endpoint(*WRITE)
async def delete_ban(request: Request, mod: Moderating) -> Response:
    """``DELETE .../bans`` ``{actor}`` (or ``?actor=``): lift a ban; 404 when there is none."""
    body = await read_body(request, UnbanRequest)
    await actions.unban(mod.services, mod.group, body.actor, by=mod.by, reason=body.reason)
    return answer(Unbanned(actor=body.actor, banned=False))


# --------------------------------------------------------------------------- moderators


async def moderators_of(mod: Moderating) -> list[Moderator]:
    async with mod.services.db.read() as conn:
        local = await moderator_names(conn, mod.group.id)
        remote_uris = await remote_moderator_uris(conn, mod.group.id)
    links = mod.services.links
    return [Moderator(who=n, uri=links.actor("person", n), role=r) for n, r in local] + [
        Moderator(who=u, uri=u, role="remote") for u in remote_uris
    ]


@moderation_endpoint(*READ)
async def list_moderators(request: Request, mod: Moderating) -> Response:
    """``GET .../moderators``: local leaders (owner first), then remote moderators."""
    return answer(await moderators_of(mod))


@moderation_endpoint(*WRITE)
async def add_moderator(request: Request, mod: Moderating) -> Response:
    """``POST .../moderators`` ``{who}``: a local account name or a remote actor URI. Owner or admin only."""
    who = (await read_body(request, ModeratorRequest)).who
    await actions.set_moderator(mod.services, mod.group, who, True, by=mod.by)
    return answer(await moderators_of(mod))


@moderation_endpoint(*WRITE)
async def remove_moderator(request: Request, mod: Moderating) -> Response:
    """``DELETE .../moderators`` ``{who}``: 404 for someone who is not a moderator; the owner stays."""
    who = (await read_body(request, ModeratorRequest)).who
    match = next((m for m in await moderators_of(mod) if who in (m.who, m.uri)), None)
    if match is None:
        raise NotFound(f"{who} is not a moderator of {mod.group.name}")
    if match.role == "owner":
        raise Unprocessable("the owner cannot be removed")
    await actions.set_moderator(mod.services, mod.group, match.who, False, by=mod.by)
    return answer(await moderators_of(mod))


operations = [
    Operation(
        "GET",
        GROUP + "/guards",
        show_guards,
        "The automatic guards",
        response=Guards,
        answers="the guards",
        params=GroupPath,
    ),
    Operation(
        "PATCH",
        GROUP + "/guards",
        update_guards,
        "Change some guards (the others are kept)",
        response=Guards,
        answers="the guards after the change",
        params=GroupPath,
        body=GuardsPatch,
    ),
    Operation(
        "GET",
        GROUP + "/members",
        members,
        "Members and pending follow requests",
        response=list[Member],
        answers="follows, newest first",
        params=GroupPath,
        query=MembersQuery,
    ),
    Operation(
        "POST",
        GROUP + "/follows/{decision}",
        decide_follow,
        "Approve (Accept) or reject (Reject) a pending follow request",
        response=FollowDecision,
        answers="the outcome",
        params=DecisionPath,
        body=ActorRequest,
        description="400 when the actor is already a member; 404 when it asked nothing.",
    ),
    Operation(
        "POST",
        GROUP + "/posts/{action}",
        post_action,
        "Remove, restore, lock, unlock, pin, unpin, or approve or reject a held post",
        response=PostState,
        answers="the post afterwards",
        params=PostActionPath,
        body=PostActionRequest,
        description="Federated as Lemmy does: Delete / Undo(Delete), Lock / Undo(Lock), Add / Remove to "
        "`featured`, all wrapped in the group's Announce. 400 when the post is not in a state the action "
        "applies to.",
    ),
    Operation(
        "GET",
        GROUP + "/bans",
        list_bans,
        "Bans, newest first",
        response=list[Ban],
        answers="bans",
        params=GroupPath,
    ),
    Operation(
        "POST",
        GROUP + "/bans",
        create_ban,
        "Ban an actor (or change their ban): membership ended, posts optionally removed",
        response=BanCreated,
        answers="the ban",
        params=GroupPath,
        body=BanRequest,
        description="Federated as Block with the group as target, to the members and the banned actor's server.",
    ),
    Operation(
        "DELETE",
        GROUP + "/bans",
        delete_ban,
        "Lift a ban (the actor may also be given as `?actor=`)",
        response=Unbanned,
        answers="lifted",
        params=GroupPath,
        body=UnbanRequest,
    ),
    Operation(
        "GET",
        GROUP + "/moderators",
        list_moderators,
        "The group's moderators",
        response=list[Moderator],
        answers="owner first",
        params=GroupPath,
    ),
    Operation(
        "POST",
        GROUP + "/moderators",
        add_moderator,
        "Add a moderator (the owner or an admin only)",
        response=list[Moderator],
        answers="the moderators afterwards",
        params=GroupPath,
        body=ModeratorRequest,
    ),
    Operation(
        "DELETE",
        GROUP + "/moderators",
        remove_moderator,
        "Remove a moderator (the owner or an admin only; the owner stays)",
        response=list[Moderator],
        answers="the moderators afterwards",
        params=GroupPath,
        body=ModeratorRequest,
    ),
]
