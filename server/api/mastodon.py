"""The Mastodon-compatible subset: instance, the token's account, and the admin domain policy API.

Entities, status codes, scopes and ``Link`` pagination follow Mastodon 4.3, so that
Mastodon.py and blocklist managers work unchanged. Every change goes through
``moderation.blocklist``, which writes the audit log under the acting admin's name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import __version__
from server.accounts import get_user
from server.api.auth import Caller, api_endpoint, flag, read_params, services_of, text
from server.errors import BadRequest, NotFound, Unprocessable
from server.federation.serialize import text_to_html
from server.groups.membership import count_usage
from server.local_actors import get_local_actor
from server.moderation import blocklist
from server.oauth import get_app
from server.services import Services
from server.tables import posts, remote_actors

MASTODON_VERSION = f"4.3.0 (compatible; Kith {__version__})"
MASTODON_API_VERSION = 2  # what Mastodon 4.3.0 reports in api_versions; Mastodon.py reads it
PAGE_LIMIT = 100  # Mastodon's admin lists: 100 by default, at most twice that
MAX_ID = 2**31 - 1  # ids are 32-bit integers; a larger one would make PostgreSQL raise
BLOCK_FIELDS = ("severity", "reject_media", "reject_reports", "private_comment", "public_comment", "obfuscate")

READ_BLOCKS = ("admin:read", "admin:read:domain_blocks")
WRITE_BLOCKS = ("admin:write", "admin:write:domain_blocks")
READ_ALLOWS = ("admin:read", "admin:read:domain_allows")
WRITE_ALLOWS = ("admin:write", "admin:write:domain_allows")


def mastodon_time(dt: datetime) -> str:
    """``2024-01-31T12:00:00.123Z``: Mastodon's timestamps, with milliseconds."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def path_id(request: Request) -> int:
    """The numeric ``{id}`` of the path; anything else cannot name a record (404)."""
    raw = request.path_params["id"]
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_ID:
        raise NotFound("Record not found")
    return int(raw)


def domain_param(params: dict[str, Any]) -> str:
    """The ``domain`` parameter, 422 when blank or not a domain."""
    domain = (text(params, "domain") or "").strip()
    if not domain:
        raise Unprocessable("Validation failed: Domain can't be blank")
    # DNS caps a name at 253 characters; the column holds 255, and a longer value would
    # make PostgreSQL raise instead of answering 422.
    if len(blocklist.normalize_domain(domain)) > 253:
        raise Unprocessable(f"{domain!r} is not a domain")
    return domain


