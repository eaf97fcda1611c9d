"""Origin spoofing: validly signed activities that claim what their sender may not change.

Every forgery here is signed correctly by a real actor (so it passes the door, or is
refused there), and must change nothing: no post, edit, deletion, membership, reaction,
ban, lock, pin or moderator, and nothing announced to the members. What the group holds
is snapshotted before and after each one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from server.groups.membership import GroupSpec, create_group
from server.moderation.authority import add_remote_moderator
from server.tables import bans, follows, group_roles, mod_log, posts, reactions, remote_actors, remote_moderators
from tests.hostile import GROUP, INBOX, PUBLIC, SHARED, World, forgery, make_world, stored_posts

Build = Callable[[World, dict[str, Any]], tuple[str, str, dict[str, Any]]]


@pytest.fixture
async def world(services, client, worker, mastodon):
    w = await make_world(services, client, worker, mastodon)
    yield w
    await w.social.http.aclose()


async def snapshot(world: World) -> dict[str, Any]:
    """Everything a forgery could change, as plain values."""
    async with world.services.db.read() as conn:

        async def rows(statement: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(r) for r in (await conn.execute(statement)).all())

        return {
            "posts": await rows(
                sa.select(
                    posts.c.uri,
                    posts.c.author_uri,
                    posts.c.state,
                    posts.c.content_html,
                    posts.c.name,
                    posts.c.likes,
                    posts.c.locked,
                    posts.c.pinned_at,
                )
            ),
            "follows": await rows(
                sa.select(remote_actors.c.uri, follows.c.state).join(
                    remote_actors, remote_actors.c.id == follows.c.actor_id
                )
            ),
            "reactions": await rows(sa.select(reactions.c.actor_uri, reactions.c.kind, reactions.c.activity_uri)),
            "bans": await rows(sa.select(bans.c.group_id, bans.c.actor_uri)),
            "mod_log": await rows(sa.select(mod_log.c.moderator, mod_log.c.action, mod_log.c.target)),
            "moderators": await rows(sa.select(remote_moderators.c.group_id, remote_moderators.c.actor_uri)),
            "roles": await rows(sa.select(group_roles.c.group_id, group_roles.c.user_id)),
        }


def _announced(world: World) -> list[Any]:
    return world.mastodon.of_type("Announce") + world.social.of_type("Announce")


@pytest.fixture
async def scene(world):
    """alice's post P in bookclub, liked by bob; bob moderates another group, chess."""
    note = await world.post_by(world.mastodon, "alice", "<p>P</p>")
    like = {
        "id": world.social.new_id(),
        "type": "Like",
        "actor": world.social.actor_uri("bob"),
        "object": note["id"],
    }
    await world.deliver(world.social, "bob", like)
    chess = await create_group(world.services.db, GroupSpec(name="chess"))
    async with world.services.db.transaction() as conn:
        await add_remote_moderator(conn, chess.id, world.social.actor_uri("bob"))
    async with world.services.db.read() as conn:
        follow_id = (
            await conn.execute(
                sa.select(follows.c.activity_uri)
                .join(remote_actors, remote_actors.c.id == follows.c.actor_id)
                .where(remote_actors.c.uri == world.mastodon.actor_uri("alice"))
            )
        ).scalar_one()
    world.mastodon.received.clear()
    world.social.received.clear()
    return {"note": note, "like": like, "follow_id": follow_id}


def act(world: World, who: str, kind: str, obj: Any, **extra: Any) -> tuple[str, str, dict[str, Any]]:
    """``(server host, user, activity)``: an activity of ``kind`` sent and signed by ``who`` (zed, alice or bob)."""
    server = world.social if who == "bob" else world.mastodon
    activity = {"id": server.new_id(), "type": kind, "actor": server.actor_uri(who), "object": obj, **extra}
    return server.host, who, activity


def _alice_uri(w: World) -> str:
    return w.mastodon.actor_uri("alice")


def _note(w: World, **fields: Any) -> dict[str, Any]:
    note = {
        "id": f"https://mastodon.example/notes/{uuid.uuid4().hex[:8]}",
        "type": "Note",
        "attributedTo": _alice_uri(w),
        "content": "<p>forged</p>",
        "to": [PUBLIC],
        "cc": [GROUP],
        "published": "2026-11-26T10:00:00Z",
    }
    return {**note, **fields}


MODERATION = {"audience": GROUP, "cc": [GROUP]}

