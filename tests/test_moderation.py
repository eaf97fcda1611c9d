"""Group moderation in the test world: every action stored, logged, and delivered to the right servers; authority."""

import json

import pytest
import sqlalchemy as sa

from server.accounts import create_user
from server.errors import Forbidden
from server.groups.membership import get_group
from server.moderation import actions
from server.moderation.rulebook import save_guards
from server.tables import mod_log, posts

GROUP = "https://kith.test/groups/bookclub"
MOD = "https://kith.test/users/mod1"
AP = {"Accept": "application/activity+json"}
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


async def by(services, user="mod1"):
    return (await actions.group_and_moderator(services, "bookclub", user))[1]


async def log_rows(services):
    async with services.db.read() as conn:
        return [
            (r.moderator, r.action, r.target, r.reason)
            for r in (await conn.execute(sa.select(mod_log).order_by(mod_log.c.id))).all()
        ]


def inner(received):
    """The activities a server got wrapped in the group's Announces."""
    return [r.activity["object"] for r in received if r.activity["type"] == "Announce" and r.signer == GROUP]


async def test_remove_and_restore(client, services, worker, mastodon, social, world):
    note = await world.post(mastodon, "alice", "<p>off topic</p>")
    social.received.clear()
    await actions.remove_post(services, world.group, note["id"], by=await by(services), reason="off topic")
    await worker.drain()
    got = inner(social.received)
    delete = next(a for a in got if isinstance(a, dict) and a["type"] == "Delete")
    assert delete["actor"] == MOD and delete["object"] == note["id"] and delete["summary"] == "off topic"
    assert delete["audience"] == GROUP and delete["cc"] == [GROUP]
    undo = next(r.activity for r in social.received if r.activity["type"] == "Undo")
    assert undo["actor"] == GROUP and undo["object"]["object"] == note["id"]  # the plain Announce withdrawn
    uid = undo["object"]["id"].rsplit("/", 1)[1]
    assert (await client.get(f"/activities/{uid}", headers=AP)).status_code == 410
    page = (await client.get("/groups/bookclub")).text
    assert "off topic</p>" not in page
    assert await log_rows(services) == [("mod1", "remove", note["id"], "off topic")]
    modlog = (await client.get("/groups/bookclub/modlog", headers={"Accept": "application/json"})).json()
    assert modlog[0]["action"] == "remove" and "moderator" not in modlog[0]  # names stay off the public log

    social.received.clear()
    await actions.restore_post(services, world.group, note["id"], by=await by(services))
    await worker.drain()
    got = inner(social.received)
    assert any(isinstance(a, dict) and a["type"] == "Undo" and a["object"]["type"] == "Delete" for a in got)
    assert note["id"] in got  # announced again, so Mastodon shows it again
    api = (await client.get("/api/kith/v1/groups/bookclub/threads")).json()
    assert api["threads"][0]["content_html"] == "<p>off topic</p>"


async def test_lock_refuses_replies(client, services, worker, mastodon, social, world):
    note = await world.post(mastodon, "alice", "<p>closed topic</p>")
    await actions.set_locked(services, world.group, note["id"], True, by=await by(services), reason="done")
    await worker.drain()
    assert any(
        isinstance(a, dict) and a["type"] == "Lock" and a["object"] == note["id"] for a in inner(social.received)
    )
    mastodon.received.clear()
    reply = social.note("bob", "<p>one more thing</p>", to_group=GROUP, in_reply_to=note["id"], mention=False)
    create = social.create("bob", reply)
    await social.post(client, "bob", "https://kith.test/inbox", create)
    await worker.drain()
    assert [r.activity["object"] for r in social.of_type("Reject")] == [create["id"]]
    assert inner(mastodon.received) == []
    # Moderators may still reply in a locked thread? Only local leaders; members cannot.
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(posts))).scalar_one() == 1


async def test_pin_and_featured(client, services, worker, mastodon, social, world):
    note = await world.post(mastodon, "alice", "<p>welcome thread</p>")
    await actions.set_pinned(services, world.group, note["id"], True, by=await by(services))
    await worker.drain()
    featured = (await client.get(f"{GROUP}/featured", headers=AP)).json()
    assert featured["orderedItems"] == [note["id"]] and featured["totalItems"] == 1
    add = next(a for a in inner(social.received) if isinstance(a, dict) and a["type"] == "Add")
    assert add["target"] == f"{GROUP}/featured" and add["object"] == note["id"]
    assert "Pinned" in (await client.get("/groups/bookclub")).text
    await actions.set_pinned(services, world.group, note["id"], False, by=await by(services))
    assert (await client.get(f"{GROUP}/featured", headers=AP)).json()["totalItems"] == 0


