"""The OpenAPI description: valid, served, and in step with the routes both ways.

``check_response`` is also used by the group API's tests, so that every response they
see is checked against the schema documented for it.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from server.api import openapi

try:  # a test extra; without it, responses are still checked for a documented status
    from openapi_schema_validator import OAS31Validator
except ImportError:  # pragma: no cover
    OAS31Validator = None

SPEC = openapi.document("https://kith.test")
METHODS = ("get", "post", "put", "patch", "delete")


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{[^}]+\}", template)
    return re.compile("^" + "[^/]+".join(re.escape(p) for p in parts) + "$")


TEMPLATES = [(t, _pattern(t)) for t in SPEC["paths"]]


def template_of(path: str) -> str | None:
    """The documented path template a concrete path falls under."""
    for template, pattern in TEMPLATES:
        if pattern.match(path):
            return template
    return None


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = SPEC["components"][section][name]
    return node


def check_response(method: str, response: httpx.Response) -> None:
    """The status is documented for this operation and the body matches its schema."""
    path = response.request.url.path
    template = template_of(path)
    assert template is not None, f"{path} is not documented"
    operation = SPEC["paths"][template].get(method.lower())
    assert operation is not None, f"{method} {template} is not documented"
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {template} answered {response.status_code}, undocumented: {response.text}"
    schema = _resolve(documented)["content"]["application/json"]["schema"]
    if OAS31Validator is not None:
        OAS31Validator({**schema, "components": SPEC["components"]}).validate(response.json())


def kith_routes(app) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/kith/"):
            for method in route.methods or ():
                if method != "HEAD":  # Starlette adds HEAD to every GET
                    found.add((route.path, method.lower()))
    return found


def test_the_document_is_valid_openapi_3_1():
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(SPEC)
    assert SPEC["openapi"] == "3.1.0"


def test_every_documented_operation_is_a_route_and_every_route_is_documented(app):
    routes = kith_routes(app)
    documented = {(path, method) for path, item in SPEC["paths"].items() for method in item if method in METHODS}
    assert documented - routes == set(), "documented but not served"
    assert routes - documented == set(), "served but not documented"
    # The public thread listing lives with the web pages; it is documented too.
    assert ("/api/kith/v1/groups/{name}/threads", "get") in documented


def test_every_operation_names_its_errors_and_scopes():
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            assert operation["summary"], (path, method)
            assert "200" in operation["responses"], (path, method)
            if "security" in operation:
                (requirement,) = operation["security"]
                assert requirement["oauth2"][0] in ("read", "write"), (path, method)
                assert {"401", "403"} <= set(operation["responses"]), (path, method)
            for param in operation["parameters"]:
                param = _resolve(param) if "$ref" in param else param
                if param["in"] == "path":
                    assert "{" + param["name"] + "}" in path, (path, param["name"])


async def test_served(client):
    r = await client.get(openapi.PATH)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["servers"] == [{"url": "https://kith.test"}]
    flows = doc["components"]["securitySchemes"]["oauth2"]["flows"]["authorizationCode"]
    assert flows["tokenUrl"] == "https://kith.test/oauth/token"
    assert doc["paths"].keys() == SPEC["paths"].keys()
    check_response("GET", r)


async def test_threads_listing_matches_its_schema(client, services, worker, mastodon):
    from server.groups.membership import GroupSpec, create_group

    await create_group(services.db, GroupSpec(name="bookclub"))
    group = "https://kith.test/groups/bookclub"
    await mastodon.post(client, "alice", f"{group}/inbox", mastodon.follow("alice", group))
    note = mastodon.note("alice", "<p>first</p>", to_group=group)
    await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    reply = mastodon.note("alice", "<p>reply</p>", to_group=group, in_reply_to=note["id"])
    await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", reply))
    await worker.drain()
    r = await client.get("/api/kith/v1/groups/bookclub/threads")
    assert r.status_code == 200 and r.json()["threads"][0]["replies"][0]["id"] == reply["id"]
    check_response("GET", r)
    for path in ("/api/kith/v1/groups/nosuch/threads", "/api/kith/v1/groups/bookclub/threads?before=x"):
        r = await client.get(path)
        assert r.status_code in (400, 404)
        check_response("GET", r)


def test_described_from_the_handlers_own_models():
    """Scopes come from the handlers, the guards' patch names the guards the rulebook knows, and
    every body and answer is a generated component, referred to by name."""
    from server.api.requests import GuardsPatch
    from server.api.schemas import Guards
    from server.moderation.rulebook import GUARD_FIELDS

    assert set(GuardsPatch.model_fields) == set(Guards.model_fields) == set(GUARD_FIELDS)
    report = SPEC["paths"]["/api/kith/v1/reports"]["post"]
    assert report["security"] == [{"oauth2": ["write"]}] and "`write:reports`" in report["description"]
    assert "security" not in SPEC["paths"]["/api/kith/v1/groups/{name}/threads"]["get"]
    patch = SPEC["paths"]["/api/kith/v1/groups/{name}/guards"]["patch"]
    assert patch["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/GuardsPatch"}
    assert SPEC["components"]["schemas"]["GuardsPatch"]["additionalProperties"] is False
    assert {"400", "413", "422"} <= set(patch["responses"])
    for name, schema in SPEC["components"]["schemas"].items():
        assert schema["type"] == "object" and schema["properties"], name
