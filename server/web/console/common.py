"""What every console page shares: who is signed in, CSRF on every POST, rendering, errors as pages.

``console_page`` wraps a handler: without a session a GET goes to ``/login`` (and comes back
after), a POST gets 403; a POST without the visitor's CSRF token gets 403 and reaches no
handler, so nothing changes; a ``KithError`` becomes a page with its status and reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from functools import wraps
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Message

from server.errors import BadRequest, KithError, PayloadTooLarge
from server.inbox.endpoint import read_capped
from server.services import Services
from server.sessions import LIFETIME, Session
from server.signin import current
from server.web import csrf
from server.web.templating import templates

SESSION_COOKIE = "kith_session"
LOGIN_COOKIE = "kith_login"  # binds the sign-in form's CSRF token before there is a session
MAX_FORM_FIELD = 10_000
# The largest console form is a group's picture (at most 8 MiB: server.images.MAX_BYTES) with its
# few fields; a bigger body is refused (413) before it is parsed or spooled to disk.
MAX_FORM_BODY = 9 * 1024 * 1024


def services_of(request: Request) -> Services:
    return request.app.state.services


def client_address(request: Request) -> str:
    """The client's address (uvicorn has already applied a trusted proxy's X-Forwarded-For)."""
    return request.client.host if request.client else ""


def secure_cookies(request: Request) -> bool:
    return services_of(request).settings.scheme == "https"


async def viewer(request: Request) -> Session | None:
    """The signed-in session of this request (second factor given), read once per request."""
    if "kith_viewer" not in request.scope:
        found = await current(services_of(request).db, request.cookies.get(SESSION_COOKIE))
        request.scope["kith_viewer"] = found
    found = request.scope["kith_viewer"]
    return found if found is not None and not found.second_factor_pending else None


def csrf_token(request: Request, binding: str) -> str:
    return csrf.token_for(services_of(request).instance.secret_key, binding)


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure_cookies(request))


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path of ours only (no open redirect)."""
    if not value or not value.startswith("/console") or "//" in value or "\\" in value:
        return "/console"
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else "/console"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    session: Session | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A console page; signed-in pages get the session and its CSRF token."""
    full = {"session": session, **context}
    if session is not None:
        full["csrf"] = csrf_token(request, request.cookies.get(SESSION_COOKIE, ""))
    return templates.TemplateResponse(request, template, full, status_code=status, headers=dict(headers or {}))


def error_page(request: Request, status: int, reason: str, session: Session | None = None) -> Response:
    context = {"status": status, "title": f"{status} {HTTPStatus(status).phrase}", "reason": reason}
    return render(request, "console/error.html", context, status=status, session=session)


@dataclasses.dataclass(frozen=True)
class Console:
    """A signed-in request: the services, the session, and the submitted form (POST)."""

    services: Services
    session: Session
    form: FormData | None

    @property
    def user(self) -> str:
        return self.session.username

    def field(self, name: str, default: str = "") -> str:
        """A submitted text field, stripped; over-long input is cut (the domain checks the rest)."""
        value = self.form.get(name) if self.form is not None else None
        return value.strip()[:MAX_FORM_FIELD] if isinstance(value, str) else default

    def file(self, name: str) -> UploadFile | None:
        """A submitted file (multipart), or None when the field is missing or no file was chosen."""
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, UploadFile) and value.filename else None


async def read_form(request: Request, cap: int = MAX_FORM_BODY) -> FormData:
    """The submitted form (urlencoded or multipart), its body first read whole under ``cap``:
    ``PayloadTooLarge`` beyond it (Starlette caps multipart text fields, not files), ``BadRequest``
    for a body it cannot parse."""
    try:
        body = await read_capped(request, cap)
    except PayloadTooLarge:
        raise PayloadTooLarge(f"the form is larger than {cap // (1024 * 1024)} MiB; nothing changed") from None
    sent = False

    async def replay() -> Message:  # the body once, as the server delivered it
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(request.scope, replay).form()
    except HTTPException as exc:  # Starlette's answer to a malformed multipart body
        raise BadRequest(f"the form could not be read: {exc.detail}") from None


Handler = Callable[[Request, Console], Awaitable[Response]]


def console_page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A console page for signed-in people; POSTs need the session's CSRF token."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        session = await viewer(request)
        if session is None:
            if request.method == "GET":
                pending = request.scope.get("kith_viewer") is not None  # the password given, the code not yet
                step = "/login/code" if pending else "/login"
                return RedirectResponse(f"{step}?next={quote(request.url.path)}", status_code=303)
            return error_page(request, 403, "sign in first")
        form = None
        if request.method == "POST":
            try:
                form = await read_form(request)
            except KithError as exc:
                return error_page(request, exc.status, exc.reason, session)
            binding = request.cookies.get(SESSION_COOKIE)
            if not csrf.is_valid(services_of(request).instance.secret_key, binding, form.get(csrf.FIELD)):
                await form.close()
                return error_page(
                    request, 403, "the form was stale or not ours (no valid CSRF token); nothing changed", session
                )
        try:
            return await handler(request, Console(services_of(request), session, form))
        except KithError as exc:
            return error_page(request, exc.status, exc.reason, session)
        finally:
            if form is not None:
                await form.close()  # an uploaded file's spooled copy goes now, not when collected

    return endpoint
