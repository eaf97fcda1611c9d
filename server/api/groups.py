"""Kith's own group moderation API: ``/api/kith/v1/groups/{name}/...`` and ``/api/kith/v1/reports``.

The same actions as ``kith mod`` and ``kith report``, for tools and apps: JSON in (form
encoding is accepted too), JSON out, ``{"error": reason}`` with a 4xx for anything the
caller got wrong. Every action goes through ``moderation.actions`` or
``moderation.reports``, so it is logged and federated exactly as from the shell.

Who may call: a bearer token with ``read`` (to look) or ``write`` (to act), for a local
account that leads the group (owner or moderator) or is an instance admin; otherwise 403.
An unknown group, post or report is 404. Lists are newest first and take ``max_id`` and
``limit``, with a ``Link: <...>; rel="next"`` header while there may be more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api.auth import Caller, api_endpoint, flag, read_params, services_of, text
from server.errors import BadRequest, NotFound, Unprocessable
from server.federation.actors import InvalidActor
from server.federation.client import FetchError
from server.federation.serialize import iso
from server.federation.urls import UnsafeUrl
from server.groups.membership import get_group, moderator_names
from server.groups.posts import find_post, handle_of
from server.moderation import actions, modlog, reports
from server.moderation.rulebook import GUARD_FIELDS, load_guards, save_guards
from server.services import Services
from server.tables import bans, follows, posts, remote_actors, remote_moderators
from server.types import utcnow

PREFIX = "/api/kith/v1"
GROUP = PREFIX + "/groups/{name}"
READ = ("read",)
WRITE = ("write",)
REPORT_WRITE = ("write", "write:reports")  # Mastodon's scope for filing a report
PAGE = 100
MAX_PAGE = 200
MAX_URI = 2048  # the URI columns' width
MAX_REASON = 1000  # as a report's comment
MAX_BAN_DAYS = 36_500
MAX_REPORTED = 20  # objects in one report
MAX_ID = 2**31 - 1
POST_ACTIONS = ("remove", "restore", "lock", "unlock", "pin", "unpin", "approve", "reject")
REPORT_ACTIONS = ("assign", "unassign", "resolve", "reject", "reopen", "forward")
REPORT_STATES = {"assign": "assigned", "unassign": "open", "reject": "rejected", "reopen": "open"}


@dataclasses.dataclass(frozen=True)
class Moderating:
    """A call's context: the group, and the local account acting as its moderator."""

    services: Services
    group: Any
    by: actions.Moderator
    user: str


ModHandler = Callable[[Request, Moderating], Awaitable[Response]]


def acting_user(caller: Caller) -> str:
    """The token's local account; an application-only token moderates nothing (403)."""
    if caller.user_id is None or caller.username is None:
        raise HTTPException(403, "This action needs a token of a local account")
    return caller.username


def moderation_endpoint(*scopes: str) -> Callable[[ModHandler], Any]:
    """A handler for one group's moderators: 401 without a token, 403 for a wrong scope or
    a caller who does not lead the group (nor is an admin), 404 for an unknown group."""

    def decorate(handler: ModHandler) -> Any:
        @api_endpoint(*scopes)
        @wraps(handler)
        async def endpoint(request: Request, caller: Caller) -> Response:
            user = acting_user(caller)
            services = services_of(request)
            async with services.db.read() as conn:
                group = await get_group(conn, request.path_params["name"])
                by = await actions.local_moderator(services, conn, group, user)
            return await handler(request, Moderating(services, group, by, user))

        return endpoint

    return decorate


# --------------------------------------------------------------------------- parameters


def required_text(params: dict[str, Any], key: str, *, limit: int = MAX_URI) -> str:
    value = (text(params, key) or "").strip()
    if not value:
        raise Unprocessable(f"{key} is required")
    if len(value) > limit:
        raise Unprocessable(f"{key} is longer than {limit} characters")
    return value


def uri_param(params: dict[str, Any], key: str) -> str:
    """A required http(s) URI: a post or an actor."""
    value = required_text(params, key)
    if not value.startswith(("https://", "http://")):
        raise Unprocessable(f"{key} must be an http(s) URI")
    return value


