"""The Mastodon-compatible subset: instance, the token's account, and the admin domain policy API.

Entities, status codes, scopes and ``Link`` pagination follow Mastodon 4.3, so that
Mastodon.py and blocklist managers work unchanged. Every change goes through
``moderation.blocklist.store``, which writes the audit log under the acting admin's name.
Domain blocks and domain allows share one set of endpoints, each an ``AdminCollection``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic
from urllib.parse import urlencode

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import __version__
from server.accounts import get_user
from server.api.auth import Caller, Handler, api_endpoint, flag, read_params, services_of, text
from server.api.entities import account_json, local_profile, mastodon_time, role_json
from server.errors import BadRequest, NotFound, Unprocessable
from server.groups.membership import count_usage
from server.ids import MAX_ID, id_value
from server.local_actors import get_local_actor
from server.moderation.blocklist import store
from server.moderation.blocklist.matcher import digest, normalize_domain, obfuscated
from server.moderation.blocklist.store import (
    BLOCK_SETTINGS,
    AllowSpec,
    BlockSpec,
    DomainAllow,
    DomainBlock,
    PolicyTable,
    R,
    S,
)
from server.oauth import get_app
from server.services import Services
from server.tables import posts, remote_actors

MASTODON_VERSION = f"4.3.0 (compatible; Kith {__version__})"
MASTODON_API_VERSION = 2  # what Mastodon 4.3.0 reports in api_versions; Mastodon.py reads it
PAGE_LIMIT = 100  # Mastodon's admin lists: 100 by default, at most twice that


def path_id(request: Request) -> int:
    """The numeric ``{id}`` of the path; anything else cannot name a record (404)."""
    raw = request.path_params["id"]
    value = id_value(raw)
    if value is None or value > MAX_ID:
        raise NotFound("Record not found")
    return value


def domain_param(params: dict[str, Any]) -> str:
    """The ``domain`` parameter, normalised; 422 saying why when blank or not a domain."""
    domain = (text(params, "domain") or "").strip()
    if not domain:
        raise Unprocessable("Validation failed: Domain can't be blank")
    return normalize_domain(domain)


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
        value = id_value(raw)
        if value is None:
            raise BadRequest(f"{key} must be a number")
        bounds[key] = min(value, MAX_ID)  # beyond any id, and within what PostgreSQL accepts
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
        rows = await store.page(conn, store.BLOCKS)
    order = {"silence": 0, "suspend": 1}
    shown = sorted((r for r in rows if r.severity in order), key=lambda r: (order[r.severity], r.domain))
    docs = [
        {
            "domain": obfuscated(r.domain) if r.obfuscate else r.domain,
            "digest": digest(r.domain),
            "severity": r.severity,
            "comment": r.public_comment,
        }
        for r in shown
    ]
    return json_response(docs, {"Access-Control-Allow-Origin": "*"})


# --------------------------------------------------------------------------- accounts and apps


@api_endpoint("read", "read:accounts", "profile", user=True)
async def verify_credentials(request: Request, caller: Caller) -> Response:
    """``GET /api/v1/accounts/verify_credentials``: the token's own account (CredentialAccount)."""
    services = services_of(request)
    assert caller.username is not None
    async with services.db.read() as conn:
        user = await get_user(conn, caller.username)
        actor = await get_local_actor(conn, caller.username, "person")
    account = account_json(local_profile(actor, services.links, is_admin=user.is_admin))
    source = {
        "privacy": "public",
        "sensitive": False,
        "language": None,
        "note": actor.summary or "",
        "fields": [],
        "follow_requests_count": 0,
        "hide_collections": True,
        "discoverable": bool(actor.discoverable),
        "indexable": False,
    }
    return json_response({**account, "source": source, "role": role_json(user.is_admin)})


@api_endpoint()
async def app_verify_credentials(request: Request, caller: Caller) -> Response:
    """``GET /api/v1/apps/verify_credentials``: the application behind the token."""
    async with services_of(request).db.read() as conn:
        app = await get_app(conn, caller.app_id) if caller.app_id is not None else None
    if app is None:
        # A token made with ``kith token create`` stands for no registered application.
        return json_response({"name": "kith token create", "website": None, "scopes": sorted(caller.scopes)})
    return json_response({"name": app.name, "website": app.website, "scopes": app.scopes.split(), "vapid_key": ""})


# --------------------------------------------------------------------------- admin: domain blocks and allows


def block_json(block: DomainBlock) -> dict[str, Any]:
    """Mastodon's Admin::DomainBlock entity (``kith domain block`` and ``list`` print it too)."""
    return {
        "id": str(block.id),
        "domain": block.domain,
        "digest": digest(block.domain),
        "created_at": mastodon_time(block.created_at),
        "severity": block.severity,
        "reject_media": block.reject_media,
        "reject_reports": block.reject_reports,
        "private_comment": block.private_comment,
        "public_comment": block.public_comment,
        "obfuscate": block.obfuscate,
    }


def allow_json(allow: DomainAllow) -> dict[str, Any]:
    """Mastodon's Admin::DomainAllow entity."""
    return {"id": str(allow.id), "domain": allow.domain, "created_at": mastodon_time(allow.created_at)}


def _block_changes(params: dict[str, Any]) -> dict[str, Any]:
    """The block fields a request sets; anything else (the domain on update) is ignored, as Mastodon does."""
    changes: dict[str, Any] = {}
    for key in BLOCK_SETTINGS:
        if key in ("reject_media", "reject_reports", "obfuscate"):
            value: Any = flag(params, key)
        else:
            value = text(params, key)
        if value is not None:
            changes[key] = value
    return changes


