"""OAuth 2 endpoints as Mastodon serves them: app registration, the login page, tokens, revocation.

Errors from ``/oauth/token`` and ``/oauth/revoke`` are RFC 6749 JSON
(``{"error": "invalid_grant", "error_description": ...}``). The authorize page never
redirects to a URI the application did not register: a bad client or redirect URI
gets an error page instead, anything else goes back to the client as ``?error=``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from server import oauth
from server.api.auth import read_params, services_of, text
from server.errors import KithError
from server.web.templating import templates

# The login page must not be framed (clickjacking) nor leak its URL or a shown code.
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
TOKEN_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(exc: oauth.OAuthError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": exc.code, "error_description": exc.reason},
        status_code=exc.status,
        headers={**TOKEN_HEADERS, **(headers or {})},
    )


def application_json(app: Any, secret: str | None = None) -> dict[str, Any]:
    """Mastodon's Application entity (the secret only right after registration)."""
    uris = oauth.app_redirect_uris(app)
    doc: dict[str, Any] = {
        "id": str(app.id),
        "name": app.name,
        "website": app.website,
        "scopes": app.scopes.split(),
        "redirect_uri": "\n".join(uris),
        "redirect_uris": uris,
        "vapid_key": "",
    }
    if secret is not None:
        doc.update(client_id=app.client_id, client_secret=secret, client_secret_expires_at=0)
    return doc


async def register(request: Request) -> Response:
    """``POST /api/v1/apps``: form or JSON with client_name, redirect_uris, scopes, website."""
    params = await read_params(request)
    raw_uris = params.get("redirect_uris")
    if isinstance(raw_uris, list):
        uris = [u for u in raw_uris if isinstance(u, str)]
    else:
        uris = (text(params, "redirect_uris") or "").split()
    row, secret = await oauth.register_app(
        services_of(request).db,
        name=text(params, "client_name") or "",
        redirect_uris=uris,
        scopes=text(params, "scopes"),
        website=text(params, "website"),
    )
    return JSONResponse(application_json(row, secret))


# --------------------------------------------------------------------------- authorize


def _with_query(uri: str, **values: str | None) -> str:
    query = urlencode({k: v for k, v in values.items() if v is not None})
    return uri + ("&" if "?" in uri else "?") + query


def _page(request: Request, status: int = 200, **context: Any) -> Response:
    return templates.TemplateResponse(request, "login.html", context, status_code=status, headers=PAGE_HEADERS)


async def authorize(request: Request) -> Response:
    """``GET /oauth/authorize`` shows the login form; ``POST`` checks it and hands out a code."""
    services = services_of(request)
    try:
        params = await read_params(request)
    except KithError as exc:
        return _page(request, exc.status, fatal=exc.reason)
    value = {k: v if isinstance(v, str) else None for k, v in params.items()}
    state = value.get("state")
    async with services.db.read() as conn:
        app = await oauth.find_app(conn, value.get("client_id"))
    if app is None:
        return _page(request, 400, fatal="This application is not known here (unknown client_id).")
    try:
        redirect_uri = oauth.check_authorization_request(app, value.get("redirect_uri"))
    except oauth.OAuthError as exc:
        return _page(request, 400, fatal=exc.reason)

    def back_with_error(code: str, description: str) -> Response:
        if redirect_uri == oauth.OOB:
            return _page(request, 400, fatal=description)
        target = _with_query(redirect_uri, error=code, error_description=description, state=state)
        return RedirectResponse(target, status_code=302, headers=PAGE_HEADERS)

    if value.get("response_type") != "code":
        return back_with_error("unsupported_response_type", "Only response_type=code is supported")
    try:
        scopes = oauth.check_requested_scopes(app, value.get("scope"))
    except oauth.OAuthError as exc:
        return back_with_error(exc.code, exc.reason)

    form = {
        "client_id": app.client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state or "",
        "response_type": "code",
    }
    context = {"app": app, "scopes": scopes, "form": form}
    if request.method == "GET":
        return _page(request, **context)
    if value.get("decision") == "deny":
        return back_with_error("access_denied", "The user denied the request")
    username = value.get("username") or ""
    user = await oauth.login(services.db, username, value.get("password") or "")
    if user is None:
        return _page(request, **context, username=username, error="Wrong user name or password.")
    code = await oauth.issue_code(services.db, app_id=app.id, user_id=user.id, scopes=scopes, redirect_uri=redirect_uri)
    if redirect_uri == oauth.OOB:
        return _page(request, app=app, code=code)
    return RedirectResponse(_with_query(redirect_uri, code=code, state=state), status_code=302, headers=PAGE_HEADERS)