async def test_ban_with_content_removal_and_expiry(client, services, worker, mastodon, social, world):
    from datetime import timedelta

    from server.types import utcnow

    note = await world.post(mastodon, "alice", "<p>spam spam</p>")
    social.received.clear()
    mastodon.received.clear()
    until = utcnow() + timedelta(days=7)
    removed = await actions.ban(
        services,
        world.group,
        mastodon.actor_uri("alice"),
        by=await by(services),
        reason="spam",
        expires_at=until,
        remove_content=True,
    )
    await worker.drain()
    assert removed == 1
    block = next(a for a in inner(social.received) if isinstance(a, dict) and a["type"] == "Block")
    assert (
        block["target"] == GROUP
        and block["removeData"] is True
        and block["endTime"].startswith(until.date().isoformat())
    )
    assert any(isinstance(a, dict) and a["type"] == "Block" for a in inner(mastodon.received))  # the banned one is told
    assert (await client.get(f"{GROUP}/followers", headers=AP)).json()["totalItems"] == 1
    # Banned: a new follow is accepted at the door, but posts are refused.
    later = await world.post(mastodon, "alice", "<p>again</p>")
    async with services.db.read() as conn:
        states = dict((await conn.execute(sa.select(posts.c.uri, posts.c.state))).all())
    assert states == {note["id"]: "removed"} and later["id"] not in states
    rows = await log_rows(services)
    assert rows == [("mod1", "ban", mastodon.actor_uri("alice"), "spam")]

    social.received.clear()
    await actions.unban(services, world.group, mastodon.actor_uri("alice"), by=await by(services))
    await worker.drain()
    undo = next(a for a in inner(social.received) if isinstance(a, dict) and a["type"] == "Undo")
    assert undo["object"]["type"] == "Block"


async def test_held_posts_and_guards(client, services, worker, mastodon, social, world):
    async with services.db.transaction() as conn:
        await save_guards(
            conn,
            services.db,
            world.group.id,
            {
                "hold_first_posts": 1,
                "keywords": ["casino"],
                "filter_action": "reject",
                "link_domains": ["spam.example"],
            },
        )
    first = await world.post(mastodon, "alice", "<p>hello all</p>")
    assert inner(social.received) == []  # held, not announced
    assert "hello all" not in (await client.get("/groups/bookclub")).text
    await actions.decide_held_post(services, world.group, first["id"], True, by=await by(services))
    await worker.drain()
    assert inner(social.received) == [first["id"]]
    social.received.clear()
    casino = await world.post(mastodon, "alice", "<p>Best CASINO deals</p>")
    assert [r.activity["object"] for r in mastodon.of_type("Reject")] == [casino["id"] + "/activity"]
    # A filtered link domain holds when the action says hold.
    async with services.db.transaction() as conn:
        await save_guards(conn, services.db, world.group.id, {"filter_action": "hold"})
    link = await world.post(mastodon, "alice", '<p>see <a href="https://www.spam.example/x">this</a></p>')
    async with services.db.read() as conn:
        state = (await conn.execute(sa.select(posts.c.state).where(posts.c.uri == link["id"]))).scalar_one()
    assert state == "held" and inner(social.received) == []


async def test_flood_from_one_server_is_cut_while_others_post(client, services, worker, mastodon, social, world):
    for i in range(5):
        mastodon.add_user(f"troll{i}")
        await mastodon.post(client, f"troll{i}", f"{GROUP}/inbox", mastodon.follow(f"troll{i}", GROUP))
    await worker.drain()
    async with services.db.transaction() as conn:
        await save_guards(
            conn,
            services.db,
            world.group.id,
            {"member_posts_per_hour": 3, "instance_posts_per_hour": 6, "max_group_mentions": 2},
        )
    social.received.clear()
    for round_ in range(3):
        for i in range(5):
            await world.post(mastodon, f"troll{i}", f"<p>brigade {round_}-{i}</p>")
    bobs = await world.post(social, "bob", "<p>still talking about books</p>")
    async with services.db.read() as conn:
        from_mastodon = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(posts)
                .where(posts.c.author_uri.like("https://mastodon.example/%"))
            )
        ).scalar_one()
        bob_state = (await conn.execute(sa.select(posts.c.state).where(posts.c.uri == bobs["id"]))).scalar_one()
    assert from_mastodon == 6  # the instance limit held the brigade
    assert bob_state == "visible"
    assert len(mastodon.of_type("Reject")) == 9
    # Mass mentions of groups are refused.
    spam = mastodon.note("alice", "<p>look</p>", to_group=GROUP)
    spam["tag"] += [{"type": "Mention", "href": f"https://lemmy.example/c/g{i}"} for i in range(3)]
    await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", spam))
    await worker.drain()
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(posts.c.id).where(posts.c.uri == spam["id"]))).first() is None


