"""``/console/admin``: the instance admins' console. The gate, the overview, the audit log, the routes.

Admins only: anyone else signed in gets a 403 page (a real page, no redirect). Every action
calls the same domain function as ``kith domain``, ``kith account``, ``kith user``,
``kith group`` and the Mastodon admin API; the pages here only read forms and show results.
Each POST answers with a redirect (303) to the page it came from, with a notice code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from server.accounts import count_users
from server.errors import BadRequest
from server.groups.membership import list_groups
from server.ids import MAX_ID, id_value
from server.links import Links
from server.moderation.blocklist import store
from server.moderation.reports import ReportFilter, filtered
from server.web.console.common import Console, Handler, console_page, error_page, render
from server.web.paging import id_param

PAGE = 50

NOTICES = {
    "blocked": "Blocked {x}.",
    "saved": "Saved the block of {x}.",
    "lifted": "Lifted the block of {x}.",
    "allowed": "Allowed {x}.",
    "disallowed": "Removed {x} from the allowlist.",
    "mode": "Federation mode is now {x}.",
    "discarded": "Discarded the import.",
    "stale": "The blocks changed since this preview was shown, so nothing was applied: this is the new preview.",
    "suspended": "Suspended {x}.",
    "unsuspended": "Lifted the suspension of {x}.",
    "resolved": "Resolved report {x}.",
    "rejected": "Rejected report {x}.",
    "reopened": "Reopened report {x}.",
    "created_user": "Created the account {x}.",
    "made_admin": "{x} is now an admin.",
    "revoked_admin": "{x} is no longer an admin.",
    "disabled": "Disabled {x}; their sessions ended.",
    "enabled": "Enabled {x}.",
    "signed_out": "Signed {x} out everywhere.",
    "created_group": "Created the group {x}.",
    "transferred": "{x} has a new owner.",
}


def notice_of(request: Request) -> str:
    """The notice a redirect after a POST asked for (a fixed sentence; only ``x`` comes from the URL)."""
    template = NOTICES.get(request.query_params.get("notice", ""))
    return template.format(x=request.query_params.get("x", "")[:300]) if template else ""


def done(path: str, notice: str, subject: str = "") -> Response:
    """After a POST: back to ``path`` with a notice (post, redirect, get)."""
    query = f"?{urlencode({'notice': notice, 'x': subject})}" if notice else ""
    return RedirectResponse(path + query, status_code=303)


def admin_page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A console page for instance admins only; anyone else signed in gets a 403 page."""

    @wraps(handler)
    async def gated(request: Request, console: Console) -> Response:
        if not console.session.is_admin:
            return error_page(request, 403, "the admin console is for this server's admins only", console.session)
        return await handler(request, console)

    return console_page(gated)


def int_param(request: Request, name: str) -> int | None:
    """A page cursor from the query (``web.paging.id_param``): None when absent, junk or too big a 400."""
    return id_param(request, name)


def path_id(request: Request) -> int:
    """The ``{id}`` of the path: ASCII digits within the ids' 32 bits, else 400."""
    value = id_value(str(request.path_params.get("id", "")))
    if value is None or value > MAX_ID:
        raise BadRequest("not an id")
    return value


def admin_render(request: Request, console: Console, template: str, section: str, **context: object) -> Response:
    """An admin page, with its section marked in the admin navigation and any notice."""
    full = {"section": section, "notice": notice_of(request), **context}
    return render(request, template, full, session=console.session)


@admin_page
async def overview(request: Request, console: Console) -> Response:
    """What needs an admin: open instance reports, the federation mode, counts, the latest audit entries."""
    links: Links = console.services.links
    async with console.services.db.read() as conn:
        reports = await filtered(
            conn,
            ReportFilter(states=("open", "assigned"), leader_id=None, instance_only=True),
            links,
            max_id=None,
            since_id=None,
            min_id=None,
            limit=PAGE,
        )
        context = {
            "mode": await store.federation_mode(conn),
            "blocks": await store.count(conn, store.BLOCKS),
            "allows": await store.count(conn, store.ALLOWS),
            "users": await count_users(conn),
            "groups": len(await list_groups(conn)),
            "open_reports": len(reports),
            "recent": await store.audit_page(conn, limit=8),
        }
    return admin_render(request, console, "console/admin.html", "overview", **context)


@admin_page
async def audit_log(request: Request, console: Console) -> Response:
    """Every admin change, newest first, paged."""
    max_id = int_param(request, "max_id")
    async with console.services.db.read() as conn:
        entries = await store.audit_page(conn, max_id=max_id, limit=PAGE + 1)
    more = len(entries) > PAGE
    entries = entries[:PAGE]
    next_max = entries[-1].id if more and entries else None
    return admin_render(request, console, "console/admin_log.html", "log", entries=entries, next_max=next_max)


def build_routes() -> list[Route]:
    """Every admin page (imported here so that ``console/__init__`` adds them with one line)."""
    from server.web.console import admin_domains, admin_health, admin_import, admin_people

    return [
        Route("/console/admin", overview, methods=["GET"]),
        Route("/console/admin/log", audit_log, methods=["GET"]),
        *admin_domains.routes,
        *admin_health.routes,
        *admin_import.routes,
        *admin_people.routes,
    ]
