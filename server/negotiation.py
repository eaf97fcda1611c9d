"""Content negotiation between ActivityPub JSON and HTML pages."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.federation.vocab import ACTIVITY_JSON, LD_JSON_AS


def wants_activity_json(request: Request) -> bool:
    """True when the client asked for ActivityStreams JSON rather than a page."""
    accept = request.headers.get("accept", "").lower()
    return "application/activity+json" in accept or "application/ld+json" in accept


def activity_response(request: Request, doc: dict[str, Any], status: int = 200) -> Response:
    """JSON with the content type the client asked for (ld+json gets ld+json back)."""
    accept = request.headers.get("accept", "").lower()
    media = LD_JSON_AS if "application/ld+json" in accept and ACTIVITY_JSON not in accept else ACTIVITY_JSON
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type=media, headers={"Vary": "Accept"})