def _block_spec(domain: str, params: dict[str, Any]) -> BlockSpec:
    # Mastodon's default severity when none is given is silence (Kith's CLI defaults to suspend).
    return BlockSpec(domain=domain, **{"severity": "silence", **_block_changes(params)})


def _block_exists(reason: str, existing: DomainBlock) -> Response:
    return JSONResponse({"error": reason, "existing_domain_block": block_json(existing)}, status_code=422)


def _allow_exists(reason: str, existing: DomainAllow) -> Response:
    return json_response(allow_json(existing))  # as Mastodon: allowing an allowed domain answers its record


@dataclass(frozen=True)
class AdminCollection(Generic[R, S]):
    """One of Mastodon's two admin domain collections: where it is, its scopes, and how its entity looks."""

    kind: PolicyTable[R, S]
    path: str
    read: tuple[str, ...]
    write: tuple[str, ...]
    entity: Callable[[R], dict[str, Any]]
    spec: Callable[[str, dict[str, Any]], S]  # what a POST asks for: (its domain, its parameters)
    exists: Callable[[str, R], Response]  # the answer when the domain already has a record


BLOCK_API = AdminCollection(
    store.BLOCKS,
    "/api/v1/admin/domain_blocks",
    ("admin:read", "admin:read:domain_blocks"),
    ("admin:write", "admin:write:domain_blocks"),
    block_json,
    _block_spec,
    _block_exists,
)
ALLOW_API = AdminCollection(
    store.ALLOWS,
    "/api/v1/admin/domain_allows",
    ("admin:read", "admin:read:domain_allows"),
    ("admin:write", "admin:write:domain_allows"),
    allow_json,
    lambda domain, _params: AllowSpec(domain),
    _allow_exists,
)


def _endpoint(name: str, scopes: tuple[str, ...], handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    handler.__name__ = handler.__qualname__ = name
    return api_endpoint(*scopes, admin=True)(handler)


def _list_endpoint(api: AdminCollection[R, S]) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request, caller: Caller) -> Response:
        bounds, limit, given = page_args(request)
        async with services_of(request).db.read() as conn:
            rows = await store.page(conn, api.kind, **bounds, limit=limit)
        return paged_response(request, api.path, rows, [api.entity(r) for r in rows], limit, given)

    handler.__doc__ = f"``GET {api.path}``, newest first, ``Link``-paginated."
    return _endpoint(f"list_{api.kind.noun}s", api.read, handler)


def _show_endpoint(api: AdminCollection[R, S]) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request, caller: Caller) -> Response:
        row_id = path_id(request)
        async with services_of(request).db.read() as conn:
            row = await store.get(conn, api.kind, row_id)
        return json_response(api.entity(row))

    handler.__doc__ = f"``GET {api.path}/:id``."
    return _endpoint(f"show_{api.kind.noun}", api.read, handler)


def _create_endpoint(api: AdminCollection[R, S]) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request, caller: Caller) -> Response:
        services = services_of(request)
        params = await read_params(request)
        spec = api.spec(domain_param(params), params)
        assert caller.username is not None
        try:
            row, _effects = await store.create(services.db, api.kind, spec, actor=caller.username)
        except store.AlreadyPresent as exc:
            existing = await _existing(services, api.kind, spec.domain)
            if existing is None:  # lifted in the meantime
                raise
            return api.exists(exc.reason, existing)
        await _reload_policy(services)
        return json_response(api.entity(row))

    handler.__doc__ = f"``POST {api.path}``: 422 with a reason when the domain is not one."
    return _endpoint(f"create_{api.kind.noun}", api.write, handler)


async def _existing(services: Services, kind: PolicyTable[R, S], domain: str) -> R | None:
    try:
        async with services.db.read() as conn:
            return await store.find(conn, kind, domain)
    except NotFound:
        return None


def _delete_endpoint(api: AdminCollection[R, S]) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request, caller: Caller) -> Response:
        services = services_of(request)
        row_id = path_id(request)
        assert caller.username is not None
        await store.delete(services.db, api.kind, row_id, actor=caller.username)
        await _reload_policy(services)
        return json_response({})

    handler.__doc__ = f"``DELETE {api.path}/:id``: 200 ``{{}}`` (lifting a block restores what it hid)."
    return _endpoint(f"delete_{api.kind.noun}", api.write, handler)


@api_endpoint(*BLOCK_API.write, admin=True)
async def update_domain_block(request: Request, caller: Caller) -> Response:
    """``PUT /api/v1/admin/domain_blocks/:id``: severity, flags and comments."""
    services = services_of(request)
    block_id = path_id(request)
    changes = _block_changes(await read_params(request))
    assert caller.username is not None
    block = await store.update_block(services.db, block_id, changes, actor=caller.username)
    await _reload_policy(services)
    return json_response(block_json(block))


def _admin_routes(api: AdminCollection[Any, Any]) -> list[Route]:
    item = api.path + "/{id}"
    return [
        *_both(api.path, _list_endpoint(api), ["GET"]),
        *_both(api.path, _create_endpoint(api), ["POST"]),
        Route(item, _show_endpoint(api), methods=["GET"]),
        Route(item, _delete_endpoint(api), methods=["DELETE"]),
    ]


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
    *_admin_routes(BLOCK_API),
    Route(BLOCK_API.path + "/{id}", update_domain_block, methods=["PUT", "PATCH"]),
    *_admin_routes(ALLOW_API),
]
