"""The Mastodon-compatible admin reports API: ``/api/v1/admin/reports`` and its actions.

Entities follow Mastodon 4.3's Admin::Report, Admin::Account, Account and Status, so
Mastodon.py and moderation tools read them unchanged. Every change goes through
``moderation.reports``, which holds the rules of who may handle a report.

Deviations from Mastodon, each forced by Kith's model (see ``docs/api.md``):

- Besides instance admins, a group's owner and moderators may use this API: they see
  and handle their groups' reports only. Anyone else gets 403.
- Kith records no report category or rules: ``category`` is always ``other``, ``rules``
  is empty. ``action_taken_by_account`` is null (who resolved is not recorded) and
  ``action_taken_at`` is the report's last change once it is closed.
- A Kith report is open, assigned, resolved or rejected, one state: assigning or
  unassigning a closed report is refused (422, reopen it first), and reopening also
  unassigns it. A rejected report shows as resolved (``action_taken`` true).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.accounts import local_accounts
from server.api.auth import Caller, api_endpoint, flag, services_of
from server.api.entities import (
    REMOTE_ID_BASE,
    Profile,
    admin_account_json,
    local_profile,
    mastodon_time,
    remote_profile,
    status_json,
    unknown_profile,
)
from server.api.mastodon import MAX_ID, json_response, page_args, path_id
from server.errors import NotFound, Unprocessable
from server.federation.actors import find_actor_by_id, find_actors
from server.groups.posts import Post, find_posts
from server.links import Links
from server.local_actors import get_local_actor_by_id
from server.moderation import reports
from server.moderation.reports import Report, ReportFilter
from server.services import Services

READ_REPORTS = ("admin:read", "admin:read:reports")
WRITE_REPORTS = ("admin:write", "admin:write:reports")
BASE = "/api/v1/admin/reports"
CLOSED = ("resolved", "rejected")
UNRESOLVED = ("open", "assigned")


# --------------------------------------------------------------------------- loading


@dataclass
class Related:
    """Everything a page of reports points at, loaded in a few queries rather than per report."""

    links: Links
    remote: dict[str, Profile]  # by actor URI
    local: dict[str, Profile]  # by name
    groups: dict[int, Profile]  # by local actor id
    by_user: dict[int, Profile]  # by users.id
    posts: dict[str, Post]  # by post URI

    @classmethod
    async def load(cls, conn: AsyncConnection, rows: list[Report], links: Links) -> Related:
        found_posts = await find_posts(conn, [u for r in rows for u in r.post_uris])
        remote_uris = [r.reporter for r in rows if _is_uri(r.reporter)]
        remote_uris += [r.target_account for r in rows if r.target_account]
        remote_uris += [p.author_uri for p in found_posts.values()]
        remote = {uri: remote_profile(a) for uri, a in (await find_actors(conn, remote_uris)).items()}
        accounts = await local_accounts(
            conn,
            names=[r.reporter for r in rows if not _is_uri(r.reporter)],
            user_ids=[r.assigned_to for r in rows if r.assigned_to is not None],
            actor_ids=[r.group_id for r in rows if r.group_id is not None and not r.target_account],
        )
        local: dict[str, Profile] = {}
        groups: dict[int, Profile] = {}
        by_user: dict[int, Profile] = {}
        for account in accounts:
            profile = local_profile(account.actor, links, is_admin=account.is_admin)
            local[account.actor.name] = profile
            if account.actor.kind == "group":
                groups[account.actor.id] = profile
            if account.user_id is not None:
                by_user[account.user_id] = profile
        return cls(links, remote, local, groups, by_user, found_posts)

    def actor(self, ref: str, seen_at: datetime) -> Profile:
        """A reporter or target: a remote actor URI, or a local account name."""
        if not _is_uri(ref):
            found = self.local.get(ref)
            if found is not None:
                return found
            return unknown_profile(self.links.actor("person", ref), seen_at)
        return self.remote.get(ref) or unknown_profile(ref, seen_at)


def _is_uri(value: str) -> bool:
    # The reporter column holds a remote actor's URI, or a local account's name for our own reports.
    return value.startswith(("https://", "http://"))


def admin_report_json(row: Report, related: Related) -> dict[str, Any]:
    """Mastodon's Admin::Report."""
    closed = row.state in CLOSED
    if row.target_account:
        target: Profile | None = related.actor(row.target_account, row.created_at)
    else:
        # A report about a whole group names no account: the group itself is the target.
        target = related.groups.get(row.group_id) if row.group_id is not None else None
    statuses = []
    for uri in row.post_uris:
        post = related.posts.get(uri)
        if post is not None:
            statuses.append(status_json(post, related.actor(post.author_uri, post.created_at)))
    return {
        "id": str(row.id),
        "action_taken": closed,
        "action_taken_at": mastodon_time(row.updated_at) if closed else None,
        "category": "other",
        "comment": row.comment,
        "forwarded": bool(row.forwarded),
        "created_at": mastodon_time(row.created_at),
        "updated_at": mastodon_time(row.updated_at),
        "account": admin_account_json(related.actor(row.reporter, row.created_at)),
        "target_account": admin_account_json(target),
        "assigned_account": admin_account_json(related.by_user.get(row.assigned_to)) if row.assigned_to else None,
        "action_taken_by_account": None,
        "statuses": statuses,
        "rules": [],
    }


