"""``/healthz`` and ``/readyz``: what load balancers and container orchestrators probe.

``/healthz`` says only that the process answers (a liveness probe must not fail because
the database is slow, or the orchestrator restarts a healthy process). ``/readyz`` says the
process can serve: the database answers within a few seconds and its schema is the one
this code expects; otherwise 503 with the reason, so traffic goes elsewhere.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger("kith.health")

#: A database slower than this to answer one query is not ready to serve.
READY_TIMEOUT = 3.0

_NO_STORE = {"Cache-Control": "no-store"}


async def healthz(request: Request) -> Response:
    """Liveness: the process answers.

    With ``?seen=1`` it also says which host and scheme the request arrived with, after
    any proxy: ``kith check`` compares them with ``KITH_DOMAIN`` and ``KITH_SCHEME``, since
    signatures cover the ``Host`` header and every published id carries the scheme. The
    caller learns only what it sent itself.
    """
    body: dict[str, object] = {"status": "ok"}
    if request.query_params.get("seen") == "1":
        body["seen"] = {"host": request.headers.get("host", ""), "scheme": request.url.scheme}
    return JSONResponse(body, headers=_NO_STORE)


async def readyz(request: Request) -> Response:
    """Readiness: the database answers and its schema is current; 503 with the reason otherwise."""
    db = request.app.state.services.db
    try:
        current, head = await asyncio.wait_for(db.schema_revisions(), READY_TIMEOUT)
    except Exception as exc:  # any failure to reach the database means not ready, never a 500
        log.warning("not ready: the database does not answer: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return JSONResponse({"status": "unready", "reason": "the database does not answer"}, 503, _NO_STORE)
    if current != head:
        reason = f"the database schema is at {current or 'nothing'}, this code needs {head}: run `kith migrate`"
        return JSONResponse({"status": "unready", "reason": reason}, 503, _NO_STORE)
    return JSONResponse({"status": "ready", "schema": head}, headers=_NO_STORE)


routes = [Route("/healthz", healthz, methods=["GET", "HEAD"]), Route("/readyz", readyz, methods=["GET", "HEAD"])]
