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
from server.errors import KithError, PayloadTooLarge
from server.jsondoc import has_nul
from server.web.templating import templates

# The login page must not be framed (clickjacking) nor leak its URL or a shown code.
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",  # and the Content-Security-Policy every page has (web/templating.py)
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


def application_json(app: oauth.OAuthApp, secret: str | None = None) -> dict[str, Any]:
    """Mastodon's Application entity (the secret only right after registration)."""
    uris = app.redirect_uri_list
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


def _login_form(request: Request, grant: oauth.AuthorizationRequest, **context: Any) -> Response:
    """The login page; its hidden fields carry the checked request to the POST."""
    fields = {
        "client_id": grant.app.client_id,
        "redirect_uri": grant.redirect_uri,
        "scope": " ".join(grant.scopes),
        "state": grant.state,
        "response_type": "code",
        "code_challenge": grant.code_challenge,
        "code_challenge_method": grant.code_challenge_method,
    }
    form = {k: v for k, v in fields.items() if v is not None}
    return _page(request, app=grant.app, scopes=grant.scopes, form=form, **context)


def _send_back(request: Request, redirect_uri: str, state: str | None, exc: oauth.OAuthError) -> Response:
    """An error for the client, at its (registered) redirect URI, or on the page for out-of-band apps."""
    if redirect_uri == oauth.OOB:
        return _page(request, 400, fatal=exc.reason)
    target = _with_query(redirect_uri, error=exc.code, error_description=exc.reason, state=state)
    return RedirectResponse(target, status_code=302, headers=PAGE_HEADERS)


async def authorize(request: Request) -> Response:
    """``GET /oauth/authorize`` shows the login form; ``POST`` checks it and hands out a code."""
    db = services_of(request).db
    try:
        params = await read_params(request)
        value = {k: v for k, v in params.items() if isinstance(v, str)}
        async with db.read() as conn:
            app = await oauth.find_app(conn, value.get("client_id"))
        if app is None:
            raise oauth.OAuthError("invalid_client", "This application is not known here (unknown client_id).")
        redirect_uri = oauth.check_redirect_uri(app, value.get("redirect_uri"))
    except KithError as exc:  # an error page, never a redirect: the URI is not known to be the app's
        return _page(request, exc.status, fatal=exc.reason)
    try:
        grant = oauth.check_authorization_request(app, redirect_uri, value)
        if request.method == "POST" and value.get("decision") == "deny":
            raise oauth.OAuthError("access_denied", "The user denied the request")
    except oauth.OAuthError as exc:
        return _send_back(request, redirect_uri, value.get("state"), exc)
    if request.method == "GET":
        return _login_form(request, grant)
    username = value.get("username") or ""
    user = await oauth.login(db, username, value.get("password") or "")
    if user is None:
        return _login_form(request, grant, username=username, error="Wrong user name or password.")
    code = await oauth.issue_code(db, grant, user_id=user.id)
    if redirect_uri == oauth.OOB:
        return _page(request, app=app, code=code)
    return RedirectResponse(
        _with_query(redirect_uri, code=code, state=grant.state), status_code=302, headers=PAGE_HEADERS
    )


# --------------------------------------------------------------------------- token and revoke


async def _oauth_params(request: Request, *names: str) -> dict[str, str | None]:
    """The named parameters as text; anything malformed is ``invalid_request`` (413 kept for a large body)."""
    try:
        params = await read_params(request)
        return {name: text(params, name) for name in names}
    except KithError as exc:
        status = exc.status if isinstance(exc, PayloadTooLarge) else 400
        raise oauth.OAuthError("invalid_request", exc.reason, status=status) from None


def _client_credentials(request: Request, params: dict[str, str | None]) -> tuple[str | None, str | None]:
    """client_id and client_secret from the body, else HTTP Basic (RFC 6749 2.3.1)."""
    header = request.headers.get("authorization", "")
    if params["client_secret"] is not None or header[:6].lower() != "basic ":
        return params["client_id"], params["client_secret"]
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise oauth.OAuthError("invalid_client", "Client authentication failed", status=401) from None
    client_id, _, client_secret = decoded.partition(":")
    client_id, client_secret = unquote(client_id), unquote(client_secret)
    if has_nul(client_id, client_secret):  # PostgreSQL could not even look it up
        raise oauth.OAuthError("invalid_request", "the client credentials contain a NUL character")
    return client_id, client_secret


async def _issue(request: Request) -> oauth.IssuedToken:
    """The token the request's grant earns, else ``OAuthError``."""
    names = ("grant_type", "client_id", "client_secret", "code", "redirect_uri", "code_verifier", "scope")
    params = await _oauth_params(request, *names)
    client_id, client_secret = _client_credentials(request, params)
    db, grant = services_of(request).db, params["grant_type"]
    if grant == "authorization_code":
        return await oauth.redeem_code(
            db,
            client_id=client_id,
            client_secret=client_secret,
            code=params["code"],
            redirect_uri=params["redirect_uri"],
            code_verifier=params["code_verifier"],
        )
    if grant == "client_credentials":
        return await oauth.client_credentials(
            db, client_id=client_id, client_secret=client_secret, scope=params["scope"]
        )
    if not grant:
        raise oauth.OAuthError("invalid_request", "grant_type is required")
    raise oauth.OAuthError("unsupported_grant_type", f"The grant type {grant!r} is not supported")


async def token(request: Request) -> Response:
    """``POST /oauth/token``: authorization_code (with PKCE when the code has a challenge) or client_credentials."""
    try:
        issued = await _issue(request)
    except oauth.OAuthError as exc:
        return oauth_error(exc, {"WWW-Authenticate": 'Basic realm="Kith"'} if exc.status == 401 else None)
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
        params = await _oauth_params(request, "client_id", "client_secret", "token")
        client_id, client_secret = _client_credentials(request, params)
        db = services_of(request).db
        await oauth.revoke(db, client_id=client_id, client_secret=client_secret, token=params["token"])
    except oauth.OAuthError as exc:
        return oauth_error(exc)
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
        "code_challenge_methods_supported": list(oauth.PKCE_METHODS),
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
