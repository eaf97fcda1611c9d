"""The API's permission matrix: every route of /api/v1, /api/v2 and /api/kith/v1 × every kind of caller.

Routes are read from the app itself, so a new route cannot escape: one that takes no token
must be listed in ``PUBLIC``, and every other one is classified by its prefix and its
scopes. Callers: no token, an unknown token, a token of the wrong scope, an application's
own token (no account), an ordinary user, bookclub's moderator, chess's moderator, and an
instance admin. Whoever may not call a route gets a 401 or 403, never a 2xx nor a 5xx;
whoever may gets past the door (a 2xx, or a 4xx about the request itself: 400/404/422).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.routing import Route

from server.accounts import create_user
from server.api.auth import scopes_of
from server.groups.membership import GroupSpec, create_group
from server.moderation.authority import add_role
from server.oauth import client_credentials, create_user_token, register_app
from tests.hostile import forgery, make_world, request

PREFIXES = ("/api/v1/", "/api/v2/", "/api/kith/v1/")
# Routes that take no token. A new public route must be added here, on purpose.
PUBLIC = {
    "/api/v1/apps",
    "/api/v1/instance",
    "/api/v1/instance/",
    "/api/v2/instance",
    "/api/v2/instance/",
    "/api/v1/instance/domain_blocks",
    "/api/v1/instance/domain_blocks/",
    "/api/v1/instance/peers",  # public in Mastodon too (404 in allowlist mode)
    "/api/v1/instance/activity",
    "/api/kith/v1/openapi.json",
    "/api/kith/v1/groups/{name}/threads",
}
CALLERS = ("none", "unknown", "wrong scope", "app", "user", "moderator", "other moderator", "admin")
PARAMS = {"name": "bookclub", "id": "1", "decision": "approve", "action": "remove", "uid": "x"}


def api_routes(app: Any) -> list[tuple[str, str, Any]]:
    """(method, path template, endpoint) of every API route, HEAD left out (GET's twin)."""
    found = []
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith(PREFIXES):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                found.append((method, route.path, route.endpoint))
    return found


def allowed(path: str, endpoint: Any, caller: str) -> bool:
    """May ``caller`` get past the door of this route? Fails on a route no rule covers."""
    if path in PUBLIC:
        return True
    scopes = scopes_of(endpoint)
    assert scopes is not None, f"{path} takes no token: list it in PUBLIC if that is meant"
    if caller in ("none", "unknown"):
        return False
    if caller == "wrong scope":  # the admin's account, holding only "profile"
        return scopes == () or "profile" in scopes
    if path.startswith("/api/v1/admin/"):
        return caller == "admin"
    if path.startswith("/api/kith/v1/groups/{name}/"):
        return caller in ("moderator", "admin")
    if path == "/api/kith/v1/reports":  # admins, or moderators of the reported posts' groups
        return caller in ("moderator", "admin")
    if path == "/api/v1/accounts/verify_credentials":
        return caller != "app"
    if path == "/api/v1/apps/verify_credentials":
        return True
    raise AssertionError(f"no rule says who may call {path}: add one")


def refusal(path: str, caller: str) -> int:
    """The status a caller who may not call ``path`` gets."""
    if caller in ("none", "unknown"):
        return 401
    if caller == "app" and path == "/api/v1/accounts/verify_credentials":
        return 422  # Mastodon's answer to a token of no account: "This method requires an authenticated user"
    return 403


@pytest.fixture
async def callers(services, client, worker, mastodon):
    """A bearer header per kind of caller; bookclub has a post of alice's to report."""
    world = await make_world(services, client, worker, mastodon)
    note = await world.post_by(mastodon, "alice", "<p>reportable</p>")
    await world.social.http.aclose()
    chess = await create_group(services.db, GroupSpec(name="chess"))
    for name, admin in (("ada", True), ("uma", False), ("modesty", False), ("chessmod", False)):
        await create_user(services.db, name, admin=admin, password="correct horse battery")
    async with services.db.transaction() as conn:
        ids = dict(
            (
                await conn.execute(sa.text("select l.name, u.id from users u join local_actors l on l.id = u.actor_id"))
            ).all()
        )
        await add_role(conn, world.group_id, ids["modesty"], "moderator")
        await add_role(conn, chess.id, ids["chessmod"], "owner")

    async def token(name: str, scopes: str = "read write") -> dict[str, str]:
        return {"Authorization": f"Bearer {(await create_user_token(services.db, name, scopes)).token}"}

    app, secret = await register_app(
        services.db, name="tool", redirect_uris=["https://tool.example/cb"], scopes="read write admin:read admin:write"
    )
    issued = await client_credentials(
        services.db, client_id=app.client_id, client_secret=secret, scope="read write admin:read admin:write"
    )
    return {
        "none": {},
        "unknown": {"Authorization": "Bearer not-a-token-we-issued"},
        "wrong scope": await token("ada", "profile"),
        "app": {"Authorization": f"Bearer {issued.token}"},
        "user": await token("uma"),
        "moderator": await token("modesty"),
        "other moderator": await token("chessmod"),
        "admin": await token("ada", "read write admin:read admin:write"),
        "_note": note["id"],
    }


def body_for(path: str, note: str) -> dict[str, Any]:
    """A well-formed body where the route needs one to reach its permission check."""
    if path == "/api/kith/v1/reports":
        return {"uris": [note], "comment": "spam"}
    return {}


async def test_every_api_route_answers_every_caller_as_the_matrix_says(app, client, callers):
    routes = api_routes(app)
    assert len(routes) > 40  # the enumeration found the API
    wrong = []
    for method, path, endpoint in routes:
        url = re.sub(r"{(\w+)}", lambda m: PARAMS[m.group(1)], path)
        for caller in CALLERS:
            may = allowed(path, endpoint, caller)
            kwargs: dict[str, Any] = {"headers": callers[caller]}
            if method != "GET":
                kwargs["json"] = body_for(path, callers["_note"])
            r = await request(client, method, url, **kwargs)
            if r.status_code >= 500:
                wrong.append((method, path, caller, r.status_code, r.text[:120]))
            elif not may:
                expected = refusal(path, caller)
                forgery(r.status_code < 300)
                if r.status_code != expected:
                    wrong.append((method, path, caller, r.status_code, f"expected {expected}: {r.text[:120]}"))
            elif r.status_code in (401, 403) or not (r.status_code < 300 or r.status_code in (400, 404, 409, 422)):
                wrong.append((method, path, caller, r.status_code, f"expected to pass: {r.text[:120]}"))
    assert wrong == [], "\n".join(map(str, wrong))


def test_every_api_route_is_classified(app):
    """A route that no rule covers fails here (and in the matrix): say who may call it."""
    for _method, path, endpoint in api_routes(app):
        for caller in CALLERS:
            allowed(path, endpoint, caller)
