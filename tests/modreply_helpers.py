"""Shared steps of the moderator-notice tests: remote moderators, reports, notices received, replies."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from server.moderation.authority import add_remote_moderator
from server.tables import mod_notice_clocks, mod_notice_sends
from server.types import utcnow
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.world import GROUP, World

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
ONE_MINUTE = timedelta(seconds=61)


async def make_remote_moderator(world: World, server: FakeMastodon, name: str) -> str:
    """``name`` on ``server`` is listed as a moderator of the group; its actor URI."""
    uri = server.actor_uri(name) if name in server.users else server.add_user(name)
    async with world.services.db.transaction() as conn:
        await add_remote_moderator(conn, world.group.id, uri)
    return uri


async def a_minute_later(world: World) -> None:
    """As if a minute had passed: every moderator's clock is free and waiting sends are due; then drain."""
    async with world.services.db.transaction() as conn:
        await conn.execute(sa.update(mod_notice_clocks).values(last_sent_at=utcnow() - ONE_MINUTE))
        await conn.execute(
            sa.update(mod_notice_sends).where(mod_notice_sends.c.state == "queued").values(next_attempt_at=utcnow())
        )
    await world.worker.drain()


def flag(server: FakeMastodon, reporter: str, note: dict[str, Any], comment: str = "spam") -> dict[str, Any]:
    """A Mastodon-shaped report of ``note`` (and its author) by ``reporter`` on ``server``."""
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": server.new_id(),
        "type": "Flag",
        "actor": server.actor_uri(reporter),
        "object": [note["attributedTo"], note["id"]],
        "content": comment,
    }


def notices_to(server: FakeMastodon, name: str) -> list[dict[str, Any]]:
    """The direct messages (Create of a Note) the group sent to ``name`` on ``server``, in order."""
    uri = server.actor_uri(name)
    return [
        r.activity
        for r in server.received
        if r.activity.get("type") == "Create"
        and r.signer == GROUP
        and r.activity["object"].get("to") == [uri]
        and r.path == f"/users/{name}/inbox"
    ]


def reply(
    server: FakeMastodon,
    name: str,
    notice: dict[str, Any] | str,
    text: str,
    *,
    to: list[str] | None = None,
    cc: list[str] | None = None,
    note_id: str | None = None,
    author: str | None = None,
) -> dict[str, Any]:
    """A Mastodon direct reply by ``name`` to the group's message ``notice``: ``@bookclub TEXT``, to the group."""
    parent = notice if isinstance(notice, str) else notice["object"]["id"]
    uri = note_id or f"{server.base}/notes/{uuid.uuid4().hex[:12]}"
    note = {
        "id": uri,
        "type": "Note",
        "attributedTo": author or server.actor_uri(name),
        "inReplyTo": parent,
        "content": (
            '<p><span class="h-card"><a href="https://kith.test/groups/bookclub" class="u-url mention">'
            f"@<span>bookclub</span></a></span> {text}</p>"
        ),
        "to": to if to is not None else [GROUP],
        "cc": cc if cc is not None else [],
        "tag": [{"type": "Mention", "href": GROUP, "name": "@bookclub@kith.test"}],
        "published": "2026-12-08T10:00:00Z",
    }
    server.objects[uri] = note
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{server.base}/activities/{uuid.uuid4().hex[:12]}",
        "type": "Create",
        "actor": server.actor_uri(name),
        "to": note["to"],
        "cc": note["cc"],
        "object": note,
    }
