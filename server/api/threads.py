"""``GET /api/kith/v1/groups/{name}/threads``: a group's threads as JSON, for anyone (no token).

The JSON twin of the group page (``server.web.actors``): the same page of threads, newest
activity first, each with its replies nested; ``next`` is the cursor of the following page.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.api.auth import services_of
from server.api.operation import Operation, answer, read_query
from server.api.requests import GroupPath, ThreadsQuery
from server.api.schemas import Author, PollOption, Reply, Thread, ThreadPage
from server.groups.membership import get_group
from server.groups.posts import AuthoredPost
from server.groups.threads import ReplyNode, handle_of, poll_results, thread_page


def post_fields(post: AuthoredPost, group: Author) -> dict[str, Any]:
    """What a post shows in the listing: a deleted or removed one keeps its place, not its content.

    ``group`` names the author of the group's own posts (they have no remote actor row)."""
    shown = post.state == "visible"
    author = group if post.author_uri == group.id else None
    return {
        "id": post.uri,
        "url": post.url or post.uri,
        "type": post.type,
        "author": author or Author(id=post.author_uri, handle=handle_of(post), name=post.author_name),
        "title": post.name if shown else None,
        "content_warning": post.summary if shown else None,
        "content_html": post.content_html if shown else "",  # sanitised on arrival
        "sensitive": post.sensitive,
        "state": post.state,  # visible | deleted | removed
        "removed_reason": post.removed_reason if post.state == "removed" else None,
        "locked": post.locked,
        "pinned": post.pinned_at is not None,
        "deleted": post.state == "deleted",
        "published": post.published,
        "updated": post.updated_at,
        "likes": post.likes,
        "dislikes": post.dislikes,
        "poll": [PollOption(title=t, votes=v) for t, v in poll_results(post)] if post.type == "Question" else None,
    }


def replies_of(nodes: list[ReplyNode], group: Author) -> list[Reply]:
    """A reply tree as the API's models."""
    return [Reply(**post_fields(n.post, group), replies=replies_of(n.children, group)) for n in nodes]


async def api_threads(request: Request) -> Response:
    """``GET /api/kith/v1/groups/{name}/threads[?before=CURSOR]``: the group page as JSON."""
    services = services_of(request)
    query = read_query(request, ThreadsQuery)
    async with services.db.read() as conn:
        group = await get_group(conn, request.path_params["name"])
        page = await thread_page(conn, group.id, before=query.cursor)
    handle = f"@{group.name}@{services.settings.domain}"
    speaker = Author(id=services.links.group(group.name), handle=handle, name=group.title or None)
    threads = [
        Thread(**post_fields(t.post, speaker), replies_count=t.post.replies, replies=replies_of(t.replies, speaker))
        for t in page.threads
    ]
    return answer(
        ThreadPage(
            group=services.links.group(group.name), threads=threads, next=page.next.encode() if page.next else None
        )
    )


operations = [
    Operation(
        "GET",
        "/api/kith/v1/groups/{name}/threads",
        api_threads,
        "A page of the group's threads with their replies (public)",
        response=ThreadPage,
        answers="threads, newest activity first",
        params=GroupPath,
        query=ThreadsQuery,
    )
]
