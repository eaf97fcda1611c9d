"""A group's conversations: the outbox (servers), dereferenceable activities, and one thread's
HTML page (the JSON listing of threads is ``server.api.threads``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.errors import BadRequest, NotFound
from server.federation import activities, outbound
from server.federation.client import FetchError
from server.federation.httpsig import IncomingRequest, SignatureError, signature_key_id, verify_request
from server.federation.objects import host_or_none
from server.federation.vocab import AS_CONTEXT
from server.groups.membership import get_group
from server.groups.threads import Cursor
from server.ids import id_value
from server.negotiation import activity_response
from server.services import Services
from server.web.paging import id_param
from server.web.queries import MAX_POST_ID, REPLIES_PER_THREAD_PAGE, load_thread_page
from server.web.templating import templates
from server.web.views import credit_group, thread_page_view

OUTBOX_PAGE = 20


def _services(request: Request) -> Services:
    return request.app.state.services


async def outbox(request: Request) -> Response:
    """The group's Announces, newest first: a collection pointing to keyset-paged pages."""
    services = _services(request)
    name = request.path_params["name"]
    outbox_id = services.links.collection("group", name, "outbox")
    max_id = id_param(request, "max_id")
    async with services.db.read() as conn:
        group = await get_group(conn, name)
        if request.query_params.get("page") != "true":
            doc = {
                "@context": AS_CONTEXT,
                "id": outbox_id,
                "type": "OrderedCollection",
                "totalItems": await outbound.outbox_count(conn, group.id),
                "first": f"{outbox_id}?page=true",
            }
            return activity_response(request, doc)
        rows = await outbound.outbox_page(conn, group.id, max_id=max_id, limit=OUTBOX_PAGE + 1)
    page_id = f"{outbox_id}?page=true" + (f"&max_id={max_id}" if max_id is not None else "")
    doc = {
        "@context": AS_CONTEXT,
        "id": page_id,
        "type": "OrderedCollectionPage",
        "partOf": outbox_id,
        "orderedItems": [activity for _, activity in rows[:OUTBOX_PAGE]],
    }
    if len(rows) > OUTBOX_PAGE:
        doc["next"] = f"{outbox_id}?page=true&max_id={rows[OUTBOX_PAGE - 1][0]}"
    return activity_response(request, doc)


async def activity(request: Request) -> Response:
    """Any activity we sent, by its id (a servers re-fetches what an Announce wraps, microblog.pub
    among them); a tombstone (410) once what it carried is deleted.

    What would disclose something not public (a report, a direct message) answers 404 to
    anyone but its addressees, who prove who they are with a signed GET.
    """
    services = _services(request)
    uri = services.links.activity(request.path_params["uid"])
    async with services.db.read() as conn:
        found = await outbound.find(conn, uri)
    if found is None or found.hidden:
        raise NotFound("no such activity")
    doc = found.document()
    if not activities.disclosable(doc) and await _signer(request, services) not in activities.addressees(doc):
        raise NotFound("no such activity")
    if found.deleted_at is not None:
        return activity_response(request, activities.tombstone(uri, found.type, found.deleted_at), status=410)
    return activity_response(request, doc)


async def _signer(request: Request, services: Services) -> str | None:
    """The actor whose key signed this GET, or None when it is unsigned or does not verify."""
    if signature_key_id(request.headers) is None:
        return None
    url = services.settings.base_url + request.url.path
    incoming = IncomingRequest(request.method, url, dict(request.headers), b"")
    try:
        verified = await verify_request(incoming, services.actors.lookup_key, authority=services.settings.domain)
    except (SignatureError, FetchError):
        return None
    return verified.owner


def parse_before(request: Request) -> Cursor | None:
    """The ``before`` cursor in the query, if any (``BadRequest`` when it is malformed)."""
    raw = request.query_params.get("before")
    before = Cursor.decode(raw) if raw else None
    if raw and before is None:
        raise BadRequest("before is not a valid cursor")
    return before


def parse_post_id(raw: str) -> int:
    """The post id in a thread URL (``NotFound`` unless it is a number a post id can be)."""
    value = id_value(raw)
    if value is None or value > MAX_POST_ID:
        raise NotFound(f"no post {raw[:40]!r}: a thread is named by its first post's number")
    return value


async def thread_html(request: Request) -> Response:
    """``GET /groups/{name}/threads/{post_id}``: one thread, every reply (up to a cap) nested."""
    services = _services(request)
    name = request.path_params["name"]
    post_id = parse_post_id(request.path_params["post_id"])
    async with services.db.read() as conn:  # one checkout for every read of the page
        page = await load_thread_page(conn, name, post_id)
    thread = thread_page_view(page)
    handle = f"@{page.group_name}@{services.settings.domain}"
    group_uri = services.links.group(page.group_name)
    credit_group([thread], uri=group_uri, label=page.group_title or handle, handle=handle)
    context = {
        "thread": thread,
        "page_title": thread.title or f"Post by {thread.author_label}",
        "group_title": page.group_title,
        "group_path": f"/groups/{page.group_name}",
        "handle": handle,
        "origin": host_or_none(thread.link),
        "own": thread.author_uri == group_uri,
        "shown": REPLIES_PER_THREAD_PAGE,
    }
    return templates.TemplateResponse(request, "thread.html", context)


routes = [
    Route("/groups/{name}/outbox", outbox),
    Route("/activities/{uid}", activity),
    Route("/groups/{name}/threads/{post_id}", thread_html),
]
