"""``/groups/NAME/media/FILE``: a group's avatar and header, at content-addressed URLs.

A picture's URL names its SHA-256, so what it serves never changes: browsers and remote
servers may keep it a year without asking again (``immutable``). A replaced or removed
picture's old URL answers 404, as does a digest never stored. Every process serves them
from the database (``server.groups.media``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.errors import NotFound
from server.groups.media import media_file
from server.services import Services

CACHE_FOREVER = "public, max-age=31536000, immutable"


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weakly compared, as RFC 9110 says for it)."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


async def group_media(request: Request) -> Response:
    """The picture's bytes with its type, ETag and a year's caching; 304 when the client has it."""
    services: Services = request.app.state.services
    async with services.db.read() as conn:
        found = await media_file(conn, request.path_params["name"], request.path_params["file"])
    if found is None:
        raise NotFound("no such picture")
    etag = f'"{found.digest}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_FOREVER, "X-Content-Type-Options": "nosniff"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(found.data, media_type=found.content_type, headers=headers)


routes = [Route("/groups/{name}/media/{file}", group_media, methods=["GET"])]
