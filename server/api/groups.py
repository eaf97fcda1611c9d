"""Kith's group moderation API, ``/api/kith/v1/groups/{name}/...``: who may call, and reading the log and held posts.

The same actions as ``kith mod`` and ``kith report``, for tools and apps: JSON in (form
encoding is accepted too), JSON out, ``{"error": reason}`` with a 4xx for anything the
caller got wrong. Every action goes through ``moderation.actions`` or
``moderation.reports``, so it is logged and federated exactly as from the shell. Input is
read and answers are written through the models of ``server.api.schemas``; each module's
``operations`` are its routes and its part of the OpenAPI description.

Who may call: a bearer token with ``read`` (to look) or ``write`` (to act), for a local
account that leads the group (owner or moderator) or is an instance admin; otherwise 403.
An unknown group, post or report is 404. Lists are newest first and take ``max_id`` and
``limit``, with a ``Link: <...>; rel="next"`` header while there may be more.

The actions are in ``group_moderation`` (guards, members, posts, bans, moderators) and
``group_reports`` (reports); this module holds what they share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.api.auth import Caller, api_endpoint, services_of
from server.api.operation import Operation, answer, read_query
from server.api.requests import GroupPath, PageQuery
from server.api.schemas import HeldPost, ModlogEntry
from server.groups.membership import Group, get_group
from server.groups.posts import AuthoredPost
from server.groups.threads import handle_of, held_posts
from server.moderation import actions, modlog
from server.services import Services

PREFIX = "/api/kith/v1"
GROUP = PREFIX + "/groups/{name}"
READ = ("read",)
WRITE = ("write",)


@dataclasses.dataclass(frozen=True)
class Moderating:
    """A call's context: the group, and the local account acting as its moderator."""

    services: Services
    group: Group
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


def paged(request: Request, docs: Sequence[BaseModel], last_id: int | None, page: PageQuery, **keep: str) -> Response:
    """A JSON list with ``Link: rel="next"`` when the page is full (there may be more)."""
    headers = {}
    if len(docs) >= page.limit and last_id is not None:
        query = urlencode({**{k: v for k, v in keep.items() if v}, "limit": page.limit, "max_id": last_id})
        base = services_of(request).links.base
        headers["Link"] = f'<{base}{request.url.path}?{query}>; rel="next"'
    return answer(docs, headers=headers)


@moderation_endpoint(*READ)
async def show_modlog(request: Request, mod: Moderating) -> Response:
    """``GET .../modlog``: the moderation log, with the moderator of each entry."""
    page = read_query(request, PageQuery)
    async with mod.services.db.read() as conn:
        entries = await modlog.entries(conn, mod.group.id, max_id=page.max_id, limit=page.limit)
    docs = [ModlogEntry.model_validate(modlog.entry_json(e, with_moderator=True)) for e in entries]
    return paged(request, docs, entries[-1].id if entries else None, page)


def held_post(post: AuthoredPost) -> HeldPost:
    return HeldPost(
        id=post.id,
        uri=post.uri,
        url=post.url or post.uri,
        type=post.type,
        author=post.author_uri,
        author_handle=handle_of(post),
        in_reply_to=post.in_reply_to,
        title=post.name,
        content_warning=post.summary,
        content_html=post.content_html,  # sanitised on arrival
        published=post.published,
        received_at=post.created_at,
    )


@moderation_endpoint(*READ)
async def held(request: Request, mod: Moderating) -> Response:
    """``GET .../held``: posts waiting for a moderator's approval."""
    page = read_query(request, PageQuery)
    async with mod.services.db.read() as conn:
        rows = await held_posts(conn, mod.group.id, max_id=page.max_id, limit=page.limit)
    return paged(request, [held_post(r) for r in rows], rows[-1].id if rows else None, page)


operations = [
    Operation(
        "GET",
        GROUP + "/modlog",
        show_modlog,
        "The moderation log, with who acted",
        list[ModlogEntry],
        "entries, newest first",
        params=GroupPath,
        query=PageQuery,
    ),
    Operation(
        "GET",
        GROUP + "/held",
        held,
        "Posts waiting for a moderator (held by a guard or a silenced domain)",
        list[HeldPost],
        "held posts, newest first",
        params=GroupPath,
        query=PageQuery,
    ),
]
