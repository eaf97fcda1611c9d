"""Reading paging parameters from a page's query string, with a 400 for anything unusable."""

from __future__ import annotations

from starlette.requests import Request

from server.errors import BadRequest

MAX_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL: a larger one could name no row, and would fail the query


def id_param(request: Request, name: str) -> int | None:
    """The numeric query parameter ``name`` (``max_id``, ``min_id`` ...), None when absent; else 400."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest(f"{name} must be a number")
    if int(raw) > MAX_ID:
        raise BadRequest(f"{name} must be at most {MAX_ID}")
    return int(raw)
