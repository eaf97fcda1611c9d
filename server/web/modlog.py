"""A group's public moderation log, like Lemmy's modlog: action, target, reason, time.

Moderator names are left out of the public log (as Lemmy does for visitors); the
moderation API shows them to the group's moderators.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.federation.serialize import iso
from server.groups.membership import get_group
from server.services import Services
from server.tables import mod_log
from server.web.templating import templates

PAGE = 100


async def log_entries(
    conn: AsyncConnection, group_id: int, *, max_id: int | None = None, limit: int = PAGE
) -> list[Any]:
    query = sa.select(mod_log).where(mod_log.c.group_id == group_id).order_by(mod_log.c.id.desc()).limit(limit)
    if max_id is not None:
        query = query.where(mod_log.c.id < max_id)
    return list((await conn.execute(query)).all())


def entry_json(entry: Any, *, with_moderator: bool) -> dict[str, Any]:
    out = {
        "id": entry.id,
        "action": entry.action,
        "target": entry.target,
        "reason": entry.reason,
        "expires_at": iso(entry.expires_at) if entry.expires_at else None,
        "created_at": iso(entry.created_at),
    }
    if with_moderator:
        out["moderator"] = entry.moderator
    return out


async def modlog(request: Request) -> Response:
    services: Services = request.app.state.services
    raw = request.query_params.get("max_id")
    max_id = int(raw) if raw and raw.isdigit() else None
    async with services.db.read() as conn:
        group = await get_group(conn, request.path_params["name"])
        entries = await log_entries(conn, group.id, max_id=max_id)
    if "json" in request.headers.get("accept", ""):
        return JSONResponse([entry_json(e, with_moderator=False) for e in entries])
    context = {"group": group, "entries": entries, "handle": f"@{group.name}@{services.settings.domain}"}
    return templates.TemplateResponse(request, "modlog.html", context)


routes = [Route("/groups/{name}/modlog", modlog)]
