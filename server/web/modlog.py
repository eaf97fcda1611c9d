"""A group's public moderation log, like Lemmy's modlog: action, target, reason, time.

Moderator names are left out of the public log (as Lemmy does for visitors); the
moderation API shows them to the group's moderators.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.groups.membership import get_group
from server.moderation import modlog as modlog_store
from server.services import Services
from server.web.paging import id_param
from server.web.templating import templates


async def modlog(request: Request) -> Response:
    services: Services = request.app.state.services
    max_id = id_param(request, "max_id")
    async with services.db.read() as conn:
        group = await get_group(conn, request.path_params["name"])
        entries = await modlog_store.entries(conn, group.id, max_id=max_id)
    if "json" in request.headers.get("accept", ""):
        return JSONResponse([modlog_store.entry_json(e, with_moderator=False) for e in entries])
    context = {"group": group, "entries": entries, "handle": f"@{group.name}@{services.settings.domain}"}
    return templates.TemplateResponse(request, "modlog.html", context)


routes = [Route("/groups/{name}/modlog", modlog)]
