"""One operation of Kith's own API, described once: its route, its input and its answer.

An ``Operation`` names the path, method and handler (so the route is built from it), the
models the handler reads its input through and answers with, and a summary; the OpenAPI
description (``server.api.openapi``) is generated from the list of them. The scopes are
the handler's own (``api_endpoint`` records them) and the error statuses follow from what
the operation reads, so neither is written twice.

``read_path``, ``read_query`` and ``read_body`` validate a request through a model, and turn
pydantic's ``ValidationError`` into Kith's ``{"error": reason}``: 404 for a path that names
nothing, 400 for a malformed query, 422 for a body value that is not acceptable (a body that
does not parse is 400 already, in ``read_params``). ``answer`` writes a response model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.api.auth import read_params, scopes_of
from server.api.requests import PageQuery
from server.errors import BadRequest, KithError, NotFound, Unprocessable

M = TypeVar("M", bound=BaseModel)

# Pydantic's messages for the errors a caller can make, as a clause after the field's name.
REASONS = {
    "missing": "is required",
    "extra_forbidden": "is not accepted here",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "string_too_long": "is longer than {max_length} characters",
    "list_type": "must be a list",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} items",
    "int_type": "must be a whole number",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "literal_error": "must be {expected}",
    "enum": "must be {expected}",
}
# The errors the request models (server.api.requests) raise themselves: the message is a clause.
KITH_ERRORS = frozenset({"number", "http_uri", "cursor", "empty"})


def reason_of(error: ValidationError) -> str:
    """The first problem, as a short sentence that names the field (``actor must be an http(s) URI``)."""
    first = error.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"])
    template = REASONS.get(first["type"])
    if template is not None:
        clause = template.format(**first.get("ctx", {}))
    elif first["type"] in KITH_ERRORS:  # raised by the models themselves, already a clause
        clause = first["msg"]
    else:
        return f"{field}: {first['msg']}" if field else first["msg"]
    return f"{field} {clause}" if field else clause


def _validated(model: type[M], values: dict[str, Any], refusal: type[KithError]) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise refusal(reason_of(exc)) from None


def read_path(request: Request, model: type[M]) -> M:
    """The path's parameters; 404 when one names nothing (an unknown action, a report id that is not a number)."""
    return _validated(model, dict(request.path_params), NotFound)


def read_query(request: Request, model: type[M]) -> M:
    """The query's parameters (the last of a repeated one); 400 when one is malformed."""
    return _validated(model, dict(request.query_params), BadRequest)


def body_from(params: dict[str, Any], model: type[M]) -> M:
    """Parameters already read by ``read_params``; 422 for a value that is not acceptable."""
    return _validated(model, params, Unprocessable)


async def read_body(request: Request, model: type[M]) -> M:
    """The parameters of ``read_params`` (query and JSON or form body); 422 for a value that is not acceptable."""
    return body_from(await read_params(request), model)


def answer(value: BaseModel | Sequence[BaseModel], *, headers: dict[str, str] | None = None) -> JSONResponse:
    """A response model (or a list of them) as JSON."""
    if isinstance(value, BaseModel):
        return JSONResponse(value.model_dump(mode="json"), headers=headers)
    return JSONResponse([item.model_dump(mode="json") for item in value], headers=headers)


@dataclasses.dataclass(frozen=True)
class Operation:
    """One method on one path of ``/api/kith/v1``, as the route table and the OpenAPI description see it.

    ``response`` is the answer's type (a model, ``list[Model]``, a union); ``answers`` says what it
    is. ``params``, ``query`` and ``body`` are the models the handler reads its input through.
    """

    method: str
    path: str
    handler: Callable[[Request], Awaitable[Any]]
    summary: str
    response: Any
    answers: str
    params: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    description: str = ""

    @property
    def scopes(self) -> tuple[str, ...] | None:
        """The token scopes the handler accepts (any one is enough); None for a public operation."""
        return scopes_of(self.handler)

    @property
    def paged(self) -> bool:
        return self.query is not None and issubclass(self.query, PageQuery)

    @property
    def errors(self) -> list[int]:
        """The error statuses it may answer, from what it reads: a path can name nothing (404), a query
        or body be malformed (400), a body be too large (413) or hold an unacceptable value (422)."""
        codes = set()
        if self.scopes is not None:
            codes |= {401, 403}
        if self.params is not None:
            codes.add(404)
        if self.query is not None:
            codes.add(400)
        if self.body is not None:
            codes |= {400, 413, 422}
        return sorted(codes)

    def route(self) -> Route:
        return Route(self.path, self.handler, methods=[self.method])