def reason_param(params: dict[str, Any], key: str = "reason") -> str:
    value = (text(params, key) or "").strip()
    if len(value) > MAX_REASON:
        raise Unprocessable(f"{key} is longer than {MAX_REASON} characters")
    return value


def whole_number(params: dict[str, Any], key: str, *, low: int, high: int) -> int | None:
    """An optional whole number from JSON or a form; 422 when it is anything else."""
    value = params.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Unprocessable(f"{key} must be a whole number from {low} to {high}")
    return value


def page_params(request: Request) -> tuple[int | None, int]:
    """``max_id`` and ``limit`` from the query (400 when they are not numbers)."""
    query = request.query_params
    raw_max, raw_limit = query.get("max_id", "").strip(), query.get("limit", "").strip()
    for key, raw in (("max_id", raw_max), ("limit", raw_limit)):
        if raw and not (raw.isascii() and raw.isdigit()):
            raise BadRequest(f"{key} must be a number")
    max_id = min(int(raw_max), MAX_ID) if raw_max else None
    limit = max(1, min(int(raw_limit), MAX_PAGE)) if raw_limit else PAGE
    return max_id, limit


def paged(request: Request, docs: list[Any], last_id: int | None, limit: int, **keep: str) -> Response:
    """A JSON list with ``Link: rel="next"`` when the page is full (there may be more)."""
    headers = {}
    if len(docs) >= limit and last_id is not None:
        query = urlencode({**{k: v for k, v in keep.items() if v}, "limit": limit, "max_id": last_id})
        base = services_of(request).links.base
        headers["Link"] = f'<{base}{request.url.path}?{query}>; rel="next"'
    return JSONResponse(docs, headers=headers)


# --------------------------------------------------------------------------- reading


@moderation_endpoint(*READ)
async def show_modlog(request: Request, mod: Moderating) -> Response:
    """``GET .../modlog``: the moderation log, with the moderator of each entry."""
    max_id, limit = page_params(request)
    async with mod.services.db.read() as conn:
        entries = await modlog.entries(conn, mod.group.id, max_id=max_id, limit=limit)
    docs = [modlog.entry_json(e, with_moderator=True) for e in entries]
    return paged(request, docs, entries[-1].id if entries else None, limit)


def held_json(post: Any) -> dict[str, Any]:
    return {
        "id": post.id,
        "uri": post.uri,
        "url": post.url or post.uri,
        "type": post.type,
        "author": post.author_uri,
        "author_handle": handle_of(post),
        "in_reply_to": post.in_reply_to,
        "title": post.name,
        "content_warning": post.summary,
        "content_html": post.content_html,  # sanitised on arrival
        "published": iso(post.published),
        "received_at": iso(post.created_at),
    }


@moderation_endpoint(*READ)
async def held(request: Request, mod: Moderating) -> Response:
    """``GET .../held``: posts waiting for a moderator's approval."""
    max_id, limit = page_params(request)
    query = (
        sa.select(posts, remote_actors.c.preferred_username, remote_actors.c.domain.label("author_domain"))
        .outerjoin(remote_actors, remote_actors.c.id == posts.c.author_id)
        .where(posts.c.group_id == mod.group.id, posts.c.state == "held")
        .order_by(posts.c.id.desc())
        .limit(limit)
    )
    if max_id is not None:
        query = query.where(posts.c.id < max_id)
    async with mod.services.db.read() as conn:
        rows = (await conn.execute(query)).all()
    return paged(request, [held_json(r) for r in rows], rows[-1].id if rows else None, limit)


def guards_json(guards: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(guards).items()}


@moderation_endpoint(*READ)
async def show_guards(request: Request, mod: Moderating) -> Response:
    """``GET .../guards``: the group's automatic guards."""
    async with mod.services.db.read() as conn:
        return JSONResponse(guards_json(await load_guards(conn, mod.group.id)))


@moderation_endpoint(*WRITE)
async def update_guards(request: Request, mod: Moderating) -> Response:
    """``PATCH .../guards``: change some guards; those not named are kept."""
    changes = await read_params(request)
    for key, value in list(changes.items()):
        # A form sends numbers as text; JSON sends them as numbers. Take both.
        if GUARD_FIELDS.get(key) is int and isinstance(value, str) and value.strip().isdigit():
            changes[key] = int(value.strip())
    if not changes:
        raise Unprocessable("name at least one guard to change")
    async with mod.services.db.transaction() as conn:
        try:
            guards = await save_guards(conn, mod.services.db, mod.group.id, changes)
        except BadRequest as exc:
            raise Unprocessable(exc.reason) from None
    return JSONResponse(guards_json(guards))