async def render(services: Services, rows: list[Report]) -> list[dict[str, Any]]:
    """Each report as Mastodon's Admin::Report, with what it points at loaded once for the page."""
    async with services.db.read() as conn:
        related = await Related.load(conn, rows, services.links)
    return [admin_report_json(r, related) for r in rows]


# --------------------------------------------------------------------------- who may call


def _acting_user(caller: Caller) -> str:
    """The token's account: an app-only token acts for nobody who could handle a report."""
    if caller.user_id is None or caller.username is None:
        raise HTTPException(403, "This action is not allowed")
    return caller.username


async def _account_ref(conn: AsyncConnection, raw: str) -> str | None:
    """What the reporter or target columns hold for an account id: a URI or a local name; None if unknown."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        return None
    number = int(raw)
    if number >= REMOTE_ID_BASE:
        remote_id = number - REMOTE_ID_BASE
        if remote_id > MAX_ID:  # no such row, and PostgreSQL would refuse the number
            return None
        actor = await find_actor_by_id(conn, remote_id)
        return None if actor is None else actor.uri
    try:
        return (await get_local_actor_by_id(conn, number)).name
    except NotFound:
        return None


# --------------------------------------------------------------------------- endpoints


def _link_header(base: str, rows: list[Report], limit: int, given: bool, filters: dict[str, str]) -> str | None:
    """Mastodon's ``Link`` (next: older, ``max_id``; prev: newer, ``min_id``), keeping the filters."""
    if not rows:
        return None
    extra = {**filters, **({"limit": str(limit)} if given else {})}
    links = []
    if len(rows) >= limit:
        links.append(f'<{base}{BASE}?{urlencode({**extra, "max_id": rows[-1].id})}>; rel="next"')
    links.append(f'<{base}{BASE}?{urlencode({**extra, "min_id": rows[0].id})}>; rel="prev"')
    return ", ".join(links)