async def test_moderators_and_authority(client, services, worker, mastodon, social, world):
    await create_user(services.db, "helper")
    await create_user(services.db, "nobody")
    with pytest.raises(Forbidden):
        await actions.group_and_moderator(services, "bookclub", "nobody")
    await actions.set_moderator(services, world.group, "helper", True, by=await by(services))
    helper = await by(services, "helper")
    with pytest.raises(Forbidden):  # only the owner appoints
        await actions.set_moderator(services, world.group, "nobody", True, by=helper)
    # A remote moderator: bob.
    await actions.set_moderator(services, world.group, social.actor_uri("bob"), True, by=await by(services))
    await worker.drain()
    mods = (await client.get(f"{GROUP}/moderators", headers=AP)).json()["orderedItems"]
    assert mods == [
        "https://kith.test/users/mod1",
        "https://kith.test/users/helper",
        "https://kith.test/users/mod2",  # the world's moderator
        social.actor_uri("bob"),
    ]
    adds = {a["object"]: a for a in inner(mastodon.received) if isinstance(a, dict) and a["type"] == "Add"}
    assert set(adds) == {"https://kith.test/users/helper", social.actor_uri("bob")}  # delivery order varies
    assert adds[social.actor_uri("bob")]["target"] == f"{GROUP}/moderators"

    note = await world.post(mastodon, "alice", "<p>remove me</p>")
    mastodon.add_user("mallory")
    # A non-moderator's Delete of someone else's post is refused.
    forged = {"id": mastodon.new_id(), "type": "Delete", "actor": mastodon.actor_uri("mallory"), "object": note["id"]}
    await mastodon.post(client, "mallory", "https://kith.test/inbox", forged)
    # A Block from a foreign server (not a listed moderator) is refused.
    block = {
        "id": mastodon.new_id(),
        "type": "Block",
        "actor": mastodon.actor_uri("mallory"),
        "object": social.actor_uri("bob"),
        "target": GROUP,
    }
    await mastodon.post(client, "mallory", "https://kith.test/inbox", block)
    await worker.drain()
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(posts.c.state))).scalar_one() == "visible"
    assert (await client.get(f"{GROUP}/followers", headers=AP)).json()["totalItems"] == 2

    # The listed remote moderator's Delete removes it, and the Lock counts.
    delete = {
        "id": social.new_id(),
        "type": "Delete",
        "actor": social.actor_uri("bob"),
        "object": note["id"],
        "summary": "rule 3",
        "to": [PUBLIC],
        "cc": [GROUP],
        "audience": GROUP,
    }
    lock = {
        "id": social.new_id(),
        "type": "Lock",
        "actor": social.actor_uri("bob"),
        "object": note["id"],
        "to": [PUBLIC],
        "cc": [GROUP],
        "audience": GROUP,
    }
    mastodon.received.clear()
    for activity in (delete, lock):
        await social.post(client, "bob", "https://kith.test/inbox", activity)
    await worker.drain()
    async with services.db.read() as conn:
        row = (await conn.execute(sa.select(posts))).one()
    assert row.state == "removed" and row.removed_reason == "rule 3" and row.locked
    assert delete in inner(mastodon.received) and lock in inner(mastodon.received)
    assert [r[1] for r in await log_rows(services)][-2:] == ["remove", "lock"]
    assert (await log_rows(services))[-1][0] == social.actor_uri("bob")


async def test_follow_decisions_are_logged(client, services, worker, mastodon, social, world):
    async with services.db.transaction() as conn:
        await conn.execute(sa.text("update local_actors set approval = 'manual' where name = 'bookclub'"))
    mastodon.add_user("newbie")
    await mastodon.post(client, "newbie", f"{GROUP}/inbox", mastodon.follow("newbie", GROUP))
    await worker.drain()
    async with services.db.read() as conn:
        group = await get_group(conn, "bookclub")
    assert (
        await actions.decide_follow_request(services, group, mastodon.actor_uri("newbie"), True, by=await by(services))
        == "accepted"
    )
    assert (await log_rows(services))[-1][1:3] == ("approve_follow", mastodon.actor_uri("newbie"))
    await worker.drain()
    body = json.dumps([r.activity for r in mastodon.of_type("Accept")])
    assert mastodon.actor_uri("newbie") in body