def member_json(row: Any) -> dict[str, Any]:
    handle = f"@{row.preferred_username}@{row.domain}" if row.preferred_username else row.actor_uri
    return {
        "id": row.id,
        "actor": row.actor_uri,
        "handle": handle,
        "state": row.state,
        "created_at": iso(row.created_at),
        "decided_at": iso(row.decided_at) if row.decided_at else None,
    }


@moderation_endpoint(*READ)
async def members(request: Request, mod: Moderating) -> Response:
    """``GET .../members[?state=pending|accepted]``: members and follow requests."""
    state = request.query_params.get("state") or None
    if state not in (None, "pending", "accepted"):
        raise BadRequest("state must be pending or accepted")
    max_id, limit = page_params(request)
    query = (
        sa.select(follows, remote_actors.c.uri.label("actor_uri"), remote_actors.c.preferred_username)
        .add_columns(remote_actors.c.domain)
        .join(remote_actors, remote_actors.c.id == follows.c.actor_id)
        .where(follows.c.group_id == mod.group.id)
        .order_by(follows.c.id.desc())
        .limit(limit)
    )
    if state is not None:
        query = query.where(follows.c.state == state)
    if max_id is not None:
        query = query.where(follows.c.id < max_id)
    async with mod.services.db.read() as conn:
        rows = (await conn.execute(query)).all()
    return paged(request, [member_json(r) for r in rows], rows[-1].id if rows else None, limit, state=state or "")


def ban_json(row: Any) -> dict[str, Any]:
    now = utcnow()
    return {
        "actor": row.actor_uri,
        "reason": row.reason,
        "expires_at": iso(row.expires_at) if row.expires_at else None,
        "active": row.expires_at is None or row.expires_at > now,
        "created_at": iso(row.created_at),
    }


@moderation_endpoint(*READ)
async def list_bans(request: Request, mod: Moderating) -> Response:
    """``GET .../bans``: every ban, newest first; expired ones show ``active: false``."""
    query = sa.select(bans).where(bans.c.group_id == mod.group.id).order_by(bans.c.created_at.desc())
    async with mod.services.db.read() as conn:
        rows = (await conn.execute(query)).all()
    return JSONResponse([ban_json(r) for r in rows])


async def moderators_json(mod: Moderating) -> list[dict[str, Any]]:
    async with mod.services.db.read() as conn:
        local = await moderator_names(conn, mod.group.id)
        remote = (
            await conn.execute(
                sa.select(remote_moderators.c.actor_uri)
                .where(remote_moderators.c.group_id == mod.group.id)
                .order_by(remote_moderators.c.created_at)
            )
        ).scalars()
        remote_uris = list(remote)
    links = mod.services.links
    return [{"who": n, "uri": links.actor("person", n), "role": r} for n, r in local] + [
        {"who": u, "uri": u, "role": "remote"} for u in remote_uris
    ]


@moderation_endpoint(*READ)
async def list_moderators(request: Request, mod: Moderating) -> Response:
    """``GET .../moderators``: local leaders (owner first), then remote moderators."""
    return JSONResponse(await moderators_json(mod))


# --------------------------------------------------------------------------- acting


@moderation_endpoint(*WRITE)
async def decide_follow(request: Request, mod: Moderating) -> Response:
    """``POST .../follows/{approve|reject}`` ``{actor}``: answer a pending follow request."""
    decision = request.path_params["decision"]
    if decision not in ("approve", "reject"):
        raise NotFound("the decision is approve or reject")
    actor = uri_param(await read_params(request), "actor")
    state = await actions.decide_follow_request(mod.services, mod.group, actor, decision == "approve", by=mod.by)
    return JSONResponse({"actor": actor, "state": state})


