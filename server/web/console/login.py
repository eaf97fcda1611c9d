"""``/login`` (password, then the second factor when the account has one) and ``/logout``.

Every refused password reads the same ("Wrong user name or password"), whether or not the
account exists; after ``throttle.LIMIT`` failures in ``throttle.WINDOW`` for a name or an
address, the answer is 429 with ``Retry-After`` until the window moves on.
"""

from __future__ import annotations

import math
import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from server import signin
from server.web import csrf
from server.web.console.common import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    clear_session_cookie,
    client_address,
    csrf_token,
    error_page,
    render,
    safe_next,
    secure_cookies,
    services_of,
    set_session_cookie,
    viewer,
)

REFUSED = "Wrong user name or password."
WRONG_CODE = "That code is not right."


def _login_binding(request: Request) -> tuple[str, bool]:
    """The pre-sign-in cookie's value, and whether it must be set (a first visit)."""
    existing = request.cookies.get(LOGIN_COOKIE)
    return (existing, False) if existing else (secrets.token_urlsafe(24), True)


def _login_form(
    request: Request, *, error: str = "", username: str = "", status: int = 200, **headers: str
) -> Response:
    binding, fresh = _login_binding(request)
    context = {
        "error": error,
        "username": username,
        "next": safe_next(request.query_params.get("next")),
        "login_csrf": csrf_token(request, binding),
    }
    response = render(request, "console/login.html", context, status=status, headers=headers)
    if fresh:
        response.set_cookie(
            LOGIN_COOKIE,
            binding,
            max_age=3600,
            path="/login",
            httponly=True,
            samesite="lax",
            secure=secure_cookies(request),
        )
    return response


def _throttled(request: Request, retry_after: int, template: str = "console/login.html") -> Response:
    minutes = max(1, math.ceil(retry_after / 60))
    reason = f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    if template == "console/login.html":
        return _login_form(request, error=reason, status=429, **{"Retry-After": str(retry_after)})
    return error_page(request, 429, reason)


async def login_page(request: Request) -> Response:
    """``GET /login``: the form (or the console, when already signed in)."""
    if await viewer(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return _login_form(request)


async def login(request: Request) -> Response:
    """``POST /login``: ``username``, ``password`` and the form's CSRF token."""
    services = services_of(request)
    form = await request.form()
    if not csrf.is_valid(services.instance.secret_key, request.cookies.get(LOGIN_COOKIE), form.get(csrf.FIELD)):
        return _login_form(request, error="The form had expired. Please sign in again.", status=403)
    username, password = form.get("username"), form.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username.strip() or not password:
        return _login_form(request, error=REFUSED, username=str(username or "")[:64], status=401)
    attempt = await signin.sign_in(
        services.db,
        username[:255],
        password[:1000],
        address=client_address(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    if attempt.outcome == "throttled":
        return _throttled(request, attempt.retry_after)
    if attempt.outcome == "refused" or attempt.token is None:
        return _login_form(request, error=REFUSED, username=username[:64], status=401)
    old = request.cookies.get(SESSION_COOKIE)
    if old:  # a browser holds one session: whatever it held before ends here
        await signin.sign_out(services.db, old)
    target = safe_next(form.get("next") if isinstance(form.get("next"), str) else None)  # type: ignore[arg-type]
    if attempt.outcome == "second_factor":
        target = f"/login/code?next={target}"
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, attempt.token)
    return response


async def _pending(request: Request) -> signin.Session | None:
    session = await signin.current(services_of(request).db, request.cookies.get(SESSION_COOKIE))
    return session if session is not None and session.second_factor_pending else None


async def code_page(request: Request) -> Response:
    """``GET /login/code``: the second step, for an account with two-factor sign-in."""
    if await _pending(request) is None:
        return RedirectResponse("/login", status_code=303)
    return _code_form(request)


def _code_form(request: Request, *, error: str = "", status: int = 200) -> Response:
    context = {
        "error": error,
        "next": safe_next(request.query_params.get("next")),
        "code_csrf": csrf_token(request, request.cookies.get(SESSION_COOKIE, "")),
    }
    return render(request, "console/code.html", context, status=status)


async def give_code(request: Request) -> Response:
    """``POST /login/code``: ``code`` (from the authenticator, or a recovery code)."""
    services = services_of(request)
    session = await _pending(request)
    if session is None:
        return RedirectResponse("/login", status_code=303)
    form = await request.form()
    if not csrf.is_valid(services.instance.secret_key, request.cookies.get(SESSION_COOKIE), form.get(csrf.FIELD)):
        return _code_form(request, error="The form had expired. Please try again.", status=403)
    code = form.get("code")
    attempt = await signin.give_second_factor(
        services.db, session, code[:64] if isinstance(code, str) else "", address=client_address(request)
    )
    if attempt.outcome == "throttled":
        return _throttled(request, attempt.retry_after, "console/code.html")
    if attempt.outcome != "signed_in":
        return _code_form(request, error=WRONG_CODE, status=401)
    next_value = form.get("next")
    return RedirectResponse(safe_next(next_value if isinstance(next_value, str) else None), status_code=303)


async def logout(request: Request) -> Response:
    """``POST /logout``: the session ends here and on the server."""
    services = services_of(request)
    token = request.cookies.get(SESSION_COOKIE)
    form = await request.form()
    if token:
        if not csrf.is_valid(services.instance.secret_key, token, form.get(csrf.FIELD)):
            return error_page(request, 403, "the form was stale or not ours (no valid CSRF token); nothing changed")
        await signin.sign_out(services.db, token)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, request)
    return response


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/login/code", code_page, methods=["GET"]),
    Route("/login/code", give_code, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
