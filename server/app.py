"""``create_app(settings)``: the Starlette application, its routes and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from http import HTTPStatus
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import api, health, logs, scrape, wellknown
from server.errors import KithError
from server.federation.httpsig import signature_key_id
from server.federation.objects import refused
from server.inbox import endpoint as inbox_endpoint
from server.negotiation import wants_activity_json
from server.services import Services
from server.settings import Settings
from server.web import actors, console, directory, media, modlog, threads
from server.web.console.headers import ConsoleHeaders
from server.web.templating import templates

log = logging.getLogger("kith.app")


def static_dir() -> Path:
    """``server/static``: in a checkout a link to the top-level ``static/``, in a wheel the files themselves.

    Never the working directory: an installed Kith must serve its CSS wherever it is started.
    """
    return Path(__file__).resolve().parent / "static"


async def kith_error(request: Request, exc: Exception) -> Response:
    """The one mapping from our exceptions to HTTP: status plus a short, safe reason."""
    assert isinstance(exc, KithError)
    if exc.detail != exc.reason:
        log.info("%s %s -> %s: %s", request.method, request.url.path, exc.status, exc.detail)
    # A 503 is passing (the database could not commit): senders retry, and may as well wait a little.
    headers = {"Retry-After": "10"} if exc.status == 503 else None
    return error_response(request, exc.status, exc.reason, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(request, exc.status_code, exc.detail, exc.headers)


def error_response(request: Request, status: int, reason: str, headers: Mapping[str, str] | None = None) -> Response:
    """``{"error": reason}`` for programs; a page saying the same for a person's browser."""
    accept = request.headers.get("accept", "")
    if request.method in ("GET", "HEAD") and "text/html" in accept and not wants_activity_json(request):
        context = {"status": status, "title": f"{status} {HTTPStatus(status).phrase}", "reason": reason}
        return templates.TemplateResponse(request, "error.html", context, status_code=status, headers=headers)
    return JSONResponse({"error": reason}, status_code=status, headers=headers)


class RefuseSuspendedSigners:
    """Signed fetches from a suspended domain get a 403 (secure-mode servers sign every GET).

    Plain ASGI rather than ``BaseHTTPMiddleware``: it sits in front of the inbox too,
    and must cost next to nothing there.
    """

    _HEADERS = (b"signature", b"signature-input", b"authorization")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in self._HEADERS}
            key_id = signature_key_id(headers) if headers else None
            if key_id is not None and refused(key_id, scope["app"].state.services.is_blocked):
                await JSONResponse({"error": "the domain is blocked"}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RefuseNul:
    """A NUL in the path or the query string gets a 400 at the door, whatever the route.

    No handler could use one (PostgreSQL text cannot hold it, no name or id contains it),
    and one that reached a query would fail as a server error instead of the client's.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope["query_string"]):
            await JSONResponse({"error": "the URL contains a NUL character"}, status_code=400)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class RequestId:
    """Gives each request an id: a sane incoming ``X-Request-Id`` (a proxy's), else a new one.

    The id is set for the logs of everything the request does (``server.logs.request_id``)
    and sent back in the answer's ``X-Request-Id``, so a user's report can be matched to
    the log lines of that one request.
    """

    _SANE = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        rid = given.decode("ascii") if self._SANE.match(given) else uuid.uuid4().hex
        token = logs.request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("ascii"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logs.request_id.reset(token)


def freeze_heap() -> None:
    """Take everything built so far out of the garbage collector's sight (``gc.freeze``).

    A full collection walks every tracked object: some 100,000 after start-up, 25-60 ms
    on the bench machine, paid by whichever request happens to trigger it (it showed
    in the inbox's p99). What start-up built lives as long as the process, so it is
    frozen, after one collection so that no garbage is frozen with it; later full
    collections walk only what requests keep.
    """
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings, *, services: Services | None = None, run_worker: bool = True, freeze: bool = False
) -> Starlette:
    """Build the app. Pass ``services`` to share ready-made ones (tests); else the lifespan builds them.

    ``freeze``: call :func:`freeze_heap` once started (server processes; not in tests,
    where frozen objects would pile up across apps).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = services is None
        app.state.services = services or await Services.open(settings)
        if freeze:
            freeze_heap()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(app.state.services.blocklist.watch(stop))]
        if run_worker:
            from server.jobs import build_worker

            worker = build_worker(app.state.services)
            tasks.append(asyncio.create_task(worker.run_forever(stop)))
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            if own:
                await app.state.services.close()

    app = Starlette(
        routes=[
            # First: the router tries routes in order, and the inbox takes the most
            # requests by far. No other route serves POST on these paths, so order is free.
            *inbox_endpoint.routes,
            *wellknown.routes,
            *health.routes,
            *scrape.routes,
            *api.routes,
            *threads.routes,
            *media.routes,
            *modlog.routes,
            *directory.routes,
            *actors.routes,
            *console.routes,
            Mount("/static", StaticFiles(directory=str(static_dir())), name="static"),
        ],
        exception_handlers={KithError: kith_error, HTTPException: http_error},
        lifespan=lifespan,
        middleware=[
            Middleware(RequestId),
            Middleware(RefuseNul),
            Middleware(RefuseSuspendedSigners),
            Middleware(ConsoleHeaders),
        ],
    )
    if services is not None:
        app.state.services = services
    return app


def app_from_env() -> Starlette:
    """The app for ``kith serve`` (a factory, so ``--workers`` can start it in each process)."""
    return create_app(Settings.from_env(), run_worker=os.environ.get("KITH_NO_WORKER") != "1", freeze=True)