FORGERIES: dict[str, Build] = {
    "Create of a note whose id is on another server": lambda w, s: act(
        w,
        "alice",
        "Create",
        _note(w, id=f"https://social.example/notes/{uuid.uuid4().hex[:8]}"),
        to=[PUBLIC],
        cc=[GROUP],
    ),
    "Create of a note attributed to another on the same server": lambda w, s: act(
        w, "zed", "Create", _note(w), to=[PUBLIC], cc=[GROUP]
    ),
    "Create of a note attributed to another server's actor": lambda w, s: act(
        w, "alice", "Create", _note(w, attributedTo=w.social.actor_uri("bob")), to=[PUBLIC], cc=[GROUP]
    ),
    "Create of a note attributed to the group": lambda w, s: act(
        w, "zed", "Create", _note(w, attributedTo=GROUP), to=[PUBLIC], cc=[GROUP]
    ),
    "Update of another's post, same server": lambda w, s: act(
        w, "zed", "Update", {**s["note"], "content": "<p>defaced</p>"}
    ),
    "Update of another's post, claiming to be its author": lambda w, s: act(
        w, "zed", "Update", {**s["note"], "attributedTo": w.mastodon.actor_uri("zed"), "content": "<p>mine</p>"}
    ),
    "Update of another server's post": lambda w, s: act(w, "bob", "Update", {**s["note"], "content": "<p>defaced</p>"}),
    "Delete of another's post by id": lambda w, s: act(w, "zed", "Delete", s["note"]["id"]),
    "Delete of another's post as a Tombstone": lambda w, s: act(
        w, "zed", "Delete", {"id": s["note"]["id"], "type": "Tombstone"}
    ),
    "Delete of another server's post": lambda w, s: act(w, "bob", "Delete", s["note"]["id"], **MODERATION),
    "Undo of another's Follow, embedded": lambda w, s: act(
        w, "zed", "Undo", {"id": s["follow_id"], "type": "Follow", "actor": _alice_uri(w), "object": GROUP}
    ),
    "Undo of another's Follow, by reference": lambda w, s: act(w, "zed", "Undo", s["follow_id"]),
    "Undo of another's Like, embedded": lambda w, s: act(w, "zed", "Undo", s["like"]),
    "Undo of another's Like, by reference": lambda w, s: act(w, "alice", "Undo", s["like"]["id"]),
    "Undo of another's Like, claimed as one's own": lambda w, s: act(
        w, "alice", "Undo", {**s["like"], "actor": _alice_uri(w)}
    ),
    "Announce of an object that does not exist at its id": lambda w, s: act(
        w, "alice", "Announce", _note(w, attributedTo=w.mastodon.actor_uri("zed")), to=[PUBLIC], cc=[GROUP]
    ),
    "Lock by a member": lambda w, s: act(w, "zed", "Lock", s["note"]["id"], **MODERATION),
    "Lock by another group's moderator": lambda w, s: act(w, "bob", "Lock", s["note"]["id"], **MODERATION),
    "Block (ban) by a member": lambda w, s: act(w, "zed", "Block", _alice_uri(w), target=GROUP, **MODERATION),
    "Block (ban) by another group's moderator": lambda w, s: act(
        w, "bob", "Block", _alice_uri(w), target=GROUP, **MODERATION
    ),
    "Add of oneself as moderator": lambda w, s: act(
        w, "zed", "Add", w.mastodon.actor_uri("zed"), target=f"{GROUP}/moderators", **MODERATION
    ),
    "Add of oneself as moderator by another group's moderator": lambda w, s: act(
        w, "bob", "Add", w.social.actor_uri("bob"), target=f"{GROUP}/moderators", **MODERATION
    ),
    "Add of a pin by a member": lambda w, s: act(
        w, "zed", "Add", s["note"]["id"], target=f"{GROUP}/featured", **MODERATION
    ),
    "Remove of a member's post by another group's moderator": lambda w, s: act(
        w, "bob", "Remove", s["note"]["id"], target=GROUP, **MODERATION
    ),
    "Undo of a Delete (restore) by a member": lambda w, s: act(
        w,
        "zed",
        "Undo",
        {
            "id": w.mastodon.new_id(),
            "type": "Delete",
            "actor": w.mastodon.actor_uri("zed"),
            "object": s["note"]["id"],
            **MODERATION,
        },
    ),
    "Follow on behalf of another": lambda w, s: act(
        w, "zed", "Follow", GROUP, id=f"{w.social.actor_uri('bob')}#follow"
    ),
}


async def test_no_spoofed_activity_changes_anything(world, scene, services, client):
    before = await snapshot(world)
    taken = []
    for name, build in FORGERIES.items():
        host, who, activity = build(world, scene)
        server = world.social if host == world.social.host else world.mastodon
        for door in (SHARED, INBOX):
            activity = {**activity, "id": f"{activity['id']}-{door[-6:]}"} if door == INBOX else activity
            status = await world.send(server, who, activity, door)
            assert status < 500, (name, status)
        await world.worker.drain()
        after = await snapshot(world)
        if forgery(after != before or bool(_announced(world))):
            taken.append((name, {k: (before[k], after[k]) for k in before if before[k] != after[k]}, _announced(world)))
            before = after
            world.mastodon.received.clear()
            world.social.received.clear()
    assert taken == []


async def test_a_neighbours_delete_of_an_unseen_id_does_not_stop_the_authors_create(world):
    note = world.mastodon.note("alice", "<p>not zed's</p>", to_group=GROUP)
    _, _, delete = act(world, "zed", "Delete", note["id"])
    await world.deliver(world.mastodon, "zed", delete)
    _, _, tombstone = act(world, "bob", "Delete", {"id": note["id"], "type": "Tombstone"})
    await world.deliver(world.social, "bob", tombstone)
    await world.deliver(world.mastodon, "alice", world.mastodon.create("alice", note))
    (post,) = await stored_posts(world.services)
    assert (post.uri, post.state, post.author_uri) == (note["id"], "visible", _alice_uri(world))
    assert len(world.social.of_type("Announce")) == 2


async def test_an_announce_of_a_forged_copy_stores_the_origins_copy(world):
    real = world.social.note("bob", "<p>what bob wrote</p>", to_group=GROUP)
    forged = {**real, "content": "<p>what alice says bob wrote</p>", "name": "forged"}
    _, _, boost = act(world, "alice", "Announce", forged, to=[PUBLIC], cc=[GROUP])
    await world.deliver(world.mastodon, "alice", boost)
    (post,) = await stored_posts(world.services)
    assert not forgery(post.content_html != "<p>what bob wrote</p>" or post.author_uri != real["attributedTo"])