# --------------------------------------------------------------------------- token and revoke


def _client_credentials(request: Request, params: dict[str, Any]) -> tuple[str | None, str | None]:
    """client_id and client_secret from the body, else HTTP Basic (RFC 6749 2.3.1)."""
    client_id, client_secret = text(params, "client_id"), text(params, "client_secret")
    header = request.headers.get("authorization", "")
    if client_secret is None and header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise oauth.OAuthError("invalid_client", "Client authentication failed", status=401) from None
        basic_id, _, basic_secret = decoded.partition(":")
        return unquote(basic_id), unquote(basic_secret)
    return client_id, client_secret


async def _oauth_params(request: Request) -> dict[str, Any]:
    try:
        return await read_params(request)
    except KithError as exc:
        raise oauth.OAuthError("invalid_request", exc.reason) from None


async def token(request: Request) -> Response:
    """``POST /oauth/token``: authorization_code or client_credentials."""
    db = services_of(request).db
    try:
        params = await _oauth_params(request)
        client_id, client_secret = _client_credentials(request, params)
        grant = text(params, "grant_type")
        if grant == "authorization_code":
            issued = await oauth.redeem_code(
                db,
                client_id=client_id,
                client_secret=client_secret,
                code=text(params, "code"),
                redirect_uri=text(params, "redirect_uri"),
            )
        elif grant == "client_credentials":
            issued = await oauth.client_credentials(
                db, client_id=client_id, client_secret=client_secret, scope=text(params, "scope")
            )
        elif not grant:
            raise oauth.OAuthError("invalid_request", "grant_type is required")
        else:
            raise oauth.OAuthError("unsupported_grant_type", f"The grant type {grant!r} is not supported")
    except oauth.OAuthError as exc:
        return oauth_error(exc, {"WWW-Authenticate": 'Basic realm="Kith"'} if exc.status == 401 else None)
    except KithError as exc:  # a malformed parameter
        return oauth_error(oauth.OAuthError("invalid_request", exc.reason))
    body = {
        "access_token": issued.token,
        "token_type": "Bearer",
        "scope": " ".join(issued.scopes),
        "created_at": issued.created_at,
    }
    return JSONResponse(body, headers=TOKEN_HEADERS)


async def revoke(request: Request) -> Response:
    """``POST /oauth/revoke``: client_id, client_secret and token; 200 ``{}`` (also for unknown tokens)."""
    try:
        params = await _oauth_params(request)
        client_id, client_secret = _client_credentials(request, params)
        await oauth.revoke(
            services_of(request).db, client_id=client_id, client_secret=client_secret, token=text(params, "token")
        )
    except oauth.OAuthError as exc:
        return oauth_error(exc)
    except KithError as exc:
        return oauth_error(oauth.OAuthError("invalid_request", exc.reason))
    return JSONResponse({})


async def server_metadata(request: Request) -> Response:
    """RFC 8414 metadata, as Mastodon 4.3 publishes it (Mastodon.py reads the endpoints from here)."""
    base = services_of(request).links.base
    doc = {
        "issuer": base + "/",
        "authorization_endpoint": base + "/oauth/authorize",
        "token_endpoint": base + "/oauth/token",
        "revocation_endpoint": base + "/oauth/revoke",
        "app_registration_endpoint": base + "/api/v1/apps",
        "scopes_supported": sorted(oauth.SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "service_documentation": "https://docs.joinmastodon.org/",
    }
    return JSONResponse(doc, headers={"Access-Control-Allow-Origin": "*"})


routes = [
    Route("/api/v1/apps", register, methods=["POST"]),
    Route("/oauth/authorize", authorize, methods=["GET", "POST"]),
    Route("/oauth/token", token, methods=["POST"]),
    Route("/oauth/revoke", revoke, methods=["POST"]),
    Route("/.well-known/oauth-authorization-server", server_metadata),
]
