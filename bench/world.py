"""The data a benchmark starts from: a group, remote actors with cached keys, members, Creates.

Remote actors live on loopback address literals (``127.0.x.y:port``) so that, even if
something did try to reach one, the traffic could only ever go to this machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from server.db import Database
from server.groups.membership import GroupSpec, create_group

AS_PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
AS_CONTEXT = ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"]
GROUP = "bench"


@dataclass(frozen=True)
class RemoteActor:
    """A remote person whose document (and key) Kith already has in its cache."""

    uri: str
    authority: str  # host:port, the server it lives on
    key_id: str
    private_pem: str
    public_pem: str
    shared_inbox: str

    @property
    def base(self) -> str:
        return f"http://{self.authority}"


def actor_on(authority: str, name: str, keys: tuple[str, str]) -> RemoteActor:
    base = f"http://{authority}"
    uri = f"{base}/users/{name}"
    return RemoteActor(uri, authority, f"{uri}#main-key", keys[0], keys[1], f"{base}/inbox")


def actor_document(actor: RemoteActor) -> dict[str, Any]:
    name = actor.uri.rsplit("/", 1)[1]
    return {
        "@context": AS_CONTEXT,
        "id": actor.uri,
        "type": "Person",
        "preferredUsername": name,
        "name": name.title(),
        "inbox": f"{actor.uri}/inbox",
        "outbox": f"{actor.uri}/outbox",
        "followers": f"{actor.uri}/followers",
        "endpoints": {"sharedInbox": actor.shared_inbox},
        "publicKey": {"id": actor.key_id, "owner": actor.uri, "publicKeyPem": actor.public_pem},
    }


async def make_group(url: str, name: str = GROUP) -> int:
    """Create the group (with its own key pair) through Kith's own code; returns its id."""
    db = Database(url)
    try:
        group = await create_group(db, GroupSpec(name=name, title="Bench", posting="members"))
    finally:
        await db.dispose()
    return int(group.id)


async def insert_actors(conn: asyncpg.Connection, actors: list[RemoteActor]) -> list[int]:
    """Store the actors as Kith's cache would (fresh, with keys); returns their row ids."""
    now = datetime.now(UTC)
    rows = [
        (
            a.uri,
            a.authority,
            "Person",
            a.uri.rsplit("/", 1)[1],
            a.uri.rsplit("/", 1)[1].title(),
            f"{a.uri}/inbox",
            a.shared_inbox,
            a.key_id,
            a.public_pem,
            json.dumps(actor_document(a), separators=(",", ":")),
            now,
        )
        for a in actors
    ]
    await conn.copy_records_to_table(
        "remote_actors",
        records=rows,
        columns=[
            "uri",
            "domain",
            "type",
            "preferred_username",
            "name",
            "inbox",
            "shared_inbox",
            "key_id",
            "public_key_pem",
            "raw",
            "fetched_at",
        ],
    )
    found = await conn.fetch("SELECT id, uri FROM remote_actors WHERE uri = ANY($1::text[])", [a.uri for a in actors])
    by_uri = {r["uri"]: r["id"] for r in found}
    return [by_uri[a.uri] for a in actors]


async def insert_members(conn: asyncpg.Connection, group_id: int, actor_ids: list[int]) -> None:
    """Accepted follows of the group by each actor, a month old.

    Established members: the benchmarks' floods of posts would otherwise be posts from
    members who joined in the last 48 hours, which trip crowd control's alarm and are held.
    """
    joined = datetime.now(UTC) - timedelta(days=30)
    rows = [
        (group_id, actor_id, f"http://follow.invalid/{actor_id}", "{}", "accepted", joined, joined)
        for actor_id in actor_ids
    ]
    await conn.copy_records_to_table(
        "follows",
        records=rows,
        columns=["group_id", "actor_id", "activity_uri", "activity_raw", "state", "created_at", "decided_at"],
    )


def create_activity(actor: RemoteActor, group_uri: str, group_handle: str, n: int, words: int = 40) -> dict[str, Any]:
    """A Mastodon-shaped Create of a public Note that mentions the group (``n`` makes it unique)."""
    uri = f"{actor.uri}/statuses/{n}"
    text = " ".join(f"word{(n + i) % 97}" for i in range(words))
    content = f'<p><span class="h-card"><a href="{group_uri}" class="u-url mention">@bench</a></span> {text}</p>'
    published = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    note = {
        "id": uri,
        "type": "Note",
        "summary": None,
        "inReplyTo": None,
        "published": published,
        "url": f"{actor.base}/@{actor.uri.rsplit('/', 1)[1]}/{n}",
        "attributedTo": actor.uri,
        "to": [AS_PUBLIC],
        "cc": [f"{actor.uri}/followers", group_uri],
        "sensitive": False,
        "content": content,
        "contentMap": {"en": content},
        "attachment": [],
        "tag": [{"type": "Mention", "href": group_uri, "name": group_handle}],
    }
    return {
        "@context": AS_CONTEXT,
        "id": f"{uri}/activity",
        "type": "Create",
        "actor": actor.uri,
        "published": published,
        "to": note["to"],
        "cc": note["cc"],
        "object": note,
    }