async def post_state(mod: Moderating, uri: str) -> dict[str, Any]:
    async with mod.services.db.read() as conn:
        post = await find_post(conn, uri)
        if post is None:
            raise NotFound("no such post in this group")
        root = post
        if post.root_id is not None:
            root = (await conn.execute(sa.select(posts).where(posts.c.id == post.root_id))).one()
    return {
        "uri": post.uri,
        "state": post.state,
        "removed_reason": post.removed_reason,
        "locked": root.locked,  # a lock applies to the whole thread
        "pinned": post.pinned_at is not None,
    }


@moderation_endpoint(*WRITE)
async def post_action(request: Request, mod: Moderating) -> Response:
    """``POST .../posts/{action}`` ``{uri, reason}``: remove, restore, lock, unlock, pin, unpin,
    approve or reject (held posts). Answers the post's state afterwards."""
    action = request.path_params["action"]
    if action not in POST_ACTIONS:
        raise NotFound(f"the action is one of {', '.join(POST_ACTIONS)}")
    params = await read_params(request)
    uri, reason = uri_param(params, "uri"), reason_param(params)
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
    return JSONResponse(await post_state(mod, uri))


@moderation_endpoint(*WRITE)
async def create_ban(request: Request, mod: Moderating) -> Response:
    """``POST .../bans`` ``{actor, reason, expires_in_days, remove_content}``: ban (or change a ban)."""
    params = await read_params(request)
    actor, reason = uri_param(params, "actor"), reason_param(params)
    days = whole_number(params, "expires_in_days", low=0, high=MAX_BAN_DAYS)
    remove_content = bool(flag(params, "remove_content"))
    if actor == mod.by.uri:
        raise Unprocessable("you cannot ban yourself")
    expires = utcnow() + timedelta(days=days) if days else None
    removed = await actions.ban(
        mod.services, mod.group, actor, by=mod.by, reason=reason, expires_at=expires, remove_content=remove_content
    )
    async with mod.services.db.read() as conn:
        row = (
            await conn.execute(sa.select(bans).where(bans.c.group_id == mod.group.id, bans.c.actor_uri == actor))
        ).one()
    return JSONResponse({**ban_json(row), "removed_posts": removed})


@moderation_endpoint(*WRITE)
async def delete_ban(request: Request, mod: Moderating) -> Response:
    """``DELETE .../bans`` ``{actor}`` (or ``?actor=``): lift a ban; 404 when there is none."""
    params = await read_params(request)
    actor = uri_param(params, "actor")
    await actions.unban(mod.services, mod.group, actor, by=mod.by, reason=reason_param(params))
    return JSONResponse({"actor": actor, "banned": False})


@moderation_endpoint(*WRITE)
async def add_moderator(request: Request, mod: Moderating) -> Response:
    """``POST .../moderators`` ``{who}``: a local account name or a remote actor URI. Owner or admin only."""
    who = required_text(await read_params(request), "who")
    await actions.set_moderator(mod.services, mod.group, who, True, by=mod.by)
    return JSONResponse(await moderators_json(mod))


@moderation_endpoint(*WRITE)
async def remove_moderator(request: Request, mod: Moderating) -> Response:
    """``DELETE .../moderators`` ``{who}``: 404 for someone who is not a moderator; the owner stays."""
    who = required_text(await read_params(request), "who")
    current = await moderators_json(mod)
    match = next((m for m in current if who in (m["who"], m["uri"])), None)
    if match is None:
        raise NotFound(f"{who} is not a moderator of {mod.group.name}")
    if match["role"] == "owner":
        raise Unprocessable("the owner cannot be removed")
    await actions.set_moderator(mod.services, mod.group, match["who"], False, by=mod.by)
    return JSONResponse(await moderators_json(mod))


# --------------------------------------------------------------------------- reports


@moderation_endpoint(*READ)
async def group_reports(request: Request, mod: Moderating) -> Response:
    """``GET .../reports[?state=open|assigned|resolved|rejected]``: reports about the group's content."""
    state = request.query_params.get("state") or None
    max_id, limit = page_params(request)
    async with mod.services.db.read() as conn:
        rows = await reports.list_reports(
            conn, user_name=mod.user, state=state, group_name=mod.group.name, limit=limit, max_id=max_id
        )
    docs = [reports.report_json(r) for r in rows]
    return paged(request, docs, rows[-1].id if rows else None, limit, state=state or "")


