"""Discovery: WebFinger, host-meta and NodeInfo, as Mastodon and others read them."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import __version__
from server.errors import BadRequest, NotFound
from server.groups.membership import count_usage
from server.jsondoc import has_nul
from server.links import INSTANCE_ACTOR_NAME
from server.services import Services
from server.tables import local_actors

CORS = {"Access-Control-Allow-Origin": "*"}
NODEINFO_21 = "http://nodeinfo.diaspora.software/ns/schema/2.1"


def _services(request: Request) -> Services:
    return request.app.state.services


def parse_resource(resource: str, services: Services) -> str:
    """Map a WebFinger resource (``acct:name@domain`` or an actor URL) to a local name.

    Raises ``BadRequest`` for something that is not a resource at all and
    ``NotFound`` for a well-formed resource that is not ours.
    """
    resource = unquote(resource.strip())
    # Decoded a second time here, so "%2500" in the query is a NUL only now, past RefuseNul;
    # PostgreSQL text cannot hold one and the lookup would fail as a server error.
    if has_nul(resource):
        raise BadRequest("the resource contains a NUL character")
    settings, links = services.settings, services.links
    if resource.startswith(("https://", "http://")):
        if resource == links.instance_actor:
            return INSTANCE_ACTOR_NAME
        for prefix in (links.base + "/groups/", links.base + "/users/"):
            name = resource[len(prefix) :] if resource.startswith(prefix) else ""
            if name and "/" not in name:  # "https://host/groups/" names no one
                return name
        raise NotFound("not a resource of this server")
    acct = resource[5:] if resource.lower().startswith("acct:") else resource
    acct = acct.lstrip("@")
    if acct.count("@") != 1:
        raise BadRequest("resource must be acct:name@domain or an actor URL")
    name, domain = acct.split("@")
    if not name or not domain:
        raise BadRequest("resource must be acct:name@domain or an actor URL")
    domain = domain.lower()
    if domain not in (settings.domain, settings.host):
        raise NotFound("not a resource of this server")
    if name.lower() in (settings.domain, settings.host):
        return INSTANCE_ACTOR_NAME  # acct:example.com@example.com, as Mastodon names its instance actor
    return name.lower()


async def webfinger(request: Request) -> Response:
    services = _services(request)
    resource = request.query_params.get("resource")
    if not resource:
        raise BadRequest("the resource parameter is required")
    name = parse_resource(resource, services)
    async with services.db.read() as conn:
        actor = (await conn.execute(sa.select(local_actors).where(local_actors.c.name == name))).one_or_none()
    if actor is None:
        raise NotFound("no such account")
    links = services.links
    actor_id = links.actor(actor.kind, actor.name)
    handle = services.settings.host if actor.kind == "application" else actor.name
    page = links.base + "/about" if actor.kind == "application" else actor_id
    jrd = {
        "subject": f"acct:{handle}@{services.settings.domain}",
        "aliases": [actor_id],
        "links": [
            {"rel": "self", "type": "application/activity+json", "href": actor_id},
            {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html", "href": page},
        ],
    }
    return Response(json.dumps(jrd), media_type="application/jrd+json; charset=utf-8", headers=CORS)


async def host_meta(request: Request) -> Response:
    base = _services(request).links.base
    template = f"{base}/.well-known/webfinger?resource={{uri}}"
    wants_json = request.url.path.endswith(".json") or "json" in request.headers.get("accept", "")
    if wants_json:
        doc = {"links": [{"rel": "lrdd", "template": template}]}
        return JSONResponse(doc, headers=CORS)
    xrd = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" type="application/xrd+xml" template="{template}"/>\n'
        "</XRD>\n"
    )
    return Response(xrd, media_type="application/xrd+xml; charset=utf-8", headers=CORS)


async def nodeinfo_links(request: Request) -> Response:
    base = _services(request).links.base
    doc = {"links": [{"rel": NODEINFO_21, "href": f"{base}/nodeinfo/2.1"}]}
    return JSONResponse(doc, headers=CORS)


def nodeinfo_document(usage: dict[str, int], node_name: str) -> dict[str, Any]:
    """A NodeInfo 2.1 document from real usage counts."""
    return {
        "version": "2.1",
        "software": {
            "name": "kith",
            "version": __version__,
        },
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": False,
        "usage": {
            "users": {
                "total": usage["users"],
                "activeMonth": usage["users"],
                "activeHalfyear": usage["users"],
            },
            "localPosts": usage.get("posts", 0),
        },
        "metadata": {"nodeName": node_name, "groups": usage["groups"]},
    }


async def nodeinfo(request: Request) -> Response:
    services = _services(request)
    async with services.db.read() as conn:
        usage = await count_usage(conn)
    doc = nodeinfo_document(usage, services.settings.domain)
    media = f'application/json; profile="{NODEINFO_21}#"'
    return Response(json.dumps(doc), media_type=media, headers=CORS)


routes = [
    Route("/.well-known/webfinger", webfinger),
    Route("/.well-known/host-meta", host_meta),
    Route("/.well-known/host-meta.json", host_meta),
    Route("/.well-known/nodeinfo", nodeinfo_links),
    Route("/nodeinfo/2.1", nodeinfo),
]
