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

import hashlib
import html
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.api.auth import Caller, api_endpoint, flag, services_of
from server.api.mastodon import MAX_ID, _role, json_response, mastodon_time, page_args, path_id
from server.errors import NotFound, Unprocessable
from server.federation.html import plain_text, sanitize_html
from server.links import Links
from server.moderation import reports
from server.services import Services
from server.tables import group_roles, local_actors, posts, remote_actors, users
from server.tables import reports as reports_table

READ_REPORTS = ("admin:read", "admin:read:reports")
WRITE_REPORTS = ("admin:write", "admin:write:reports")
BASE = "/api/v1/admin/reports"
CLOSED = ("resolved", "rejected")
UNRESOLVED = ("open", "assigned")
# Local accounts take their actor's id (below 2**31, as ids are 32-bit); remote accounts are
# numbered from 2**31 up, so an account id names one account whichever side it lives on.
REMOTE_ID_BASE = 2**31
UNKNOWN_ID_BASE = 2**53  # accounts we hold no row for: a stable number from the URI's digest
CHUNK = 500  # values per IN (...): well within SQLite's and PostgreSQL's parameter limits


# --------------------------------------------------------------------------- accounts


@dataclass(frozen=True)
class Profile:
    """What an Account and an Admin::Account are built from, local or remote."""

    id: str
    username: str
    domain: str | None  # None for a local account, as Mastodon has it
    display_name: str
    note_html: str
    url: str
    uri: str
    avatar: str
    created_at: datetime
    bot: bool = False
    group: bool = False
    locked: bool = False
    suspended: bool = False
    is_admin: bool | None = None  # None for a remote account (no role)


def _midnight(dt: datetime) -> datetime:
    # Mastodon shows an account's creation as a date only (midnight UTC).
    return dt.replace(hour=0, minute=0, second=0, microsecond=0)


def remote_profile(row: Any) -> Profile:
    """A remote actor from the cache; the display fields come from the stored document."""
    try:
        doc = json.loads(row.raw)
    except ValueError:
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    icon = doc.get("icon")
    avatar = icon.get("url") if isinstance(icon, dict) else None
    url = doc.get("url")
    username = row.preferred_username or row.uri.rstrip("/").rsplit("/", 1)[-1]
    return Profile(
        id=str(REMOTE_ID_BASE + row.id),
        username=username,
        domain=row.domain,
        display_name=plain_text(row.name) or username,
        note_html=sanitize_html(doc.get("summary") if isinstance(doc.get("summary"), str) else None),
        url=url if isinstance(url, str) and url.startswith(("https://", "http://")) else row.uri,
        uri=row.uri,
        avatar=avatar if isinstance(avatar, str) and avatar.startswith(("https://", "http://")) else "",
        created_at=_midnight(row.fetched_at),
        bot=row.type in ("Service", "Application"),
        group=row.type == "Group",
        locked=doc.get("manuallyApprovesFollowers") is True,
        suspended=row.suspended_at is not None,
    )


def unknown_profile(uri: str, seen_at: datetime) -> Profile:
    """An account we hold no row for (forgotten since): what its URI tells."""
    parts = urlsplit(uri)
    digest = int(hashlib.sha256(uri.encode()).hexdigest()[:12], 16)
    name = parts.path.rstrip("/").rsplit("/", 1)[-1] or parts.hostname or "unknown"
    return Profile(
        id=str(UNKNOWN_ID_BASE + digest),
        username=name,
        domain=parts.hostname,
        display_name=name,
        note_html="",
        url=uri,
        uri=uri,
        avatar="",
        created_at=_midnight(seen_at),
    )


def local_profile(row: Any, links: Links) -> Profile:
    """A local person or group (``row``: local_actors, with ``is_admin`` for people)."""
    kind = "group" if row.kind == "group" else "person"
    url = links.actor(kind, row.name)
    return Profile(
        id=str(row.id),
        username=row.name,
        domain=None,
        display_name=row.title or row.name,
        note_html=sanitize_html(row.summary) if row.summary else "",
        url=url,
        uri=url,
        avatar=row.icon_url or "",
        created_at=_midnight(row.created_at),
        group=kind == "group",
        locked=row.approval == "manual",
        is_admin=bool(row.is_admin) if kind == "person" else None,
    )


def account_json(p: Profile) -> dict[str, Any]:
    """Mastodon's Account entity (counts are not kept for accounts, so they are zero)."""
    return {
        "id": p.id,
        "username": p.username,
        "acct": p.username if p.domain is None else f"{p.username}@{p.domain}",
        "display_name": p.display_name,
        "locked": p.locked,
        "bot": p.bot,
        "discoverable": None,
        "indexable": False,
        "group": p.group,
        "created_at": mastodon_time(p.created_at),
        "note": p.note_html,
        "url": p.url,
        "uri": p.uri,
        "avatar": p.avatar,
        "avatar_static": p.avatar,
        "header": "",
        "header_static": "",
        "followers_count": 0,
        "following_count": 0,
        "statuses_count": 0,
        "last_status_at": None,
        "hide_collections": None,
        "noindex": None,
        "emojis": [],
        "roles": [],
        "fields": [],
    }


