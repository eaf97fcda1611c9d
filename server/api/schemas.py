"""The answers of Kith's own API (``/api/kith/v1``): what its handlers send back.

Handlers build their answers through these models (``server.api.operation.answer``), and
``server.api.openapi`` generates the OpenAPI description from them and from the request
models of ``server.api.requests``: the document cannot drift from the code. An answer is
validated as it is built, so a handler cannot send a shape the description does not show;
the limits a request must keep to are the request models' (data already stored is answered
as it is).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema

from server.federation.serialize import iso

ReportState = Literal["open", "assigned", "resolved", "rejected"]

Link = Annotated[str, WithJsonSchema({"type": "string", "format": "uri"})]
# A time the API writes itself: RFC 3339 in UTC with a Z, as Mastodon does.
Time = Annotated[
    datetime,
    PlainSerializer(iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
# A time as the owning module already wrote it (the moderation log, reports): passed on unchanged.
TimeText = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class Error(BaseModel):
    """Every error: 4xx with a short reason."""

    error: str


class Guards(BaseModel):
    """A group's automatic guards; 0 or empty is off."""

    hold_first_posts: int = Field(description="hold a new member's first posts for a moderator")
    keywords: list[str]
    link_domains: list[str]
    filter_action: Literal["hold", "reject"] = Field(description="what a keyword or link match does")
    member_posts_per_hour: int
    instance_posts_per_hour: int
    max_group_mentions: int


class Author(BaseModel):
    id: Link
    handle: str
    name: str | None


class PollOption(BaseModel):
    title: str
    votes: int


class Post(BaseModel):
    """A post of a thread listing; a deleted or removed one keeps its place, without its content."""

    id: Link = Field(description="the post's ActivityPub id")
    url: Link
    type: Literal["Note", "Page", "Article", "Question"]
    author: Author
    title: str | None
    content_warning: str | None
    content_html: str = Field(description="sanitised HTML; empty unless visible")
    sensitive: bool
    state: Literal["visible", "deleted", "removed"]
    removed_reason: str | None
    locked: bool
    pinned: bool
    deleted: bool
    published: Time
    updated: Time | None
    likes: int
    dislikes: int
    poll: list[PollOption] | None


class Reply(Post):
    replies: list[Reply]


class Thread(Post):
    replies_count: int
    replies: list[Reply]


class ThreadPage(BaseModel):
    group: Link
    threads: list[Thread]
    next: str | None = Field(description="the `before` cursor of the next page")


class ModlogEntry(BaseModel):
    id: int
    action: str = Field(examples=["remove", "ban", "lock", "approve_follow"])
    target: str
    reason: str
    expires_at: TimeText | None
    created_at: TimeText
    moderator: str = Field(description="a local account name or a remote actor URI")


class HeldPost(BaseModel):
    """A post waiting for a moderator."""

    id: int
    uri: Link
    url: Link
    type: str
    author: Link
    author_handle: str
    in_reply_to: str | None
    title: str | None
    content_warning: str | None
    content_html: str = Field(description="sanitised HTML")
    published: Time
    received_at: Time


class Member(BaseModel):
    """A member, or an actor asking to be one."""

    id: int
    actor: Link
    handle: str
    state: Literal["pending", "accepted"]
    created_at: Time
    decided_at: Time | None


class FollowDecision(BaseModel):
    actor: Link
    state: Literal["accepted", "rejected"]


class PostState(BaseModel):
    """A post's moderation state after an action."""

    uri: Link
    state: Literal["visible", "held", "removed", "deleted", "suspended"]
    removed_reason: str | None
    locked: bool = Field(description="the thread's lock")
    pinned: bool


class Ban(BaseModel):
    actor: Link
    reason: str
    expires_at: Time | None
    active: bool = Field(description="false once expired")
    created_at: Time


class BanCreated(Ban):
    removed_posts: int


class Unbanned(BaseModel):
    actor: Link
    banned: Literal[False]


class Moderator(BaseModel):
    who: str = Field(description="a local account name or a remote actor URI")
    uri: Link
    role: Literal["owner", "moderator", "remote"]


class Report(BaseModel):
    """A report, as the group's moderators see it (the reporter is never sent on)."""

    id: str
    state: ReportState
    group_id: int | None
    reporter: str = Field(description="a remote actor URI, or a local account name")
    target_account: str | None
    target_posts: list[str]
    comment: str
    action_taken: str = Field(description="'', none, remove, ban or forwarded")
    forwarded: bool
    outgoing: bool = Field(description="our own report, sent to another server")
    assigned_to: int | None
    created_at: TimeText
    updated_at: TimeText


class ReportForwarded(Report):
    forwarded_to: list[Link]
