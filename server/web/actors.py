"""Local actors and their collections: ActivityPub JSON for servers, a page for people."""

from __future__ import annotations

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.errors import NotFound
from server.federation.serialize import actor_document, ordered_collection, text_to_html
from server.groups.following import count_members
from server.groups.media import group_document, load_group_document
from server.groups.routine import next_up
from server.groups.threads import list_pinned
from server.links import INSTANCE_ACTOR_NAME
from server.local_actors import LocalActor, get_local_actor
from server.moderation.authority import local_role, moderator_uris
from server.negotiation import activity_response, wants_activity_json
from server.services import Services
from server.web.console.common import SESSION_COOKIE, viewer
from server.web.queries import REPLIES_PER_THREAD, load_group_page
from server.web.templating import templates
from server.web.threads import parse_before
from server.web.views import credit_group, root_view, thread_views

GROUP_COLLECTIONS = ("followers", "following", "featured", "moderators")
PERSON_COLLECTIONS = ("outbox", "followers", "following")


def _services(request: Request) -> Services:
    return request.app.state.services


async def _load(request: Request, kind: str, name: str) -> LocalActor:
    services = _services(request)
    async with services.db.read() as conn:
        return await get_local_actor(conn, name, kind)


async def group_actor(request: Request) -> Response:
    """The group: its actor document for servers, its page (threads, pins, facts) for people."""
    services = _services(request)
    name = request.path_params["name"]
    if wants_activity_json(request):
        async with services.db.read() as conn:
            group = await get_local_actor(conn, name, "group")
            doc = await load_group_document(conn, group, services.links, host=services.settings.host)
        return activity_response(request, doc)
    before = parse_before(request)
    async with services.db.read() as conn:  # one checkout for every read of the page
        data = await load_group_page(conn, name, before=before)
        coming = await next_up(conn, [data.group.id])
    group = data.group
    doc = group_document(group, data.media, services.links, host=services.settings.host)
    pinned = [root_view(p, group.name) for p in data.pinned]
    threads = thread_views(
        data.roots, data.replies, group=group.name, shown=REPLIES_PER_THREAD, hide=frozenset(p.id for p in data.pinned)
    )
    handle = f"@{group.name}@{services.settings.domain}"
    credit_group([*pinned, *threads], uri=services.links.group(group.name), label=group.title or handle, handle=handle)
    context = {
        "threads": threads,
        "next_cursor": data.next.encode() if data.next else None,
        "pinned": pinned,
        "rules": [r.strip() for r in group.rules.splitlines() if r.strip()],
        "group": group,
        "doc": doc,
        # The purpose alone: the actor's summary adds the rules for Mastodon's profile view,
        # and this page lists them in a section of their own.
        "summary_html": Markup(text_to_html(group.summary or "")),  # text_to_html escapes
        "objectives_html": Markup(text_to_html(group.objectives or "")),
        "benefits_html": Markup(text_to_html(group.benefits or "")),
        "handle": handle,
        "avatar": doc.get("icon"),
        "header": doc.get("image"),
        "members": data.members,
        "leaders": data.leaders,
        "next_up": coming.get(group.id),  # the next recurring thread, in its schedule's zone
    }
    headers = {"Vary": "Accept, Cookie"}
    if SESSION_COOKIE in request.cookies:  # only then a query: anonymous visitors cost nothing more
        session = await viewer(request)
        if session is not None:
            headers["Cache-Control"] = "private, no-store"
            async with services.db.read() as conn:
                context["moderate"] = session.is_admin or await local_role(conn, group.id, session.username) is not None
    return templates.TemplateResponse(request, "group.html", context, headers=headers)


async def person_actor(request: Request) -> Response:
    services = _services(request)
    actor = await _load(request, "person", request.path_params["name"])
    doc = actor_document(actor, services.links, host=services.settings.host)
    if wants_activity_json(request):
        return activity_response(request, doc)
    context = {"person": actor, "handle": f"@{actor.name}@{services.settings.domain}", "doc": doc}
    return templates.TemplateResponse(request, "person.html", context, headers={"Vary": "Accept"})


async def instance_actor(request: Request) -> Response:
    services = _services(request)
    actor = await _load(request, "application", INSTANCE_ACTOR_NAME)
    return activity_response(request, actor_document(actor, services.links, host=services.settings.host))


async def group_collection(request: Request) -> Response:
    services = _services(request)
    name, which = request.path_params["name"], request.path_params["which"]
    if which not in GROUP_COLLECTIONS:
        raise NotFound("no such collection")
    collection_id = services.links.collection("group", name, which)
    async with services.db.read() as conn:
        group = await get_local_actor(conn, name, "group")
        if which == "followers":
            # The count is public; who the members are is for moderators only.
            doc = ordered_collection(collection_id, None, await count_members(conn, group.id))
        elif which == "moderators":
            leaders = await moderator_uris(conn, group.id, services.links)
            doc = ordered_collection(collection_id, leaders, len(leaders))
        elif which == "featured":
            featured = [p.uri for p in await list_pinned(conn, group.id)]
            doc = ordered_collection(collection_id, featured, len(featured))
        else:
            doc = ordered_collection(collection_id, [], 0)
    return activity_response(request, doc)


async def person_collection(request: Request) -> Response:
    services = _services(request)
    name, which = request.path_params["name"], request.path_params["which"]
    if which not in PERSON_COLLECTIONS:
        raise NotFound("no such collection")
    await _load(request, "person", name)
    return activity_response(request, ordered_collection(services.links.collection("person", name, which), [], 0))


routes = [
    Route("/actor", instance_actor),
    Route("/groups/{name}", group_actor),
    Route("/groups/{name}/{which}", group_collection),
    Route("/users/{name}", person_actor),
    Route("/users/{name}/{which}", person_collection),
]
