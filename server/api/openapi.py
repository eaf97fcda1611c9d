"""The OpenAPI 3.1 description of Kith's own API (``/api/kith/v1``), served at
``GET /api/kith/v1/openapi.json``, and its route table.

Generated, not written: ``OPERATIONS`` lists every operation (``server.api.operation``), the
routes are built from it, and the schemas are pydantic's JSON schemas of the very models the
handlers validate their input with and write their answers through. Tests check that every
``/api/kith`` route is described and that the responses match. The Mastodon-compatible
subset is described by Mastodon's own documentation and ``docs/api.md``, not here.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from pydantic_core import CoreSchema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server import __version__
from server.api import group_moderation, group_reports, groups, threads
from server.api.operation import Operation
from server.api.schemas import Error

PATH = "/api/kith/v1/openapi.json"
REF = "#/components/schemas/{model}"

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
413 for a body over 64 KiB, 422 for a value that is not acceptable. Lists are newest first;
pass the `Link` header's `rel="next"` URL (or `max_id`) for the next page.

See docs/api.md for the Mastodon-compatible subset (`/api/v1/...`)."""

ERRORS = {
    400: "The request is malformed (a body that does not parse, a query value that is not a number), "
    "or the action does not apply to the post or report as it is",
    401: "No token, or an unknown or revoked one",
    403: "The token lacks the scope, or its account may not moderate this group",
    404: "No such group, post, report or action",
    413: "The body is over 64 KiB",
    422: "A value is missing or not acceptable",
}
SCOPES = {
    "read": "see a group's moderation data",
    "write": "moderate a group; file reports",
    "write:reports": "file reports",
}


async def openapi_json(request: Request) -> Response:
    """``GET /api/kith/v1/openapi.json``: public, like the API it describes is discoverable."""
    base = request.app.state.services.links.base
    return JSONResponse(document(base), headers={"Access-Control-Allow-Origin": "*"})


OPERATIONS: list[Operation] = [
    Operation("GET", PATH, openapi_json, "This document", response=dict[str, Any], answers="OpenAPI 3.1"),
    *threads.operations,
    *groups.operations,
    *group_moderation.operations,
    *group_reports.operations,
]
routes = [op.route() for op in OPERATIONS]


class _Schemas(GenerateJsonSchema):
    """Pydantic's JSON schemas without a title on every field (the field's name says it)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _parameters(op: Operation) -> list[dict[str, Any]]:
    """The path and query parameters, one per field of the operation's ``params`` and ``query`` models."""
    out = []
    for where, model in (("path", op.params), ("query", op.query)):
        fields = model.model_json_schema(schema_generator=_Schemas)["properties"] if model else {}
        for name, field in fields.items():
            schema = {k: v for k, v in field.items() if k != "description" and (k != "default" or v is not None)}
            # A parameter is absent rather than null: document the type it has when given.
            schema.update(next((s for s in schema.pop("anyOf", []) if s != {"type": "null"}), {}))
            param = {"name": name, "in": where, "required": where == "path", "schema": schema}
            out.append(param | ({"description": field["description"]} if "description" in field else {}))
    return out


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


LINK = {
    "Link": {"description": 'the next page, `<URL>; rel="next"`, while the page is full', "schema": {"type": "string"}}
}


def _operation(op: Operation, response: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "summary": op.summary,
        "parameters": _parameters(op),
        "responses": {
            "200": _json(response, op.answers) | ({"headers": LINK} if op.paged else {}),
            **{str(code): {"$ref": f"#/components/responses/E{code}"} for code in op.errors},
        },
    }
    description = op.description
    if op.scopes:
        doc["security"] = [{"oauth2": [op.scopes[0]]}]
        if len(op.scopes) > 1:
            description += f" Any of the scopes {', '.join(f'`{s}`' for s in op.scopes)} is enough."
    if description:
        doc["description"] = description.strip()
    if op.body is not None:
        doc["requestBody"] = {
            "required": bool(op.body.model_json_schema().get("required")),
            "content": {"application/json": {"schema": body}, "application/x-www-form-urlencoded": {"schema": body}},
        }
    return doc


@functools.cache
def _paths_and_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """Every operation's description, and the schemas of the bodies and answers they refer to.

    Generated in one pass, so that each model is defined once and referred to by its name; once,
    when first asked for (not at start-up).
    """
    inputs: list[tuple[Any, JsonSchemaMode, CoreSchema]] = [("error", "serialization", Error.__pydantic_core_schema__)]
    for i, op in enumerate(OPERATIONS):
        inputs.append(((i, "response"), "serialization", TypeAdapter(op.response).core_schema))
        if op.body is not None:
            inputs.append(((i, "body"), "validation", op.body.__pydantic_core_schema__))
    generated, schemas = _Schemas(ref_template=REF).generate_definitions(inputs)
    paths: dict[str, Any] = {}
    for i, op in enumerate(OPERATIONS):
        response, body = generated[(i, "response"), "serialization"], generated.get(((i, "body"), "validation"), {})
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, response, body)
    return paths, schemas


def document(base: str) -> dict[str, Any]:
    """The whole description, with this instance's URLs."""
    paths, schemas = _paths_and_schemas()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kith API",
            "version": __version__,
            "description": DESCRIPTION,
            "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        },
        "servers": [{"url": base}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                f"E{code}": _json({"$ref": REF.format(model="Error")}, text) for code, text in ERRORS.items()
            },
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "description": "A bearer token; `kith token create` prints one for scripts.",
                    "flows": {
                        "authorizationCode": {
                            "authorizationUrl": f"{base}/oauth/authorize",
                            "tokenUrl": f"{base}/oauth/token",
                            "scopes": SCOPES,
                        }
                    },
                }
            },
        },
    }
