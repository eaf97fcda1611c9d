"""Groups: creating them, finding them. The owner of the group rows of ``local_actors``.

Members and follow requests live in ``server.groups.following``; leaders (owner and
moderators) in ``server.moderation.authority``. Functions take an open connection so
callers compose them into one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from server.accounts import count_users, get_user
from server.db import Database
from server.errors import BadRequest
from server.links import Links
from server.local_actors import (
    LocalActor,
    count_local_actors,
    ensure_no_clash,
    get_local_actor,
    get_local_actor_by_id,
    insert_local_actor,
    list_local_actors,
)
from server.moderation.authority import add_role
from server.names import validate_name
from server.rows import record

APPROVAL_MODES = ("auto", "manual")
POSTING_MODES = ("members", "anyone", "moderators")


# The longest each text of a group's profile may be, in characters.
PROFILE_LIMITS = {"title": 200, "summary": 5000, "rules": 5000, "benefits": 2000, "objectives": 2000, "welcome": 5000}


def validate_profile(values: dict[str, object]) -> None:
    """``BadRequest`` with the reason unless every given profile value is acceptable."""
    for field, value in values.items():
        if field == "approval" and value not in APPROVAL_MODES:
            raise BadRequest(f"approval must be one of {', '.join(APPROVAL_MODES)}")
        if field == "posting" and value not in POSTING_MODES:
            raise BadRequest(f"posting must be one of {', '.join(POSTING_MODES)}")
        if field == "welcome_enabled" and not isinstance(value, bool):
            raise BadRequest("welcome_enabled must be true or false")
        if field in PROFILE_LIMITS:
            if not isinstance(value, str):
                raise BadRequest(f"the {field} must be text")
            if len(value) > PROFILE_LIMITS[field]:
                raise BadRequest(f"the {field} must be at most {PROFILE_LIMITS[field]} characters")
            if "\x00" in value:
                raise BadRequest(f"the {field} contains a NUL character")


@dataclass(frozen=True)
class GroupSpec:
    """What a new group is made of; validated by ``create_group``."""

    name: str
    title: str = ""
    summary: str = ""
    owner: str | None = None
    approval: str = "auto"
    posting: str = "members"
    rules: str = ""  # one rule per line


async def create_group(db: Database, spec: GroupSpec) -> Group:
    """Create a group actor with its own key pair (and its owner's role, when named)."""
    validate_name(spec.name)
    validate_profile(
        {
            "title": spec.title,
            "summary": spec.summary,
            "rules": spec.rules,
            "approval": spec.approval,
            "posting": spec.posting,
        }
    )
    async with db.transaction() as conn:
        await ensure_no_clash(conn, spec.name)
        owner = await get_user(conn, spec.owner) if spec.owner else None
        group = await insert_local_actor(
            conn,
            name=spec.name,
            kind="group",
            title=spec.title or spec.name,
            summary=spec.summary,
            approval=spec.approval,
            posting=spec.posting,
            rules=spec.rules,
        )
        if owner is not None:
            await add_role(conn, group.id, owner.id, "owner")
    return record(Group, group)


@dataclass(frozen=True, slots=True)
class Group(LocalActor):
    """A local actor of kind ``group``."""


async def get_group(conn: AsyncConnection, name: str) -> Group:
    """The group called ``name``, else ``NotFound``."""
    return record(Group, await get_local_actor(conn, name, "group"))


async def get_group_by_id(conn: AsyncConnection, group_id: int) -> Group:
    """The group with this id, else ``NotFound``."""
    return record(Group, await get_local_actor_by_id(conn, group_id, "group"))


async def list_groups(conn: AsyncConnection) -> list[Group]:
    """Every group, by name."""
    return [record(Group, a) for a in await list_local_actors(conn, "group")]


async def count_usage(conn: AsyncConnection) -> dict[str, int]:
    """Real counts for NodeInfo: local users and groups."""
    return {"users": await count_users(conn), "groups": await count_local_actors(conn, "group")}


def group_name_from_uri(uri: str, links: Links) -> str | None:
    """The local group name in a group actor URI of ours, else None."""
    prefix = links.base + "/groups/"
    if not uri.startswith(prefix):
        return None
    name = uri[len(prefix) :]
    return name if name and "/" not in name and "#" not in name and "?" not in name else None
