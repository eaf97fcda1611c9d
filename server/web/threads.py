"""A group's conversations: the outbox (servers), dereferenceable activities, and one thread's
HTML page (the JSON listing of threads is ``server.api.threads``)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.errors import BadRequest, NotFound
from server.federation.objects import host_or_none
from server.federation.serialize import iso
from server.federation.vocab import AS_CONTEXT
from server.groups.membership import get_group
from server.groups.posts import Cursor
from server.negotiation import activity_response
from server.services import Services
from server.tables import outbound_activities
from server.web.queries import MAX_POST_ID, REPLIES_PER_THREAD_PAGE, load_thread_page
from server.web.templating import templates
from server.web.views import thread_page_view

OUTBOX_PAGE = 20


def _services(request: Request) -> Services:
    return request.app.state.services


def _outbox_filter(group_id: int) -> Any:
    return sa.and_(
        outbound_activities.c.actor_id == group_id,
        outbound_activities.c.type == "Announce",
        outbound_activities.c.public.is_(True),
        outbound_activities.c.deleted_at.is_(None),
        outbound_activities.c.hidden.is_(False),
    )


async def outbox(request: Request) -> Response:
    """The group's Announces, newest first: a collection pointing to keyset-paged pages."""
    services = _services(request)
    name = request.path_params["name"]
    outbox_id = services.links.collection("group", name, "outbox")
    async with services.db.read() as conn:
        group = await get_group(conn, name)
        if request.query_params.get("page") != "true":
            total = (
                await conn.execute(
                    sa.select(sa.func.count()).select_from(outbound_activities).where(_outbox_filter(group.id))
                )
            ).scalar_one()
            doc = {
                "@context": AS_CONTEXT,
                "id": outbox_id,
                "type": "OrderedCollection",
                "totalItems": total,
                "first": f"{outbox_id}?page=true",
            }
            return activity_response(request, doc)
        max_id = request.query_params.get("max_id")
        if max_id is not None and not max_id.isdigit():
            raise BadRequest("max_id must be a number")
        query = (
            sa.select(outbound_activities.c.id, outbound_activities.c.body)
            .where(_outbox_filter(group.id))
            .order_by(outbound_activities.c.id.desc())
            .limit(OUTBOX_PAGE + 1)
        )
        if max_id is not None:
            query = query.where(outbound_activities.c.id < int(max_id))
        rows = (await conn.execute(query)).all()
    page_id = f"{outbox_id}?page=true" + (f"&max_id={max_id}" if max_id else "")
    doc = {
        "@context": AS_CONTEXT,
        "id": page_id,
        "type": "OrderedCollectionPage",
        "partOf": outbox_id,
        "orderedItems": [json.loads(r.body) for r in rows[:OUTBOX_PAGE]],
    }
    if len(rows) > OUTBOX_PAGE:
        doc["next"] = f"{outbox_id}?page=true&max_id={rows[OUTBOX_PAGE - 1].id}"
    return activity_response(request, doc)


async def activity(request: Request) -> Response:
    """One of our public activities by its id; a tombstone (410) once what it carried is deleted."""
    services = _services(request)
    uri = services.links.activity(request.path_params["uid"])
    async with services.db.read() as conn:
        row = (await conn.execute(sa.select(outbound_activities).where(outbound_activities.c.uri == uri))).one_or_none()
    if row is None or not row.public or row.hidden:
        raise NotFound("no such activity")
    if row.deleted_at is not None:
        tombstone = {
            "@context": AS_CONTEXT,
            "id": uri,
            "type": "Tombstone",
            "formerType": row.type,
            "deleted": iso(row.deleted_at),
        }
        return activity_response(request, tombstone, status=410)
    return activity_response(request, json.loads(row.body))


def parse_before(request: Request) -> Cursor | None:
    """The ``before`` cursor in the query, if any (``BadRequest`` when it is malformed)."""
    raw = request.query_params.get("before")
    before = Cursor.decode(raw) if raw else None
    if raw and before is None:
        raise BadRequest("before is not a valid cursor")
    return before


def parse_post_id(raw: str) -> int:
    """The post id in a thread URL (``NotFound`` unless it is a number a post id can be)."""
    # isascii: str.isdigit also takes digits int() refuses, such as "²".
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_POST_ID:
        raise NotFound(f"no post {raw[:40]!r}: a thread is named by its first post's number")
    return int(raw)


async def thread_html(request: Request) -> Response:
    """``GET /groups/{name}/threads/{post_id}``: one thread, every reply (up to a cap) nested."""
    services = _services(request)
    name = request.path_params["name"]
    post_id = parse_post_id(request.path_params["post_id"])
    async with services.db.read() as conn:  # one checkout for every read of the page
        page = await load_thread_page(conn, name, post_id)
    thread = thread_page_view(page)
    context = {
        "thread": thread,
        "page_title": thread.title or f"Post by {thread.author_label}",
        "group_title": page.group_title,
        "group_path": f"/groups/{page.group_name}",
        "handle": f"@{page.group_name}@{services.settings.domain}",
        "origin": host_or_none(thread.link),
        "shown": REPLIES_PER_THREAD_PAGE,
    }
    return templates.TemplateResponse(request, "thread.html", context)


routes = [
    Route("/groups/{name}/outbox", outbox),
    Route("/activities/{uid}", activity),
    Route("/groups/{name}/threads/{post_id}", thread_html),
]