@api_endpoint(*READ_REPORTS)
async def list_reports(request: Request, caller: Caller) -> Response:
    """``GET /api/v1/admin/reports``: unresolved reports by default, newest first, ``Link``-paginated.

    ``resolved=true`` lists resolved ones; with ``unresolved=true`` too, both (as Mastodon.py
    documents). ``account_id`` (reporter) and ``target_account_id`` narrow the list.
    """
    _acting_user(caller)
    assert caller.user_id is not None
    services = services_of(request)
    params = request.query_params
    bounds, limit, given = page_args(request)
    resolved, unresolved = flag(dict(params), "resolved"), flag(dict(params), "unresolved")
    filters = {k: "true" for k, on in (("resolved", resolved), ("unresolved", resolved and unresolved)) if on}
    states = CLOSED + UNRESOLVED if resolved and unresolved else CLOSED if resolved else UNRESOLVED
    async with services.db.read() as conn:
        if not caller.is_admin and not await reports.leads_a_group(conn, caller.user_id):
            raise HTTPException(403, "This action is not allowed")
        refs: dict[str, str | None] = {}
        for key in ("account_id", "target_account_id"):
            raw = params.get(key, "").strip()
            if raw:
                filters[key] = raw
                refs[key] = await _account_ref(conn, raw)
        which = ReportFilter(
            states=states,
            leader_id=None if caller.is_admin else caller.user_id,
            reporter=refs.get("account_id"),
            target=refs.get("target_account_id"),
            never=any(ref is None for ref in refs.values()),
        )
        rows = await reports.filtered(conn, which, services.links, **bounds, limit=limit)
    link = _link_header(services.links.base, rows, limit, given, filters)
    return json_response(await render(services, rows), {"Link": link} if link else None)


async def _handled(request: Request, caller: Caller) -> tuple[Services, Report, str]:
    """The report in the path (404 when there is none) and the caller, who must be allowed to handle it."""
    user = _acting_user(caller)
    services = services_of(request)
    report_id = path_id(request)
    async with services.db.read() as conn:
        try:
            row = await reports.get_report(conn, report_id)
        except NotFound:
            raise NotFound("Record not found") from None  # Mastodon's words for an unknown id
        await reports.may_handle(conn, row, user)
    return services, row, user


async def _one(services: Services, row: Report) -> Response:
    return json_response((await render(services, [row]))[0])


@api_endpoint(*READ_REPORTS)
async def show_report(request: Request, caller: Caller) -> Response:
    """``GET /api/v1/admin/reports/:id``."""
    services, row, _ = await _handled(request, caller)
    return await _one(services, row)


def _refuse_closed(row: Report, what: str) -> None:
    if row.state in CLOSED:
        raise Unprocessable(f"This report is resolved: reopen it before you {what} it")


@api_endpoint(*WRITE_REPORTS)
async def assign_to_self(request: Request, caller: Caller) -> Response:
    """``POST /api/v1/admin/reports/:id/assign_to_self``."""
    services, row, user = await _handled(request, caller)
    _refuse_closed(row, "assign")
    return await _one(services, await reports.set_state(services, row.id, user, "assigned"))


@api_endpoint(*WRITE_REPORTS)
async def unassign(request: Request, caller: Caller) -> Response:
    """``POST /api/v1/admin/reports/:id/unassign``."""
    services, row, user = await _handled(request, caller)
    _refuse_closed(row, "unassign")
    return await _one(services, await reports.set_state(services, row.id, user, "open"))


@api_endpoint(*WRITE_REPORTS)
async def resolve(request: Request, caller: Caller) -> Response:
    """``POST /api/v1/admin/reports/:id/resolve``: closed without an action, as Mastodon's."""
    services, row, user = await _handled(request, caller)
    return await _one(services, await reports.resolve(services, row.id, user))


@api_endpoint(*WRITE_REPORTS)
async def reopen(request: Request, caller: Caller) -> Response:
    """``POST /api/v1/admin/reports/:id/reopen``; an unresolved report is answered as it is."""
    services, row, user = await _handled(request, caller)
    if row.state not in CLOSED:
        return await _one(services, row)
    return await _one(services, await reports.set_state(services, row.id, user, "open"))


routes: list[Route] = [
    Route(BASE, list_reports, methods=["GET"]),
    Route(BASE + "/", list_reports, methods=["GET"]),
    Route(BASE + "/{id}", show_report, methods=["GET"]),
    Route(BASE + "/{id}/assign_to_self", assign_to_self, methods=["POST"]),
    Route(BASE + "/{id}/unassign", unassign, methods=["POST"]),
    Route(BASE + "/{id}/resolve", resolve, methods=["POST"]),
    Route(BASE + "/{id}/reopen", reopen, methods=["POST"]),
]