async def _group_report(mod: Moderating, raw_id: str) -> Any:
    """The report with this id about this group, else 404 (another group's report is not found here)."""
    if not (raw_id.isascii() and raw_id.isdigit()) or int(raw_id) > MAX_ID:
        raise NotFound("no such report")
    async with mod.services.db.read() as conn:
        row = await reports.get_report(conn, int(raw_id))
    if row.group_id != mod.group.id:
        raise NotFound("no such report")
    return row


@moderation_endpoint(*WRITE)
async def report_action(request: Request, mod: Moderating) -> Response:
    """``POST .../reports/{id}/{action}``: assign (to yourself), unassign, resolve ``{action, reason}``,
    reject, reopen or forward (to the reported server, without the reporter)."""
    action = request.path_params["action"]
    if action not in REPORT_ACTIONS:
        raise NotFound(f"the action is one of {', '.join(REPORT_ACTIONS)}")
    params = await read_params(request)
    row = await _group_report(mod, request.path_params["id"])
    if action == "resolve":
        take = text(params, "action") or None
        if take not in (None, "remove", "ban"):
            raise Unprocessable("action must be remove, ban or null")
        row = await reports.resolve(mod.services, row.id, mod.user, action=take, reason=reason_param(params))
        return JSONResponse(reports.report_json(row))
    if action == "forward":
        inboxes = await reports.forward(mod.services, row.id, mod.user)
        async with mod.services.db.read() as conn:
            row = await reports.get_report(conn, row.id)
        return JSONResponse({**reports.report_json(row), "forwarded_to": inboxes})
    row = await reports.set_state(mod.services, row.id, mod.user, REPORT_STATES[action])
    return JSONResponse(reports.report_json(row))


@api_endpoint(*REPORT_WRITE)
async def create_report(request: Request, caller: Caller) -> Response:
    """``POST /api/kith/v1/reports`` ``{uris, comment}``: report remote posts (or an account) to their
    server, as a ``Flag`` from the instance actor. Admins, or moderators of the posts' groups."""
    user = acting_user(caller)
    params = await read_params(request)
    uris = params.get("uris")
    if isinstance(uris, str):
        uris = [uris]
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise Unprocessable("uris must be a list of post or account URIs")
    if len(uris) > MAX_REPORTED:
        raise Unprocessable(f"report at most {MAX_REPORTED} objects at once")
    for uri in uris:
        if not uri.startswith(("https://", "http://")) or len(uri) > MAX_URI:
            raise Unprocessable(f"{uri[:100]!r} is not an http(s) URI")
    comment = reason_param(params, "comment")
    try:
        row = await reports.report_remote(services_of(request), user, list(dict.fromkeys(uris)), comment)
    except (FetchError, InvalidActor, UnsafeUrl) as exc:
        # The reported account's server decides whether it answers; that is no fault of ours.
        raise Unprocessable(f"the reported account could not be fetched: {exc}") from None
    return JSONResponse(reports.report_json(row))


routes: list[Route] = [
    Route(GROUP + "/modlog", show_modlog, methods=["GET"]),
    Route(GROUP + "/held", held, methods=["GET"]),
    Route(GROUP + "/guards", show_guards, methods=["GET"]),
    Route(GROUP + "/guards", update_guards, methods=["PATCH"]),
    Route(GROUP + "/members", members, methods=["GET"]),
    Route(GROUP + "/follows/{decision}", decide_follow, methods=["POST"]),
    Route(GROUP + "/posts/{action}", post_action, methods=["POST"]),
    Route(GROUP + "/bans", list_bans, methods=["GET"]),
    Route(GROUP + "/bans", create_ban, methods=["POST"]),
    Route(GROUP + "/bans", delete_ban, methods=["DELETE"]),
    Route(GROUP + "/moderators", list_moderators, methods=["GET"]),
    Route(GROUP + "/moderators", add_moderator, methods=["POST"]),
    Route(GROUP + "/moderators", remove_moderator, methods=["DELETE"]),
    Route(GROUP + "/reports", group_reports, methods=["GET"]),
    Route(GROUP + "/reports/{id}/{action}", report_action, methods=["POST"]),
    Route(PREFIX + "/reports", create_report, methods=["POST"]),
]