def json_response(doc: Any, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(doc, headers=headers)


async def _reload_policy(services: Services) -> None:
    # The change is committed; reload now so this process acts on it at once
    # (other processes notice the bumped policy version on their own).
    if services.blocklist is not None:
        await services.blocklist.reload()


# --------------------------------------------------------------------------- pagination


def page_args(request: Request) -> tuple[dict[str, int | None], int, bool]:
    """``max_id``/``since_id``/``min_id``/``limit`` from the query: (id bounds, limit, limit given)."""
    query = request.query_params
    bounds: dict[str, int | None] = {}
    for key in ("max_id", "since_id", "min_id"):
        raw = query.get(key, "").strip()
        if not raw:
            bounds[key] = None
            continue
        if not (raw.isascii() and raw.isdigit()):
            raise BadRequest(f"{key} must be a number")
        bounds[key] = min(int(raw), MAX_ID)  # beyond any id, and within what PostgreSQL accepts
    raw_limit = query.get("limit", "").strip()
    if not raw_limit:
        return bounds, PAGE_LIMIT, False
    try:
        limit = abs(int(raw_limit))
    except ValueError:
        raise BadRequest("limit must be a number") from None
    return bounds, max(1, min(limit, 2 * PAGE_LIMIT)), True


def link_header(base: str, path: str, rows: list[Any], limit: int, limit_given: bool) -> str | None:
    """Mastodon's ``Link``: next (older, ``max_id``) when the page is full, prev (newer, ``min_id``)."""
    if not rows:
        return None
    extra = {"limit": str(limit)} if limit_given else {}
    links = []
    if len(rows) >= limit:
        links.append(f'<{base}{path}?{urlencode({**extra, "max_id": rows[-1].id})}>; rel="next"')
    links.append(f'<{base}{path}?{urlencode({**extra, "min_id": rows[0].id})}>; rel="prev"')
    return ", ".join(links)


def paged_response(request: Request, path: str, rows: list[Any], docs: list[Any], limit: int, given: bool) -> Response:
    link = link_header(services_of(request).links.base, path, rows, limit, given)
    return json_response(docs, {"Link": link} if link else None)


# --------------------------------------------------------------------------- instance


async def _stats(services: Services) -> dict[str, int]:
    async with services.db.read() as conn:
        usage = await count_usage(conn)
        statuses = (
            await conn.execute(sa.select(sa.func.count()).select_from(posts).where(posts.c.state == "visible"))
        ).scalar_one()
        domains = (await conn.execute(sa.select(sa.func.count(sa.distinct(remote_actors.c.domain))))).scalar_one()
    return {"user_count": usage["users"], "status_count": int(statuses), "domain_count": int(domains)}


def _limits() -> dict[str, Any]:
    return {
        "accounts": {"max_featured_tags": 0, "max_pinned_statuses": 0},
        "statuses": {"max_characters": 500, "max_media_attachments": 0, "characters_reserved_per_url": 23},
        "media_attachments": {
            "supported_mime_types": [],
            "image_size_limit": 0,
            "image_matrix_limit": 0,
            "video_size_limit": 0,
            "video_frame_rate_limit": 0,
            "video_matrix_limit": 0,
        },
        "polls": {
            "max_options": 4,
            "max_characters_per_option": 50,
            "min_expiration": 300,
            "max_expiration": 2629746,
        },
    }


def _description(services: Services) -> str:
    return f"Communities on {services.settings.domain}, powered by Kith."


async def instance_v1(request: Request) -> Response:
    """``GET /api/v1/instance``."""
    services = services_of(request)
    domain = services.settings.domain
    doc = {
        "uri": domain,
        "title": domain,
        "short_description": _description(services),
        "description": _description(services),
        "email": "",
        "version": MASTODON_VERSION,
        "urls": {"streaming_api": f"wss://{domain}"},
        "stats": await _stats(services),
        "thumbnail": None,
        "languages": ["en"],
        "registrations": False,
        "approval_required": False,
        "invites_enabled": False,
        "configuration": _limits(),
        "contact_account": None,
        "rules": [],
    }
    return json_response(doc, {"Access-Control-Allow-Origin": "*"})


async def instance_v2(request: Request) -> Response:
    """``GET /api/v2/instance``."""
    services = services_of(request)
    domain = services.settings.domain
    stats = await _stats(services)
    doc = {
        "domain": domain,
        "title": domain,
        "version": MASTODON_VERSION,
        "source_url": "",
        "description": _description(services),
        "usage": {"users": {"active_month": stats["user_count"]}},
        "thumbnail": {"url": None},
        "icon": [],
        "languages": ["en"],
        "configuration": {
            "urls": {"streaming": f"wss://{domain}", "status": None},
            "vapid": {"public_key": ""},
            "translation": {"enabled": False},
            **_limits(),
        },
        "registrations": {"enabled": False, "approval_required": False, "message": None, "url": None},
        "api_versions": {"mastodon": MASTODON_API_VERSION},
        "contact": {"email": "", "account": None},
        "rules": [],
    }
    return json_response(doc, {"Access-Control-Allow-Origin": "*"})


async def instance_domain_blocks(request: Request) -> Response:
    """``GET /api/v1/instance/domain_blocks``: the public list, obfuscated where the admin asked.

    As Mastodon: only blocks people notice (silence, suspend), strictest last, each
    with the SHA-256 of the real domain so other servers can match obfuscated entries.
    """
    async with services_of(request).db.read() as conn:
        rows = await blocklist.list_blocks(conn)
    order = {"silence": 0, "suspend": 1}
    shown = sorted((r for r in rows if r.severity in order), key=lambda r: (order[r.severity], r.domain))
    docs = [
        {
            "domain": blocklist.obfuscated(r.domain) if r.obfuscate else r.domain,
            "digest": blocklist.digest(r.domain),
            "severity": r.severity,
            "comment": r.public_comment,
        }
        for r in shown
    ]
    return json_response(docs, {"Access-Control-Allow-Origin": "*"})


# --------------------------------------------------------------------------- accounts and apps


def _role(is_admin: bool) -> dict[str, Any]:
    # Mastodon's built-in roles: "Admin" holds the administrator permission bit (1),
    # everyone else the default role (id -99); clients read this to show admin tools.
    if is_admin:
        return {"id": "3", "name": "Admin", "color": "", "permissions": "1", "highlighted": True}
    return {"id": "-99", "name": "", "color": "", "permissions": "65536", "highlighted": False}


@api_endpoint("read", "read:accounts", "profile", user=True)
async def verify_credentials(request: Request, caller: Caller) -> Response:
    """``GET /api/v1/accounts/verify_credentials``: the token's own account (CredentialAccount)."""
    services = services_of(request)
    assert caller.username is not None
    async with services.db.read() as conn:
        user = await get_user(conn, caller.username)
        actor = await get_local_actor(conn, caller.username, "person")
    url = services.links.actor("person", actor.name)
    avatar = actor.icon_url or ""
    note = actor.summary or ""
    doc = {
        "id": str(actor.id),
        "username": actor.name,
        "acct": actor.name,
        "display_name": actor.title or actor.name,
        "locked": False,
        "bot": False,
        "discoverable": bool(actor.discoverable),
        "indexable": False,
        "group": False,
        "created_at": mastodon_time(actor.created_at.replace(hour=0, minute=0, second=0, microsecond=0)),
        "note": text_to_html(note),
        "url": url,
        "uri": url,
        "avatar": avatar,
        "avatar_static": avatar,
        "header": "",
        "header_static": "",
        "followers_count": 0,
        "following_count": 0,
        "statuses_count": 0,
        "last_status_at": None,
        "hide_collections": True,
        "noindex": True,
        "emojis": [],
        "roles": [],
        "fields": [],
        "source": {
            "privacy": "public",
            "sensitive": False,
            "language": None,
            "note": note,
            "fields": [],
            "follow_requests_count": 0,
            "hide_collections": True,
            "discoverable": bool(actor.discoverable),
            "indexable": False,
        },
        "role": _role(bool(user.is_admin)),
    }
    return json_response(doc)


@api_endpoint()
async def app_verify_credentials(request: Request, caller: Caller) -> Response:
    """``GET /api/v1/apps/verify_credentials``: the application behind the token."""
    async with services_of(request).db.read() as conn:
        app = await get_app(conn, caller.app_id) if caller.app_id is not None else None
    if app is None:
        # A token made with ``kith token create`` stands for no registered application.
        return json_response({"name": "kith token create", "website": None, "scopes": sorted(caller.scopes)})
    return json_response({"name": app.name, "website": app.website, "scopes": app.scopes.split(), "vapid_key": ""})


# --------------------------------------------------------------------------- admin: domain blocks


def block_json(row: Any) -> dict[str, Any]:
    """Mastodon's Admin::DomainBlock entity."""
    return {
        "id": str(row.id),
        "domain": row.domain,
        "digest": blocklist.digest(row.domain),
        "created_at": mastodon_time(row.created_at),
        "severity": row.severity,
        "reject_media": row.reject_media,
        "reject_reports": row.reject_reports,
        "private_comment": row.private_comment,
        "public_comment": row.public_comment,
        "obfuscate": row.obfuscate,
    }


def _block_changes(params: dict[str, Any]) -> dict[str, Any]:
    """The block fields a request sets; anything else (the domain on update) is ignored, as Mastodon does."""
    changes: dict[str, Any] = {}
    for key in BLOCK_FIELDS:
        if key in ("reject_media", "reject_reports", "obfuscate"):
            value: Any = flag(params, key)
        else:
            value = text(params, key)
        if value is not None:
            changes[key] = value
    return changes


@api_endpoint(*READ_BLOCKS, admin=True)
async def list_domain_blocks(request: Request, caller: Caller) -> Response:
    """``GET /api/v1/admin/domain_blocks``, newest first, ``Link``-paginated."""
    bounds, limit, given = page_args(request)
    async with services_of(request).db.read() as conn:
        rows = await blocklist.list_blocks(conn, **bounds, limit=limit)
    return paged_response(request, "/api/v1/admin/domain_blocks", rows, [block_json(r) for r in rows], limit, given)


@api_endpoint(*READ_BLOCKS, admin=True)
async def show_domain_block(request: Request, caller: Caller) -> Response:
    """``GET /api/v1/admin/domain_blocks/:id``."""
    block_id = path_id(request)
    async with services_of(request).db.read() as conn:
        row = await blocklist.get_block(conn, block_id)
    return json_response(block_json(row))


@api_endpoint(*WRITE_BLOCKS, admin=True)
async def create_domain_block(request: Request, caller: Caller) -> Response:
    """``POST /api/v1/admin/domain_blocks``: 422 when the domain is already blocked or invalid."""
    services = services_of(request)
    params = await read_params(request)
    domain = domain_param(params)
    # Mastodon's default severity when none is given is silence (Kith's CLI defaults to suspend).
    spec = blocklist.BlockSpec(domain=domain, **{"severity": "silence", **_block_changes(params)})
    assert caller.username is not None
    try:
        row, _effects = await blocklist.create_block(services.db, spec, actor=caller.username)
    except Unprocessable as exc:
        existing = await _existing_block(services, domain)
        if existing is None:
            raise
        return JSONResponse({"error": exc.reason, "existing_domain_block": block_json(existing)}, status_code=422)
    await _reload_policy(services)
    return json_response(block_json(row))


async def _existing_block(services: Services, domain: str) -> Any | None:
    try:
        async with services.db.read() as conn:
            return await blocklist.find_block(conn, domain)
    except (NotFound, Unprocessable):
        return None


@api_endpoint(*WRITE_BLOCKS, admin=True)
async def update_domain_block(request: Request, caller: Caller) -> Response:
    """``PUT /api/v1/admin/domain_blocks/:id``: severity, flags and comments."""
    services = services_of(request)
    block_id = path_id(request)
    changes = _block_changes(await read_params(request))
    assert caller.username is not None
    row = await blocklist.update_block(services.db, block_id, changes, actor=caller.username)
    await _reload_policy(services)
    return json_response(block_json(row))


@api_endpoint(*WRITE_BLOCKS, admin=True)
async def delete_domain_block(request: Request, caller: Caller) -> Response:
    """``DELETE /api/v1/admin/domain_blocks/:id``: lifts the block; 200 ``{}``."""
    services = services_of(request)
    block_id = path_id(request)
    assert caller.username is not None
    await blocklist.delete_block(services.db, block_id, actor=caller.username)
    await _reload_policy(services)
    return json_response({})


# --------------------------------------------------------------------------- admin: domain allows


def allow_json(row: Any) -> dict[str, Any]:
    """Mastodon's Admin::DomainAllow entity."""
    return {"id": str(row.id), "domain": row.domain, "created_at": mastodon_time(row.created_at)}


@api_endpoint(*READ_ALLOWS, admin=True)
async def list_domain_allows(request: Request, caller: Caller) -> Response:
    """``GET /api/v1/admin/domain_allows``, newest first, ``Link``-paginated."""
    bounds, limit, given = page_args(request)
    async with services_of(request).db.read() as conn:
        rows = await blocklist.list_allows(conn, **bounds, limit=limit)
    return paged_response(request, "/api/v1/admin/domain_allows", rows, [allow_json(r) for r in rows], limit, given)


@api_endpoint(*READ_ALLOWS, admin=True)
async def show_domain_allow(request: Request, caller: Caller) -> Response:
    """``GET /api/v1/admin/domain_allows/:id``."""
    allow_id = path_id(request)
    async with services_of(request).db.read() as conn:
        row = await blocklist.get_allow(conn, allow_id)
    return json_response(allow_json(row))


@api_endpoint(*WRITE_ALLOWS, admin=True)
async def create_domain_allow(request: Request, caller: Caller) -> Response:
    """``POST /api/v1/admin/domain_allows``: an already allowed domain answers its existing record."""
    services = services_of(request)
    domain = domain_param(await read_params(request))
    assert caller.username is not None
    try:
        row = await blocklist.create_allow(services.db, domain, actor=caller.username)
    except Unprocessable:
        try:
            async with services.db.read() as conn:
                row = await blocklist.find_allow(conn, domain)
        except NotFound:
            raise Unprocessable(f"{domain!r} is not a domain") from None
        return json_response(allow_json(row))
    await _reload_policy(services)
    return json_response(allow_json(row))


@api_endpoint(*WRITE_ALLOWS, admin=True)
async def delete_domain_allow(request: Request, caller: Caller) -> Response:
    """``DELETE /api/v1/admin/domain_allows/:id``: 200 ``{}``."""
    services = services_of(request)
    allow_id = path_id(request)
    assert caller.username is not None
    await blocklist.delete_allow(services.db, allow_id, actor=caller.username)
    await _reload_policy(services)
    return json_response({})


def _both(path: str, endpoint: Any, methods: list[str]) -> list[Route]:
    # Mastodon.py asks for some collections with a trailing slash ("/api/v1/instance/"):
    # answer both spellings rather than redirect (a redirect would drop a POST body on some clients).
    return [Route(path, endpoint, methods=methods), Route(path + "/", endpoint, methods=methods)]


routes: list[Route] = [
    *_both("/api/v1/instance", instance_v1, ["GET"]),
    *_both("/api/v2/instance", instance_v2, ["GET"]),
    *_both("/api/v1/instance/domain_blocks", instance_domain_blocks, ["GET"]),
    Route("/api/v1/accounts/verify_credentials", verify_credentials, methods=["GET"]),
    Route("/api/v1/apps/verify_credentials", app_verify_credentials, methods=["GET"]),
    *_both("/api/v1/admin/domain_blocks", list_domain_blocks, ["GET"]),
    *_both("/api/v1/admin/domain_blocks", create_domain_block, ["POST"]),
    Route("/api/v1/admin/domain_blocks/{id}", show_domain_block, methods=["GET"]),
    Route("/api/v1/admin/domain_blocks/{id}", update_domain_block, methods=["PUT", "PATCH"]),
    Route("/api/v1/admin/domain_blocks/{id}", delete_domain_block, methods=["DELETE"]),
    *_both("/api/v1/admin/domain_allows", list_domain_allows, ["GET"]),
    *_both("/api/v1/admin/domain_allows", create_domain_allow, ["POST"]),
    Route("/api/v1/admin/domain_allows/{id}", show_domain_allow, methods=["GET"]),
    Route("/api/v1/admin/domain_allows/{id}", delete_domain_allow, methods=["DELETE"]),
]