def admin_account_json(p: Profile | None) -> dict[str, Any] | None:
    """Mastodon's Admin::Account. Kith keeps no e-mail addresses or IPs: those are null."""
    if p is None:
        return None
    local = p.domain is None and not p.group
    return {
        "id": p.id,
        "username": p.username,
        "domain": p.domain,
        "created_at": mastodon_time(p.created_at),
        "email": None,
        "ip": None,
        "ips": [],
        "locale": None,
        "invite_request": None,
        "role": _role(bool(p.is_admin)) if local else None,
        "confirmed": local,
        "approved": local,
        "disabled": False,
        "silenced": False,
        "sensitized": False,
        "suspended": p.suspended,
        "account": account_json(p),
    }


def status_json(post: Any, author: Profile) -> dict[str, Any]:
    """A minimal Status: what a moderator needs to see what was reported."""
    content = post.content_html or ""
    if post.name and post.type in ("Page", "Article"):
        # A Lemmy post's title is its name; Mastodon shows it above the content too.
        content = f"<p><strong>{html.escape(post.name)}</strong></p>" + content
    return {
        "id": str(post.id),
        "uri": post.uri,
        "url": post.url or post.uri,
        "created_at": mastodon_time(post.published),
        "edited_at": mastodon_time(post.updated_at) if post.updated_at else None,
        "account": account_json(author),
        "content": content,
        "visibility": "public",
        "sensitive": bool(post.sensitive),
        "spoiler_text": post.summary or "",
        "media_attachments": [],
        "application": None,
        "mentions": [],
        "tags": [],
        "emojis": [],
        "reblogs_count": 0,
        "favourites_count": post.likes,
        "replies_count": post.replies,
        "in_reply_to_id": str(post.parent_id) if post.parent_id is not None else None,
        "in_reply_to_account_id": None,
        "reblog": None,
        "poll": None,
        "card": None,
        "language": None,
        "text": None,
        "favourited": False,
        "reblogged": False,
        "muted": False,
        "bookmarked": False,
        "pinned": post.pinned_at is not None,
    }


# --------------------------------------------------------------------------- loading


def _chunks(values: Iterable[Any]) -> list[list[Any]]:
    items = list(dict.fromkeys(values))
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


@dataclass
class Related:
    """Everything a page of reports points at, loaded in a few queries rather than per report."""

    links: Links
    remote: dict[str, Profile]  # by actor URI
    local: dict[str, Profile]  # by name
    groups: dict[int, Profile]  # by local actor id
    by_user: dict[int, Profile]  # by users.id
    posts: dict[str, Any]  # by post URI

    @classmethod
    async def load(cls, conn: AsyncConnection, rows: list[Any], links: Links) -> Related:
        post_uris = [u for r in rows for u in json.loads(r.target_posts)]
        found_posts: dict[str, Any] = {}
        for chunk in _chunks(post_uris):
            for post in (await conn.execute(sa.select(posts).where(posts.c.uri.in_(chunk)))).all():
                found_posts[post.uri] = post
        remote_uris = [r.reporter for r in rows if _is_uri(r.reporter)]
        remote_uris += [r.target_account for r in rows if r.target_account]
        remote_uris += [p.author_uri for p in found_posts.values()]
        remote: dict[str, Profile] = {}
        for chunk in _chunks(remote_uris):
            for actor in (await conn.execute(sa.select(remote_actors).where(remote_actors.c.uri.in_(chunk)))).all():
                remote[actor.uri] = remote_profile(actor)
        local_query = sa.select(local_actors, users.c.id.label("user_id"), users.c.is_admin).outerjoin(
            users, users.c.actor_id == local_actors.c.id
        )
        names = [r.reporter for r in rows if not _is_uri(r.reporter)]
        user_ids = [r.assigned_to for r in rows if r.assigned_to is not None]
        group_ids = [r.group_id for r in rows if r.group_id is not None and not r.target_account]
        local: dict[str, Profile] = {}
        groups: dict[int, Profile] = {}
        by_user: dict[int, Profile] = {}
        conditions = [
            *(local_actors.c.name.in_(c) for c in _chunks(names)),
            *(users.c.id.in_(c) for c in _chunks(user_ids)),
            *(local_actors.c.id.in_(c) for c in _chunks(group_ids)),
        ]
        for condition in conditions:
            for row in (await conn.execute(local_query.where(condition))).all():
                profile = local_profile(row, links)
                local[row.name] = profile
                if row.kind == "group":
                    groups[row.id] = profile
                if row.user_id is not None:
                    by_user[row.user_id] = profile
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


def admin_report_json(row: Any, related: Related) -> dict[str, Any]:
    """Mastodon's Admin::Report."""
    closed = row.state in CLOSED
    if row.target_account:
        target: Profile | None = related.actor(row.target_account, row.created_at)
    else:
        # A report about a whole group names no account: the group itself is the target.
        target = related.groups.get(row.group_id) if row.group_id is not None else None
    statuses = []
    for uri in json.loads(row.target_posts):
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


