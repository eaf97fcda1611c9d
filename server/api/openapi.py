"""The OpenAPI 3.1 description of Kith's own API (``/api/kith/v1``), served at
``GET /api/kith/v1/openapi.json``.

This module is the one source of truth: tests check that every path documented here
is a route of the app and that every ``/api/kith`` route is documented here, and the
group API's tests check each response against the schemas below. The Mastodon-compatible
subset is described by Mastodon's own documentation and ``docs/api.md``, not here.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import __version__
from server.api.groups import MAX_BAN_DAYS, MAX_PAGE, MAX_REASON, MAX_REPORTED, POST_ACTIONS, REPORT_ACTIONS

PATH = "/api/kith/v1/openapi.json"
GROUP = "/api/kith/v1/groups/{name}"

DESCRIPTION = """\
Kith's own API: the public thread listing of a group, and the moderation of a group by
its owner and moderators (or an instance admin).

Authentication: an OAuth 2 bearer token (`Authorization: Bearer ...`) from
`kith token create NAME --scopes "read write"` or from the OAuth flow (`POST /api/v1/apps`,
`/oauth/authorize`, `/oauth/token`). `read` lets a token look, `write` act. The token's
account must be the group's owner or a moderator, or an instance admin; otherwise 403.

Requests take a JSON object (form encoding is accepted too). Every error is a JSON object
`{"error": reason}`: 400 for a malformed request, 401 without a valid token, 403 when the
token or its account may not do this, 404 for an unknown group, post, report or action,
422 for a value that is not acceptable. Lists are newest first; pass the `Link` header's
`rel="next"` URL (or `max_id`) for the next page.

