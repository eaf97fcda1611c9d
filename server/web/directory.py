"""The home page (``/``, also ``/about``): the directory of the groups on this instance.

Each discoverable group with its handle, title, purpose, avatar, members and last week's
posts and replies (``groups/directory``, one statement a page), sorted by activity
(``?sort=active``, the default) or newest first (``?sort=new``), 50 a page (``?page=N``).
A bad ``sort`` or ``page`` is a 400.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.errors import BadRequest
from server.groups.directory import MAX_PAGE, SORTS, Listing, count_listed, listings
from server.groups.media import media_file_name
from server.groups.routine import next_up
from server.services import Services
from server.types import utcnow
from server.web.templating import templates

SUMMARY_CHARS = 280


@dataclass(frozen=True, slots=True)
class Card:
    """One group on the directory page."""

    listing: Listing
    purpose: str  # the summary's first paragraph, cut to SUMMARY_CHARS
    icon: str | None  # the group's avatar (served by this instance, so the page's CSP admits it)
    next_up: str | None  # what comes next in the group (its next recurring thread), when known


async def next_up_of(conn: AsyncConnection, group_ids: Sequence[int]) -> dict[int, str]:
    """What comes next in each group, for its card: its next recurring thread (one query for the page's groups),
    e.g. "Thursday 7 January, 19:00 CET: Book of the month"; a group with no schedule goes without."""
    return await next_up(conn, group_ids)


def purpose(summary: str) -> str:
    """The first paragraph of a group's summary, at most ``SUMMARY_CHARS`` characters."""
    first = summary.strip().split("\n\n")[0].strip()
    return first if len(first) <= SUMMARY_CHARS else first[: SUMMARY_CHARS - 1].rstrip() + "…"


def _avatar(services: Services, listing: Listing) -> str | None:
    """The URL of a listed group's avatar, when it has one."""
    if listing.icon_type is None or listing.icon_digest is None:
        return None
    return services.links.group_media(listing.name, media_file_name("icon", listing.icon_type, listing.icon_digest))


def _page_param(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    # The length first: int() of thousands of digits is refused (a ValueError, a 500) or slow.
    if not (len(raw) <= 4 and raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:
        raise BadRequest(f"page must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def _sort_param(request: Request) -> str:
    sort = request.query_params.get("sort", SORTS[0])
    if sort not in SORTS:
        raise BadRequest(f"sort must be one of {', '.join(SORTS)}")
    return sort


async def home(request: Request) -> Response:
    """The directory of this instance's discoverable groups."""
    services: Services = request.app.state.services
    sort, page = _sort_param(request), _page_param(request)
    async with services.db.read() as conn:
        shown, more = await listings(conn, sort=sort, page=page, now=utcnow())
        total = await count_listed(conn)
        coming = await next_up_of(conn, [g.id for g in shown])
    cards = [Card(g, purpose(g.summary), _avatar(services, g), coming.get(g.id)) for g in shown]

    def link(**query: object) -> str:
        return "/?" + urlencode({"sort": sort, "page": page} | query)

    context = {
        "cards": cards,
        "domain": services.settings.domain,
        "sort": sort,
        "page": page,
        "total": total,
        "previous_url": link(page=page - 1) if page > 1 else None,
        "next_url": link(page=page + 1) if more else None,
    }
    return templates.TemplateResponse(request, "home.html", context)


routes = [Route("/", home), Route("/about", home)]
