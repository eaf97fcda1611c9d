"""Reading paging parameters from a page's query string, with a 400 for anything unusable."""

from __future__ import annotations

from starlette.requests import Request

from server.errors import BadRequest
from server.ids import MAX_ID, id_value


def id_param(request: Request, name: str) -> int | None:
    """The numeric query parameter ``name`` (``max_id``, ``min_id`` ...), None when absent; else 400."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    value = id_value(raw)
    if value is None:
        raise BadRequest(f"{name} must be a number")
    if value > MAX_ID:
        raise BadRequest(f"{name} must be at most {MAX_ID}")
    return value