See docs/api.md for the Mastodon-compatible subset (`/api/v1/...`)."""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


TIME = {"type": "string", "format": "date-time"}
TIME_OR_NULL = _nullable("string", format="date-time")
URI = {"type": "string", "format": "uri", "maxLength": 2048}
STRING = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}


def _object(properties: dict[str, Any], *, optional: tuple[str, ...] = (), closed: bool = False) -> dict[str, Any]:
    """An object schema; every property is required unless named in ``optional``."""
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": [k for k in properties if k not in optional],
    }
    if closed:
        out["additionalProperties"] = False
    return out


POST_PROPERTIES: dict[str, Any] = {
    "id": {**URI, "description": "the post's ActivityPub id"},
    "url": URI,
    "type": {"type": "string", "enum": ["Note", "Page", "Article", "Question"]},
    "author": _object({"id": URI, "handle": STRING, "name": _nullable("string")}),
    "title": _nullable("string"),
    "content_warning": _nullable("string"),
    "content_html": {"type": "string", "description": "sanitised HTML; empty unless visible"},
    "sensitive": BOOL,
    "state": {"type": "string", "enum": ["visible", "deleted", "removed"]},
    "removed_reason": _nullable("string"),
    "locked": BOOL,
    "pinned": BOOL,
    "deleted": BOOL,
    "published": TIME,
    "updated": TIME_OR_NULL,
    "likes": INT,
    "dislikes": INT,
    "poll": {"type": ["array", "null"], "items": _object({"title": STRING, "votes": INT})},
    "replies": {"type": "array", "items": _ref("Reply")},
}

REPORT_STATES = ["open", "assigned", "resolved", "rejected"]

SCHEMAS: dict[str, Any] = {
    "Error": _object({"error": STRING}),
    "Reply": _object(POST_PROPERTIES),
    "Thread": _object({**POST_PROPERTIES, "replies_count": INT}),
    "ThreadPage": _object(
        {
            "group": URI,
            "threads": {"type": "array", "items": _ref("Thread")},
            "next": _nullable("string", description="the `before` cursor of the next page"),
        }
    ),
    "ModlogEntry": _object(
        {
            "id": INT,
            "action": {"type": "string", "examples": ["remove", "ban", "lock", "approve_follow"]},
            "target": STRING,
            "reason": STRING,
            "expires_at": TIME_OR_NULL,
            "created_at": TIME,
            "moderator": {"type": "string", "description": "a local account name or a remote actor URI"},
        }
    ),
    "HeldPost": _object(
        {
            "id": INT,
            "uri": URI,
            "url": URI,
            "type": STRING,
            "author": URI,
            "author_handle": STRING,
            "in_reply_to": _nullable("string"),
            "title": _nullable("string"),
            "content_warning": _nullable("string"),
            "content_html": STRING,
            "published": TIME,
            "received_at": TIME,
        }
    ),
    "Guards": _object(
        {
            "hold_first_posts": {**INT, "minimum": 0, "maximum": 100000, "description": "0: off"},
            "keywords": {"type": "array", "items": STRING, "maxItems": 500},
            "link_domains": {"type": "array", "items": STRING, "maxItems": 500},
            "filter_action": {"type": "string", "enum": ["hold", "reject"]},
            "member_posts_per_hour": {**INT, "minimum": 0, "maximum": 100000},
            "instance_posts_per_hour": {**INT, "minimum": 0, "maximum": 100000},
            "max_group_mentions": {**INT, "minimum": 0, "maximum": 100000},
        }
    ),
    "Member": _object(
        {
            "id": INT,
            "actor": URI,
            "handle": STRING,
            "state": {"type": "string", "enum": ["pending", "accepted"]},
            "created_at": TIME,
            "decided_at": TIME_OR_NULL,
        }
    ),
    "ActorRequest": _object({"actor": URI}, closed=False),
    "FollowDecision": _object({"actor": URI, "state": {"type": "string", "enum": ["accepted", "rejected"]}}),
    "PostActionRequest": _object(
        {"uri": URI, "reason": {"type": "string", "maxLength": MAX_REASON}}, optional=("reason",)
    ),
    "PostState": _object(
        {
            "uri": URI,
            "state": {"type": "string", "enum": ["visible", "held", "removed", "deleted", "suspended"]},
            "removed_reason": _nullable("string"),
            "locked": {"type": "boolean", "description": "the thread's lock"},
            "pinned": BOOL,
        }
    ),
    "BanRequest": _object(
        {
            "actor": URI,
            "reason": {"type": "string", "maxLength": MAX_REASON},
            "expires_in_days": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": MAX_BAN_DAYS,
                "description": "absent, null or 0: until lifted",
            },
            "remove_content": {"type": "boolean", "default": False},
        },
        optional=("reason", "expires_in_days", "remove_content"),
    ),
    "UnbanRequest": _object(
        {"actor": URI, "reason": {"type": "string", "maxLength": MAX_REASON}}, optional=("reason",)
    ),
    "Ban": _object(
        {
            "actor": URI,
            "reason": STRING,
            "expires_at": TIME_OR_NULL,
            "active": {"type": "boolean", "description": "false once expired"},
            "created_at": TIME,
        }
    ),
    "BanCreated": {"allOf": [_ref("Ban"), _object({"removed_posts": INT})]},
    "Unbanned": _object({"actor": URI, "banned": {"const": False}}),
    "ModeratorRequest": _object(
        {"who": {"type": "string", "maxLength": 2048, "description": "a local account name or a remote actor URI"}}
    ),
    "Moderator": _object(
        {"who": STRING, "uri": URI, "role": {"type": "string", "enum": ["owner", "moderator", "remote"]}}
    ),
    "Report": _object(
        {
            "id": STRING,
            "state": {"type": "string", "enum": REPORT_STATES},
            "group_id": _nullable("integer"),
            "reporter": {"type": "string", "description": "a remote actor URI, or a local account name"},
            "target_account": _nullable("string"),
            "target_posts": {"type": "array", "items": STRING},
            "comment": STRING,
            "action_taken": {"type": "string", "description": "'', none, remove, ban or forwarded"},
            "forwarded": BOOL,
            "outgoing": {"type": "boolean", "description": "our own report, sent to another server"},
            "assigned_to": _nullable("integer"),
            "created_at": TIME,
            "updated_at": TIME,
        }
    ),
    "ReportForwarded": {
        "allOf": [_ref("Report"), _object({"forwarded_to": {"type": "array", "items": URI}})],
    },
    "ResolveRequest": _object(
        {
            "action": {"enum": ["remove", "ban", None], "description": "also remove the posts, or ban the account"},
            "reason": {"type": "string", "maxLength": MAX_REASON},
        },
        optional=("action", "reason"),
    ),
    "ReportRequest": _object(
        {
            "uris": {"type": "array", "items": URI, "minItems": 1, "maxItems": MAX_REPORTED},
            "comment": {"type": "string", "maxLength": MAX_REASON},
        },
        optional=("comment",),
    ),
}

ERRORS = {
    "400": "The request is malformed (a body that does not parse, a query value that is not a number)",
    "401": "No token, or an unknown or revoked one",
    "403": "The token lacks the scope, or its account may not moderate this group",
    "404": "No such group, post, report or action",
    "422": "A value is missing or not acceptable",
}

PARAMETERS: dict[str, Any] = {
    "name": {"name": "name", "in": "path", "required": True, "schema": STRING, "description": "the group's name"},
    "max_id": {
        "name": "max_id",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0},
        "description": "only entries with a smaller id (the next page)",
    },
    "limit": {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100},
    },
}


def _param(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _list_of(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def _op(
    summary: str,
    ok: dict[str, Any],
    *,
    scope: str | None,
    params: tuple[dict[str, Any], ...] = (),
    body: str | None = None,
    errors: tuple[str, ...] = ("401", "403", "404"),
    paged: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    """One operation. ``scope`` None: public, no token."""
    op: dict[str, Any] = {"summary": summary, "parameters": list(params), "responses": {"200": ok}}
    if description:
        op["description"] = description
    if paged:
        op["parameters"] += [_param("max_id"), _param("limit")]
        ok.setdefault("headers", {})["Link"] = {
            "description": 'the next page, `<URL>; rel="next"`, while the page is full',
            "schema": STRING,
        }
    if scope is not None:
        op["security"] = [{"oauth2": [scope]}]
        errors = tuple(dict.fromkeys(("401", "403", *errors)))
    for code in sorted(errors):
        op["responses"][code] = {"$ref": f"#/components/responses/E{code}"}
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}, "application/x-www-form-urlencoded": {}},
        }
    return op


def _enum_path_param(name: str, values: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "enum": list(values)}}


NAME = _param("name")
POST_ACTION = _enum_path_param("action", POST_ACTIONS)
REPORT_ACTION = _enum_path_param("action", REPORT_ACTIONS)
DECISION = _enum_path_param("decision", ["approve", "reject"])
REPORT_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}
STATE_FILTER = {
    "name": "state",
    "in": "query",
    "schema": {"type": "string", "enum": ["pending", "accepted"]},
    "description": "only follow requests (pending) or only members (accepted)",
}
REPORT_STATE_FILTER = {"name": "state", "in": "query", "schema": {"type": "string", "enum": REPORT_STATES}}

PATHS: dict[str, dict[str, Any]] = {
    PATH: {"get": _op("This document", _json({"type": "object"}, "OpenAPI 3.1"), scope=None, errors=(), params=())},
    GROUP + "/threads": {
        "get": _op(
            "A page of the group's threads with their replies (public)",
            _json(_ref("ThreadPage"), "threads, newest activity first"),
            scope=None,
            params=(
                NAME,
                {"name": "before", "in": "query", "schema": STRING, "description": "the `next` of the previous page"},
            ),
            errors=("400", "404"),
        )
    },
    GROUP + "/modlog": {
        "get": _op(
            "The moderation log, with who acted",
            _json(_list_of("ModlogEntry"), "entries, newest first"),
            scope="read",
            params=(NAME,),
            errors=("400", "404"),
            paged=True,
        )
    },
    GROUP + "/held": {
        "get": _op(
            "Posts waiting for a moderator (held by a guard or a silenced domain)",
            _json(_list_of("HeldPost"), "held posts, newest first"),
            scope="read",
            params=(NAME,),
            errors=("400", "404"),
            paged=True,
        )
    },
    GROUP + "/guards": {
        "get": _op("The automatic guards", _json(_ref("Guards"), "the guards"), scope="read", params=(NAME,)),
        "patch": _op(
            "Change some guards (the others are kept)",
            _json(_ref("Guards"), "the guards after the change"),
            scope="write",
            params=(NAME,),
            body="GuardsPatch",
            errors=("400", "404", "422"),
        ),
    },
    GROUP + "/members": {
        "get": _op(
            "Members and pending follow requests",
            _json(_list_of("Member"), "follows, newest first"),
            scope="read",
            params=(NAME, STATE_FILTER),
            errors=("400", "404"),
            paged=True,
        )
    },
    GROUP + "/follows/{decision}": {
        "post": _op(
            "Approve (Accept) or reject (Reject) a pending follow request",
            _json(_ref("FollowDecision"), "the outcome"),
            scope="write",
            params=(NAME, DECISION),
            body="ActorRequest",
            errors=("400", "404", "422"),
            description="400 when the actor is already a member; 404 when it asked nothing.",
        )
    },
    GROUP + "/posts/{action}": {
        "post": _op(
            "Remove, restore, lock, unlock, pin, unpin, or approve or reject a held post",
            _json(_ref("PostState"), "the post afterwards"),
            scope="write",
            params=(NAME, POST_ACTION),
            body="PostActionRequest",
            errors=("400", "404", "422"),
            description=(
                "Federated as Lemmy does: Delete / Undo(Delete), Lock / Undo(Lock), Add / Remove to `featured`, "
                "all wrapped in the group's Announce. 400 when the post is not in a state the action applies to."
            ),
        )
    },
    GROUP + "/bans": {
        "get": _op("Bans, newest first", _json(_list_of("Ban"), "bans"), scope="read", params=(NAME,)),
        "post": _op(
            "Ban an actor (or change their ban): membership ended, posts optionally removed",
            _json(_ref("BanCreated"), "the ban"),
            scope="write",
            params=(NAME,),
            body="BanRequest",
            errors=("400", "404", "422"),
            description="Federated as Block with the group as target, to the members and the banned actor's server.",
        ),
        "delete": _op(
            "Lift a ban (the actor may also be given as `?actor=`)",
            _json(_ref("Unbanned"), "lifted"),
            scope="write",
            params=(NAME,),
            body="UnbanRequest",
            errors=("400", "404", "422"),
        ),
    },
    GROUP + "/moderators": {
        "get": _op("The group's moderators", _json(_list_of("Moderator"), "owner first"), scope="read", params=(NAME,)),
        "post": _op(
            "Add a moderator (the owner or an admin only)",
            _json(_list_of("Moderator"), "the moderators afterwards"),
            scope="write",
            params=(NAME,),
            body="ModeratorRequest",
            errors=("400", "404", "422"),
        ),
        "delete": _op(
            "Remove a moderator (the owner or an admin only; the owner stays)",
            _json(_list_of("Moderator"), "the moderators afterwards"),
            scope="write",
            params=(NAME,),
            body="ModeratorRequest",
            errors=("400", "404", "422"),
        ),
    },
    GROUP + "/reports": {
        "get": _op(
            "Reports about the group's content",
            _json(_list_of("Report"), "reports, newest first"),
            scope="read",
            params=(NAME, REPORT_STATE_FILTER),
            errors=("400", "404"),
            paged=True,
        )
    },
    GROUP + "/reports/{id}/{action}": {
        "post": _op(
            "Assign to yourself, unassign, resolve, reject, reopen or forward a report",
            _json(
                {"anyOf": [_ref("ReportForwarded"), _ref("Report")]},
                "the report afterwards (with `forwarded_to` after forward)",
            ),
            scope="write",
            params=(NAME, REPORT_ID, REPORT_ACTION),
            body="ResolveRequest",
            errors=("400", "404", "422"),
            description=(
                "Only resolve reads the body: `action` remove takes the reported posts down, ban bans the "
                "reported account. Forward sends the report on as a Flag from the instance actor, never "
                "naming the reporter; 400 when there is nowhere to send it."
            ),
        )
    },
    "/api/kith/v1/reports": {
        "post": _op(
            "Report remote posts (or an account) to their server",
            _json(_ref("Report"), "the report, as sent"),
            scope="write",
            body="ReportRequest",
            errors=("400", "422"),
            description=(
                "Sent as a Flag from the instance actor: the reporter is never named. Admins may report "
                "anything; a group's moderators the posts in their groups (otherwise 403). The scope "
                "`write:reports` is enough."
            ),
        )
    },
}

# The body of PATCH .../guards: any of the guards, nothing else.
SCHEMAS["GuardsPatch"] = {
    **SCHEMAS["Guards"],
    "required": [],
    "minProperties": 1,
    "additionalProperties": False,
}


def document(base: str) -> dict[str, Any]:
    """The whole description, with this instance's URLs."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kith API",
            "version": __version__,
            "description": DESCRIPTION,
            "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        },
        "servers": [{"url": base}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "responses": {f"E{code}": _json(_ref("Error"), text) for code, text in ERRORS.items()},
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "description": "A bearer token; `kith token create` prints one for scripts.",
                    "flows": {
                        "authorizationCode": {
                            "authorizationUrl": f"{base}/oauth/authorize",
                            "tokenUrl": f"{base}/oauth/token",
                            "scopes": {
                                "read": "see a group's moderation data",
                                "write": "moderate a group; file reports",
                                "write:reports": "file reports",
                            },
                        }
                    },
                }
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    """``GET /api/kith/v1/openapi.json``: public, like the API it describes is discoverable."""
    base = request.app.state.services.links.base
    return JSONResponse(document(base), headers={"Access-Control-Allow-Origin": "*"})


routes: list[Route] = [Route(PATH, openapi_json, methods=["GET"])]
