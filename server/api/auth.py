"""The API's edge: who is calling (bearer tokens, scopes, admin) and what they sent (params).

``api_endpoint(...)`` wraps a handler ``(request, caller) -> Response``: it reads the
bearer token, answers 401 (with ``WWW-Authenticate: Bearer``) when there is none or
it is unknown or revoked, and 403 when the token lacks every accepted scope or the
endpoint needs an admin. Mastodon lists several accepted scopes per endpoint (a
parent or the specific child), so any one of them is enough.

``read_params`` reads parameters the way Rails does for Mastodon clients: query string
merged with a form or JSON body, with a size cap, and 400 for a body that does not parse.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartParser
from starlette.requests import Request
from starlette.responses import Response

from server.errors import BadRequest, PayloadTooLarge, Unprocessable
from server.jsondoc import JsonRefused, has_nul, parse_json
from server.oauth import AccessToken, lookup_token
from server.services import Services

REALM = 'Bearer realm="Kith"'
MAX_BODY = 64 * 1024  # the largest API request is a domain block with two 1000-character comments

Caller = AccessToken
Handler = Callable[[Request, Caller], Awaitable[Response]]


def services_of(request: Request) -> Services:
    return request.app.state.services


def bearer_token(request: Request) -> str | None:
    """The token from ``Authorization: Bearer ...``, or None when the header is absent.

    Only the header is read: a token in a query string ends up in access logs.
    """
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _unauthorized("The access token is invalid")
    return value.strip()


def _unauthorized(message: str, *, presented: bool = True) -> HTTPException:
    # RFC 6750 3.1: no error code when the request carried no token at all.
    challenge = REALM + (', error="invalid_token"' if presented else "")
    return HTTPException(401, message, headers={"WWW-Authenticate": challenge})


async def authenticate(request: Request) -> Caller:
    """The token presented with this request, else 401."""
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("The access token is invalid", presented=False)
    async with services_of(request).db.read() as conn:
        found = await lookup_token(conn, token)
    if found is None:
        raise _unauthorized("The access token is invalid")
    if found.revoked:
        raise _unauthorized("The access token was revoked")
    return found


def require_scope(caller: Caller, any_of: tuple[str, ...]) -> None:
    """403 unless the token holds one of ``any_of`` (or a parent of one)."""
    if any_of and not any(caller.allows(s) for s in any_of):
        raise HTTPException(
            403,
            "This action is outside the authorized scopes",
            headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{" ".join(any_of)}"'},
        )


def api_endpoint(*scopes: str, user: bool = False, admin: bool = False) -> Callable[[Handler], Any]:
    """Decorate a handler that needs a token with one of ``scopes``.

    ``user``: the token must act for a local account (Mastodon answers 422 otherwise).
    ``admin``: that account must be an instance admin, whatever the scopes say (403).
    """

    def decorate(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            caller = await authenticate(request)
            require_scope(caller, scopes)
            if admin and not (caller.user_id is not None and caller.is_admin):
                raise HTTPException(403, "This action is not allowed")
            if user and caller.user_id is None:
                raise Unprocessable("This method requires an authenticated user")
            return await handler(request, caller)

        endpoint.required_scopes = scopes  # type: ignore[attr-defined]  # for scopes_of
        return endpoint

    return decorate


def scopes_of(endpoint: Callable[..., Any]) -> tuple[str, ...] | None:
    """The scopes an ``api_endpoint`` accepts (any one is enough); None for a public endpoint."""
    return getattr(endpoint, "required_scopes", None)


# --------------------------------------------------------------------------- parameters


async def _read_capped(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise PayloadTooLarge("the request body is too large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLarge("the request body is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _put(params: dict[str, Any], key: str, value: Any) -> None:
    # Rails' ``key[]=a&key[]=b`` makes a list; a plain repeated key keeps the last value.
    if has_nul(key, value if isinstance(value, str) else None):
        raise BadRequest("a parameter contains a NUL character")
    if key.endswith("[]"):
        params.setdefault(key[:-2], [])
        if isinstance(params[key[:-2]], list):
            params[key[:-2]].append(value)
    else:
        params[key] = value


async def read_params(request: Request) -> dict[str, Any]:
    """Query parameters merged with the body (JSON object, urlencoded or multipart form)."""
    params: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        _put(params, key, value)
    if request.method in ("GET", "HEAD"):
        return params
    body = await _read_capped(request)
    if not body.strip():
        return params
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        params.update(_json_object(body))
    elif media == "multipart/form-data":
        params.update(await _multipart(request, body))
    elif media in ("application/x-www-form-urlencoded", ""):
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the form body is not valid") from None
        for key, value in pairs:
            _put(params, key, value)
    else:
        raise BadRequest(f"unsupported content type {media}")
    return params


def _json_object(body: bytes) -> dict[str, Any]:
    """A JSON body: an object, through ``jsondoc`` (depth cap, no NUL), with no unpaired surrogate."""
    try:
        data = parse_json(body)
    except JsonRefused as exc:
        raise BadRequest(f"the JSON body is refused: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("the JSON body must be an object")
    # JSON may escape half of a surrogate pair (``"\\ud800"``): Python keeps it, but it is
    # no character, and neither UTF-8 nor the database can hold it (a 500 on PostgreSQL).
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("the JSON body is refused: it holds an unpaired surrogate (\\ud800-\\udfff)") from None
    return data


async def _multipart(request: Request, body: bytes) -> dict[str, Any]:
    async def replay() -> AsyncIterator[bytes]:
        yield body

    params: dict[str, Any] = {}
    parser = MultiPartParser(request.headers, replay(), max_files=0, max_fields=100, max_part_size=MAX_BODY)
    try:
        form = await parser.parse()
    except Exception:  # whatever a malformed body trips in the parser, it is the client's error
        raise BadRequest("the form body is not valid") from None
    for key, value in form.multi_items():
        if not isinstance(value, UploadFile):
            _put(params, key, value)
    return params


def text(params: dict[str, Any], key: str, *, default: str | None = None) -> str | None:
    """A string parameter; numbers are taken as their text, anything else is 422."""
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Unprocessable(f"{key} must be a string")
    return str(value)


_TRUE = {"1", "true", "t", "on", "yes"}
_FALSE = {"0", "false", "f", "off", "no"}


def flag(params: dict[str, Any], key: str) -> bool | None:
    """A boolean parameter as Rails reads one (``1``/``0``, ``true``/``false``, JSON booleans)."""
    value = params.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise Unprocessable(f"{key} must be true or false")