async def render(services: Services, rows: list[Any]) -> list[dict[str, Any]]:
    async with services.db.read() as conn:
        related = await Related.load(conn, rows, services.links)
    return [admin_report_json(r, related) for r in rows]


# --------------------------------------------------------------------------- who may call


def _acting_user(caller: Caller) -> str:
    """The token's account: an app-only token acts for nobody who could handle a report."""
    if caller.user_id is None or caller.username is None:
        raise HTTPException(403, "This action is not allowed")
    return caller.username


def _visible_to(caller: Caller) -> Any:
    """The reports a caller may see: all for admins, their groups' for group leaders."""
    if caller.is_admin:
        return sa.true()
    led = sa.select(group_roles.c.group_id).where(group_roles.c.user_id == caller.user_id)
    return reports_table.c.group_id.in_(led)


async def _leads_a_group(conn: AsyncConnection, caller: Caller) -> bool:
    query = sa.select(group_roles.c.group_id).where(group_roles.c.user_id == caller.user_id).limit(1)
    return (await conn.execute(query)).first() is not None


async def _account_ref(conn: AsyncConnection, raw: str) -> str | None:
    """What the reporter or target columns hold for an account id: a URI or a local name; None if unknown."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        return None
    number = int(raw)
    if number >= REMOTE_ID_BASE:
        remote_id = number - REMOTE_ID_BASE
        if remote_id > MAX_ID:  # no such row, and PostgreSQL would refuse the number
            return None
        query = sa.select(remote_actors.c.uri).where(remote_actors.c.id == remote_id)
        return (await conn.execute(query)).scalar_one_or_none()
    row = (await conn.execute(sa.select(local_actors).where(local_actors.c.id == number))).one_or_none()
    return None if row is None else row.name


# --------------------------------------------------------------------------- endpoints


def _link_header(base: str, rows: list[Any], limit: int, given: bool, filters: dict[str, str]) -> str | None:
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
    services = services_of(request)
    query_params = request.query_params
    bounds, limit, given = page_args(request)
    resolved = flag(dict(query_params), "resolved")
    unresolved = flag(dict(query_params), "unresolved")
    filters: dict[str, str] = {}
    query = sa.select(reports_table)
    if resolved and unresolved:
        filters = {"resolved": "true", "unresolved": "true"}
    elif resolved:
        filters = {"resolved": "true"}
        query = query.where(reports_table.c.state.in_(CLOSED))
    else:
        query = query.where(reports_table.c.state.in_(UNRESOLVED))
    async with services.db.read() as conn:
        if not caller.is_admin and not await _leads_a_group(conn, caller):
            raise HTTPException(403, "This action is not allowed")
        query = query.where(_visible_to(caller))
        for key, column in (("account_id", reports_table.c.reporter), ("target_account_id", None)):
            raw = query_params.get(key, "").strip()
            if not raw:
                continue
            filters[key] = raw
            ref = await _account_ref(conn, raw)
            if ref is None:
                query = query.where(sa.false())
            elif column is not None:
                query = query.where(column == ref)
            else:
                query = query.where(_target_is(ref, services.links))
        if bounds["max_id"] is not None:
            query = query.where(reports_table.c.id < bounds["max_id"])
        if bounds["since_id"] is not None:
            query = query.where(reports_table.c.id > bounds["since_id"])
        if bounds["min_id"] is not None:
            query = query.where(reports_table.c.id > bounds["min_id"]).order_by(reports_table.c.id.asc())
        else:
            query = query.order_by(reports_table.c.id.desc())
        rows = sorted((await conn.execute(query.limit(limit))).all(), key=lambda r: r.id, reverse=True)
    link = _link_header(services.links.base, rows, limit, given, filters)
    return json_response(await render(services, rows), {"Link": link} if link else None)


def _target_is(ref: str, links: Links) -> Any:
    if _is_uri(ref):
        return reports_table.c.target_account == ref
    # A local id names a local actor: reports about a group have no target account, only the group.
    group_ids = sa.select(local_actors.c.id).where(local_actors.c.name == ref, local_actors.c.kind == "group")
    return sa.or_(
        reports_table.c.target_account == links.actor("person", ref),
        sa.and_(reports_table.c.target_account.is_(None), reports_table.c.group_id.in_(group_ids)),
    )


async def _handled(request: Request, caller: Caller) -> tuple[Services, Any, str]:
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


async def _one(services: Services, row: Any) -> Response:
    return json_response((await render(services, [row]))[0])


@api_endpoint(*READ_REPORTS)
async def show_report(request: Request, caller: Caller) -> Response:
    """``GET /api/v1/admin/reports/:id``."""
    services, row, _ = await _handled(request, caller)
    return await _one(services, row)


def _refuse_closed(row: Any, what: str) -> None:
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
