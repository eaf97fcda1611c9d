"""What Kith's own API reads: the models of a request's path, query and body.

Handlers validate their input through these (``server.api.operation``: 404 for a path that
names nothing, 400 for a malformed query, 422 for an unacceptable body value), and the
OpenAPI description is generated from them. Input is read as Mastodon clients send it (JSON,
or a form whose values are all text): a whole number may be written as digits, a blank or
null value is as good as absent, and a number where text is expected is taken as its text.
Anything else that does not fit is refused with a reason naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Interval
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from server.api.schemas import ReportState
from server.groups.threads import Cursor

PAGE = 100
MAX_PAGE = 200
MAX_ID = 2**31 - 1
MAX_URI = 2048  # the URI columns' width
MAX_REASON = 1000  # as a report's comment
MAX_BAN_DAYS = 36_500
MAX_REPORTED = 20  # objects in one report
MAX_GUARD = 100_000  # a guard's number
MAX_WORDS = 500  # a guard's keywords or domains

PostAction = Literal["remove", "restore", "lock", "unlock", "pin", "unpin", "approve", "reject"]
ReportAction = Literal["assign", "unassign", "resolve", "reject", "reopen", "forward"]


def _digits(value: Any) -> Any:
    """A whole number written as digits (a form, a query or a path sends only text)."""
    if isinstance(value, str):
        if not (value.strip().isascii() and value.strip().isdigit()):  # isdigit alone takes "²"
            raise PydanticCustomError("number", "must be a whole number")
        return int(value.strip())
    return value


def _http_uri(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise PydanticCustomError("http_uri", "must be an http(s) URI")
    return value


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# Whole numbers, from JSON or written as digits. Strict: neither true nor 1.5 is one, though
# pydantic would otherwise take them as 1; the bounds come before the digits are read, so that
# the schema shows them.
Number = Annotated[int, Strict(), BeforeValidator(_digits)]
Days = Annotated[int, Strict(), Interval(ge=0, le=MAX_BAN_DAYS), BeforeValidator(_digits)]
ReportId = Annotated[int, Strict(), Interval(ge=0, le=MAX_ID), BeforeValidator(_digits)]
GuardCount = Annotated[int, Strict(), Interval(ge=0, le=MAX_GUARD), BeforeValidator(_digits)]
GuardWords = Annotated[list[Annotated[str, Strict()]], Field(max_length=MAX_WORDS)]
Uri = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_URI),
    AfterValidator(_http_uri),
    WithJsonSchema({"type": "string", "format": "uri", "pattern": "^https?://", "maxLength": MAX_URI}),
]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_REASON)]
Flag = Annotated[bool, BeforeValidator(_stripped)]


class Input(BaseModel):
    """A request's parameters: a blank or null value is as good as absent, unknown keys are ignored."""

    model_config = ConfigDict(coerce_numbers_to_str=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _absent_when_blank(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None and v != ""}
        return data


# --------------------------------------------------------------------------- path and query


class GroupPath(Input):
    name: str = Field(description="the group's name")


class DecisionPath(GroupPath):
    decision: Literal["approve", "reject"]


class PostActionPath(GroupPath):
    action: PostAction


class ReportActionPath(GroupPath):
    id: ReportId = Field(description="the report's id")
    action: ReportAction


class PageQuery(Input):
    """A page of a list, newest first; answered with ``Link: <...>; rel="next"`` while it is full."""

    max_id: Annotated[Number, AfterValidator(lambda v: min(v, MAX_ID))] | None = Field(
        None, description="only entries with a smaller id (the next page)", json_schema_extra={"minimum": 0}
    )
    limit: Annotated[Number, AfterValidator(lambda v: max(1, min(v, MAX_PAGE)))] = Field(
        PAGE, description=f"at most {MAX_PAGE}; more is taken as {MAX_PAGE}", json_schema_extra={"minimum": 1}
    )


class MembersQuery(PageQuery):
    state: Literal["pending", "accepted"] | None = Field(
        None, description="only follow requests (pending) or only members (accepted)"
    )


class ReportsQuery(PageQuery):
    state: ReportState | None = None


class ThreadsQuery(Input):
    before: str | None = Field(None, description="the `next` of the previous page")

    @field_validator("before")
    @classmethod
    def _cursor(cls, value: str | None) -> str | None:
        if value is not None and Cursor.decode(value) is None:
            raise PydanticCustomError("cursor", "is not a valid cursor")
        return value

    @property
    def cursor(self) -> Cursor | None:
        return Cursor.decode(self.before) if self.before else None


# --------------------------------------------------------------------------- request bodies


class ActorRequest(Input):
    actor: Uri


class PostActionRequest(Input):
    uri: Uri = Field(description="the post's ActivityPub id")
    reason: Reason = ""


class BanRequest(Input):
    actor: Uri
    reason: Reason = ""
    expires_in_days: Days | None = Field(None, description="absent, null or 0: until lifted")
    remove_content: Flag = Field(False, description="also remove the actor's posts in the group")


class UnbanRequest(Input):
    actor: Uri
    reason: Reason = ""


class ModeratorRequest(Input):
    who: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_URI)] = Field(
        description="a local account name or a remote actor URI"
    )


class ResolveRequest(Input):
    action: Literal["remove", "ban"] | None = Field(
        None, description="also remove the reported posts, or ban the reported account"
    )
    reason: Reason = ""


class ReportRequest(Input):
    uris: Annotated[list[Uri], BeforeValidator(_one_or_many), Field(min_length=1, max_length=MAX_REPORTED)] = Field(
        description="the posts (or, for admins, an account) to report; one URI is taken as a list of one"
    )
    comment: Reason = ""


def _no_default(schema: dict[str, Any]) -> None:
    del schema["default"]


def _unchanged() -> Any:
    """A guard's default in a patch: absent keeps it. Null is no value for a guard, so it is refused."""
    return Field(None, json_schema_extra=_no_default)


class GuardsPatch(BaseModel):
    """Some of the guards to change; those not named are kept, and nothing else is taken."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"minProperties": 1})

    hold_first_posts: GuardCount = _unchanged()
    keywords: GuardWords = _unchanged()
    link_domains: GuardWords = _unchanged()
    filter_action: Literal["hold", "reject"] = _unchanged()
    member_posts_per_hour: GuardCount = _unchanged()
    instance_posts_per_hour: GuardCount = _unchanged()
    max_group_mentions: GuardCount = _unchanged()

    @model_validator(mode="after")
    def _not_empty(self) -> GuardsPatch:
        if not self.model_fields_set:
            raise PydanticCustomError("empty", "name at least one guard to change")
        return self
