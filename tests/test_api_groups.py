"""Kith's group moderation API: every endpoint, who may call it, bad input, and the effects.

Every response seen here is checked against the OpenAPI description (``check_response``).
Effects are checked in the database and in what the fake remote servers received.
"""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from server.accounts import create_user, get_user
from server.groups.membership import GroupSpec, create_group
from server.moderation.authority import add_role
from server.moderation.rulebook import load_guards
from server.oauth import create_user_token
from server.tables import bans, follows, group_roles, mod_log, posts, remote_moderators
from server.tables import reports as reports_table
from tests.test_openapi import check_response

GROUP = "https://kith.test/groups/bookclub"
API = "/api/kith/v1/groups/bookclub"
CHESS = "/api/kith/v1/groups/chess"
MOD = "https://kith.test/users/mod1"


class Api:
    """The test client, checking each answer against the OpenAPI description and never a 500."""

    def __init__(self, client, headers, world):
        self.client = client
        self.headers = headers
        self.world = world  # tests/fakes/world.py: its post/reply/join act for the members

    async def call(self, method, path, who="mod1", **kw):
        headers = self.headers[who] if isinstance(who, str) else who
        r = await self.client.request(method, path, headers=headers, **kw)
        assert r.status_code < 500, r.text
        check_response(method, r)
        return r

    async def get(self, path, who="mod1", **kw):
        return await self.call("GET", path, who, **kw)

    async def post(self, path, who="mod1", **kw):
        return await self.call("POST", path, who, **kw)

    async def patch(self, path, who="mod1", **kw):
        return await self.call("PATCH", path, who, **kw)

    async def delete(self, path, who="mod1", **kw):
        return await self.call("DELETE", path, who, **kw)


async def bearer(services, name, scopes="read write"):
    return {"Authorization": f"Bearer {(await create_user_token(services.db, name, scopes)).token}"}


@pytest.fixture
async def api(client, services, world):
    """The world's bookclub (owner mod1, moderator mod2, members alice and bob) with a second moderator,
    helper; nobody, the admin ada, and chess (owner chessmod)."""
    for name in ("helper", "nobody", "chessmod"):
        await create_user(services.db, name)
    await create_user(services.db, "ada", admin=True)
    await create_group(services.db, GroupSpec(name="chess", owner="chessmod"))
    async with services.db.transaction() as conn:
        await add_role(conn, world.group.id, (await get_user(conn, "helper")).id, "moderator")
    headers = {name: await bearer(services, name) for name in ("mod1", "helper", "nobody", "chessmod", "ada")}
    headers["mod1_read"] = await bearer(services, "mod1", "read")
    headers["mod1_write"] = await bearer(services, "mod1", "write")
    headers["mod1_admin"] = await bearer(services, "mod1", "admin:read admin:write")
    headers["write_reports"] = await bearer(services, "helper", "write:reports")
    headers["anonymous"] = {}
    return Api(client, headers, world)


def inner(received):
    """The activities a server got wrapped in the group's Announces."""
    return [r.activity["object"] for r in received if r.activity["type"] == "Announce" and r.signer == GROUP]


def of_type(received, kind):
    return [a for a in inner(received) if isinstance(a, dict) and a["type"] == kind]


async def state_of(services, uri):
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(posts).where(posts.c.uri == uri))).one()


async def log_rows(services):
    async with services.db.read() as conn:
        rows = (await conn.execute(sa.select(mod_log).order_by(mod_log.c.id))).all()
    return [(r.moderator, r.action, r.target, r.reason) for r in rows]


def next_link(response):
    match = re.search(r'<https://kith\.test([^>]+)>; rel="next"', response.headers.get("link", ""))
    return match.group(1) if match else None


# --------------------------------------------------------------------------- posts


async def test_remove_restore_lock_pin(api, client, services, worker, mastodon, social):
    note = await api.world.post(mastodon, "alice", "<p>off topic</p>")
    social.received.clear()

    r = await api.post(f"{API}/posts/remove", json={"uri": note["id"], "reason": "off topic"})
    assert r.status_code == 200
    assert r.json() == {
        "uri": note["id"],
        "state": "removed",
        "removed_reason": "off topic",
        "locked": False,
        "pinned": False,
    }
    await worker.drain()
    (delete,) = of_type(social.received, "Delete")
    assert (delete["actor"], delete["object"], delete["summary"]) == (MOD, note["id"], "off topic")
    assert any(r.activity["type"] == "Undo" for r in social.received)  # the plain Announce withdrawn

    r = await api.post(f"{API}/posts/remove", json={"uri": note["id"]})
    assert r.status_code == 400 and r.json() == {"error": "the post is not visible"}

    social.received.clear()
    r = await api.post(f"{API}/posts/restore", data={"uri": note["id"]}, who="helper")  # a form works too
    assert r.status_code == 200 and r.json()["state"] == "visible"
    await worker.drain()
    assert of_type(social.received, "Undo")[0]["object"]["type"] == "Delete"

    reply = await api.world.post(mastodon, "alice", "<p>a reply</p>", in_reply_to=note["id"])
    social.received.clear()
    r = await api.post(f"{API}/posts/lock", json={"uri": reply["id"], "reason": "heated"})
    assert r.status_code == 200 and r.json()["locked"] is True  # the reply's thread is locked
    assert (await state_of(services, note["id"])).locked
    r = await api.post(f"{API}/posts/pin", json={"uri": note["id"]})
    assert r.json()["pinned"] is True
    r = await api.post(f"{API}/posts/pin", json={"uri": reply["id"]})
    assert r.status_code == 400  # only a thread's first post
    await worker.drain()
    assert sorted(a["type"] for a in inner(social.received) if isinstance(a, dict)) == ["Add", "Lock"]
    assert of_type(social.received, "Add")[0]["target"] == f"{GROUP}/featured"

    social.received.clear()
    assert (await api.post(f"{API}/posts/unlock", json={"uri": note["id"]})).json()["locked"] is False
    assert (await api.post(f"{API}/posts/unpin", json={"uri": note["id"]})).json()["pinned"] is False
    await worker.drain()
    assert sorted(a["type"] for a in inner(social.received) if isinstance(a, dict)) == ["Remove", "Undo"]
    assert [row[:3] for row in await log_rows(services)] == [
        ("mod1", "remove", note["id"]),
        ("helper", "restore", note["id"]),
        ("mod1", "lock", note["id"]),
        ("mod1", "pin", note["id"]),
        ("mod1", "unlock", note["id"]),
        ("mod1", "unpin", note["id"]),
    ]


async def test_held_posts(api, client, services, worker, mastodon, social):
    r = await api.patch(f"{API}/guards", json={"hold_first_posts": 2, "keywords": ["casino"]})
    assert r.status_code == 200 and r.json()["hold_first_posts"] == 2
    first = await api.world.post(mastodon, "alice", "<p>hello</p>")
    second = await api.world.post(mastodon, "alice", "<p>again</p>")
    assert inner(social.received) == []

    r = await api.get(f"{API}/held")
    assert [p["uri"] for p in r.json()] == [second["id"], first["id"]]
    held = r.json()[1]
    assert held["author"] == mastodon.actor_uri("alice") and held["author_handle"] == "@alice@mastodon.example"
    assert held["content_html"] == "<p>hello</p>"
    r = await api.get(f"{API}/held", params={"limit": 1})
    assert len(r.json()) == 1 and next_link(r) == f"{API}/held?limit=1&max_id={r.json()[0]['id']}"
    assert [p["uri"] for p in (await api.get(next_link(r))).json()] == [first["id"]]

    r = await api.post(f"{API}/posts/approve", json={"uri": first["id"]})
    assert r.status_code == 200 and r.json()["state"] == "visible"
    r = await api.post(f"{API}/posts/reject", json={"uri": second["id"], "reason": "spam"})
    assert r.json() == {
        "uri": second["id"],
        "state": "removed",
        "removed_reason": "spam",
        "locked": False,
        "pinned": False,
    }
    await worker.drain()
    assert inner(social.received) == [first["id"]]  # only the approved post is announced
    assert (await api.get(f"{API}/held")).json() == []
    r = await api.post(f"{API}/posts/approve", json={"uri": first["id"]})
    assert r.status_code == 400 and "waiting" in r.json()["error"]


# --------------------------------------------------------------------------- guards, log, members


async def test_guards(api, services):
    r = await api.get(f"{API}/guards", who="mod1_read")
    assert r.json() == {
        "hold_first_posts": 0,
        "keywords": [],
        "link_domains": [],
        "filter_action": "hold",
        "member_posts_per_hour": 0,
        "instance_posts_per_hour": 0,
        "max_group_mentions": 0,
    }
    r = await api.patch(
        f"{API}/guards",
        json={"keywords": ["casino", " crypto "], "link_domains": ["spam.example"], "filter_action": "reject"},
        who="helper",
    )
    assert r.status_code == 200
    assert (r.json()["keywords"], r.json()["filter_action"]) == (["casino", "crypto"], "reject")
    r = await api.patch(f"{API}/guards", data={"member_posts_per_hour": "5"})
    assert r.json()["member_posts_per_hour"] == 5 and r.json()["keywords"] == ["casino", "crypto"]  # others kept
    async with services.db.read() as conn:
        group_id = (await conn.execute(sa.text("select id from local_actors where name = 'bookclub'"))).scalar_one()
        guards = await load_guards(conn, group_id)
    assert (guards.member_posts_per_hour, guards.link_domains, guards.filter_action) == (5, ("spam.example",), "reject")

    for body in (
        {},
        {"nonsense": 1},
        {"hold_first_posts": -1},
        {"hold_first_posts": True},
        {"hold_first_posts": "many"},
        {"max_group_mentions": 100_001},
        {"keywords": "casino"},
        {"keywords": [1, 2]},
        {"keywords": ["x"] * 501},
        {"filter_action": "explode"},
    ):
        r = await api.patch(f"{API}/guards", json=body)
        assert r.status_code == 422 and set(r.json()) == {"error"}, body
    r = await api.patch(
        f"{API}/guards", content=b"{nope", who={**api.headers["mod1"], "content-type": "application/json"}
    )
    assert r.status_code == 400
    r = await api.patch(f"{API}/guards", json=[1, 2])
    assert r.status_code == 400
    async with services.db.read() as conn:
        assert (await load_guards(conn, group_id)).member_posts_per_hour == 5  # nothing changed


async def test_modlog_names_moderators_and_pages(api, client, services, worker, mastodon):
    notes = [await api.world.post(mastodon, "alice", f"<p>{i}</p>") for i in range(3)]
    for note in notes:
        await api.post(f"{API}/posts/lock", json={"uri": note["id"], "reason": "quiet"}, who="helper")
    r = await api.get(f"{API}/modlog")
    assert [(e["moderator"], e["action"], e["target"]) for e in r.json()] == [
        ("helper", "lock", n["id"]) for n in reversed(notes)
    ]
    assert "link" not in r.headers
    page = await api.get(f"{API}/modlog", params={"limit": 2})
    assert len(page.json()) == 2
    rest = await api.get(next_link(page))
    assert [e["target"] for e in rest.json()] == [notes[0]["id"]]
    # The public log leaves the moderator out.
    public = (await client.get("/groups/bookclub/modlog", headers={"Accept": "application/json"})).json()
    assert "moderator" not in public[0]
    for bad in ({"max_id": "x"}, {"limit": "-1"}, {"limit": "1.5"}):
        assert (await api.get(f"{API}/modlog", params=bad)).status_code == 400


async def test_members_and_follow_requests(api, client, services, worker, mastodon):
    async with services.db.transaction() as conn:
        await conn.execute(sa.text("update local_actors set approval = 'manual' where name = 'bookclub'"))
    for name in ("newbie", "lurker"):
        mastodon.add_user(name)
        await mastodon.post(client, name, f"{GROUP}/inbox", mastodon.follow(name, GROUP))
    await worker.drain()
    mastodon.received.clear()

    r = await api.get(f"{API}/members", params={"state": "pending"})
    assert sorted(m["actor"] for m in r.json()) == [mastodon.actor_uri("lurker"), mastodon.actor_uri("newbie")]
    assert r.json()[0]["handle"] in ("@lurker@mastodon.example", "@newbie@mastodon.example")
    assert r.json()[0]["id"] > r.json()[1]["id"] and r.json()[0]["decided_at"] is None
    r = await api.get(f"{API}/members")
    assert len(r.json()) == 4
    r = await api.get(f"{API}/members", params={"state": "accepted", "limit": 1})
    assert len(r.json()) == 1 and "state=accepted" in next_link(r)
    assert (await api.get(f"{API}/members", params={"state": "banned"})).status_code == 400

    r = await api.post(f"{API}/follows/approve", json={"actor": mastodon.actor_uri("newbie")})
    assert r.status_code == 200 and r.json() == {"actor": mastodon.actor_uri("newbie"), "state": "accepted"}
    r = await api.post(f"{API}/follows/reject", json={"actor": mastodon.actor_uri("lurker")}, who="helper")
    assert r.json()["state"] == "rejected"
    await worker.drain()
    accepted = [x.activity for x in mastodon.of_type("Accept")]
    rejected = [x.activity for x in mastodon.of_type("Reject")]
    assert accepted[0]["object"]["actor"] == mastodon.actor_uri("newbie")
    assert rejected[0]["object"]["actor"] == mastodon.actor_uri("lurker")
    async with services.db.read() as conn:
        states = dict((await conn.execute(sa.select(follows.c.actor_id, follows.c.state))).all())
    assert sorted(states.values()) == ["accepted", "accepted", "accepted"]
    assert [row[1:3] for row in await log_rows(services)] == [
        ("approve_follow", mastodon.actor_uri("newbie")),
        ("reject_follow", mastodon.actor_uri("lurker")),
    ]

    r = await api.post(f"{API}/follows/approve", json={"actor": mastodon.actor_uri("newbie")})
    assert r.status_code == 400  # already a member
    r = await api.post(f"{API}/follows/approve", json={"actor": "https://nowhere.example/u/x"})
    assert r.status_code == 404
    r = await api.client.post(
        f"{API}/follows/maybe", json={"actor": mastodon.actor_uri("newbie")}, headers=api.headers["mod1"]
    )
    assert r.status_code == 404


# --------------------------------------------------------------------------- bans


async def test_ban_and_unban(api, client, services, worker, mastodon, social):
    spam = await api.world.post(mastodon, "alice", "<p>spam</p>")
    social.received.clear()
    alice = mastodon.actor_uri("alice")
    r = await api.post(
        f"{API}/bans", json={"actor": alice, "reason": "spam", "expires_in_days": 7, "remove_content": True}
    )
    assert r.status_code == 200, r.text
    ban = r.json()
    assert (ban["actor"], ban["reason"], ban["active"], ban["removed_posts"]) == (alice, "spam", True, 1)
    assert ban["expires_at"] is not None
    await worker.drain()
    (block,) = of_type(social.received, "Block")  # to the members
    assert (block["object"], block["target"], block["summary"], block["removeData"]) == (alice, GROUP, "spam", True)
    assert "endTime" in block
    assert any(isinstance(a, dict) and a["type"] == "Block" for a in inner(mastodon.received))  # and to alice's server
    assert (await state_of(services, spam["id"])).state == "removed"
    async with services.db.read() as conn:
        assert len((await conn.execute(sa.select(follows))).all()) == 1  # alice is no longer a member
        (row,) = (await conn.execute(sa.select(bans))).all()
    assert row.actor_uri == alice and row.reason == "spam"

    r = await api.get(f"{API}/bans")
    assert [(b["actor"], b["active"]) for b in r.json()] == [(alice, True)]

    social.received.clear()
    r = await api.delete(f"{API}/bans", params={"actor": alice})
    assert r.status_code == 200 and r.json() == {"actor": alice, "banned": False}
    await worker.drain()
    assert of_type(social.received, "Undo")[0]["object"]["type"] == "Block"
    r = await api.delete(f"{API}/bans", json={"actor": alice})
    assert r.status_code == 404

    # A permanent ban of someone we never heard of is fine; banning yourself is not.
    r = await api.post(f"{API}/bans", data={"actor": "https://far.example/u/x", "expires_in_days": "0"})
    assert r.status_code == 200 and r.json()["expires_at"] is None and r.json()["removed_posts"] == 0
    r = await api.post(f"{API}/bans", json={"actor": MOD})
    assert r.status_code == 422
    for body in (
        {},
        {"actor": ""},
        {"actor": "alice"},
        {"actor": "https://x.example/" + "a" * 2100},
        {"actor": alice, "expires_in_days": -1},
        {"actor": alice, "expires_in_days": "soon"},
        {"actor": alice, "expires_in_days": 1.5},
        {"actor": alice, "expires_in_days": 100_000},
        {"actor": alice, "remove_content": "perhaps"},
        {"actor": alice, "reason": "x" * 1001},
        {"actor": ["https://a.example/u/a"]},
    ):
        r = await api.post(f"{API}/bans", json=body)
        assert r.status_code == 422 and set(r.json()) == {"error"}, body
    assert (await api.delete(f"{API}/bans", json={})).status_code == 422


# --------------------------------------------------------------------------- moderators


async def test_moderators(api, client, services, worker, mastodon, social):
    r = await api.get(f"{API}/moderators", who="helper")
    assert r.json() == [
        {"who": "mod1", "uri": MOD, "role": "owner"},
        {"who": "helper", "uri": "https://kith.test/users/helper", "role": "moderator"},
        {"who": "mod2", "uri": "https://kith.test/users/mod2", "role": "moderator"},  # the world's
    ]
    bob = social.actor_uri("bob")
    r = await api.post(f"{API}/moderators", json={"who": bob})
    assert r.status_code == 200 and r.json()[-1] == {"who": bob, "uri": bob, "role": "remote"}
    r = await api.post(f"{API}/moderators", json={"who": "nobody"}, who="ada")  # an admin may too
    assert (
        r.status_code == 200
        and {"who": "nobody", "uri": "https://kith.test/users/nobody", "role": "moderator"} in r.json()
    )
    await worker.drain()
    adds = of_type(mastodon.received, "Add")
    assert sorted(a["object"] for a in adds) == ["https://kith.test/users/nobody", bob]
    assert {a["target"] for a in adds} == {f"{GROUP}/moderators"}

    # Only the owner (or an admin) appoints; a moderator may not.
    r = await api.post(f"{API}/moderators", json={"who": "chessmod"}, who="helper")
    assert r.status_code == 403 and "owner" in r.json()["error"]
    assert (await api.post(f"{API}/moderators", json={"who": "ghost"})).status_code == 404
    assert (await api.post(f"{API}/moderators", json={})).status_code == 422

    r = await api.delete(f"{API}/moderators", json={"who": bob})
    assert r.status_code == 200 and bob not in [m["who"] for m in r.json()]
    r = await api.delete(f"{API}/moderators", json={"who": "https://kith.test/users/nobody"})
    assert "nobody" not in [m["who"] for m in r.json()]
    assert (await api.delete(f"{API}/moderators", json={"who": bob})).status_code == 404
    assert (await api.delete(f"{API}/moderators", json={"who": "mod1"})).status_code == 422  # the owner stays
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(remote_moderators))).all() == []
        assert len((await conn.execute(sa.select(group_roles))).all()) == 4  # two owners, two moderators
    mastodon.received.clear()
    await worker.drain()
    assert sorted(a["object"] for a in of_type(mastodon.received, "Remove")) == ["https://kith.test/users/nobody", bob]


# --------------------------------------------------------------------------- reports


async def flag(client, worker, server, name, objects, comment="rule 1"):
    activity = {
        "id": server.new_id(),
        "type": "Flag",
        "actor": server.actor_uri(name),
        "object": objects,
        "content": comment,
    }
    r = await server.post(client, name, "https://kith.test/inbox", activity)
    assert r.status_code == 202
    await worker.drain()


async def test_group_reports_lifecycle(api, client, services, worker, mastodon, social):
    note = await api.world.post(mastodon, "alice", "<p>rude</p>")
    await flag(client, worker, social, "bob", [mastodon.actor_uri("alice"), note["id"]])
    r = await api.get(f"{API}/reports", who="helper")
    (report,) = r.json()
    assert report["reporter"] == social.actor_uri("bob") and report["target_posts"] == [note["id"]]
    assert report["state"] == "open" and report["comment"] == "rule 1"
    rid = report["id"]
    assert (await api.get(f"{API}/reports", params={"state": "resolved"})).json() == []
    assert (await api.get(f"{API}/reports", params={"state": "nonsense"})).status_code == 400
    # chess's moderator sees none of it, and cannot reach it through their own group either.
    assert (await api.get(f"{CHESS}/reports", who="chessmod")).json() == []
    assert (await api.post(f"{CHESS}/reports/{rid}/assign", who="chessmod")).status_code == 404

    r = await api.post(f"{API}/reports/{rid}/assign", who="helper")
    assert r.json()["state"] == "assigned" and r.json()["assigned_to"] is not None
    assert (await api.post(f"{API}/reports/{rid}/unassign")).json()["assigned_to"] is None
    assert (await api.post(f"{API}/reports/{rid}/reject")).json()["state"] == "rejected"
    assert (await api.post(f"{API}/reports/{rid}/reopen")).json()["state"] == "open"

    mastodon.received.clear()
    r = await api.post(f"{API}/reports/{rid}/forward")
    assert r.status_code == 200 and r.json()["forwarded_to"] == ["https://mastodon.example/inbox"]
    assert r.json()["forwarded"] is True
    await worker.drain()
    (sent,) = mastodon.of_type("Flag")
    assert sent.activity["actor"] == "https://kith.test/actor" and "bob" not in json.dumps(sent.activity)

    for body in ({"action": "explode"}, {"action": 3}, {"reason": "x" * 1001}):
        r = await api.post(f"{API}/reports/{rid}/resolve", json=body)
        assert r.status_code == 422, body
    social.received.clear()
    r = await api.post(f"{API}/reports/{rid}/resolve", json={"action": "remove", "reason": "rule 1"})
    assert r.status_code == 200 and (r.json()["state"], r.json()["action_taken"]) == ("resolved", "remove")
    await worker.drain()
    assert (await state_of(services, note["id"])).state == "removed"
    assert of_type(social.received, "Delete")[0]["object"] == note["id"]

    await flag(client, worker, social, "bob", [mastodon.actor_uri("alice")], "again")
    async with services.db.read() as conn:
        second = (await conn.execute(sa.select(reports_table.c.id).order_by(reports_table.c.id.desc()))).first().id
    # A report naming only an account is about no group: not found through this one.
    assert (await api.post(f"{API}/reports/{second}/resolve", json={"action": "ban"})).status_code == 404

    for path in (f"{API}/reports/999999/assign", f"{API}/reports/abc/assign", f"{API}/reports/{rid}/explode"):
        r = await api.client.post(path, headers=api.headers["mod1"])
        assert r.status_code == 404 and "error" in r.json(), path


async def test_resolve_by_banning(api, client, services, worker, mastodon, social):
    note = await api.world.post(mastodon, "alice", "<p>rude</p>")
    await flag(client, worker, social, "bob", [note["id"]])
    (report,) = (await api.get(f"{API}/reports")).json()
    r = await api.post(f"{API}/reports/{report['id']}/resolve", data={"action": "ban"})
    assert r.status_code == 200 and r.json()["action_taken"] == "ban"
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(bans.c.actor_uri))).scalar_one() == mastodon.actor_uri("alice")


async def test_report_remote_content(api, client, services, worker, mastodon):
    note = await api.world.post(mastodon, "alice", "<p>look</p>")
    r = await api.post("/api/kith/v1/reports", json={"uris": [note["id"]], "comment": "please look"}, who="helper")
    assert r.status_code == 200, r.text
    assert (r.json()["outgoing"], r.json()["forwarded"], r.json()["reporter"]) == (True, True, "helper")
    await worker.drain()
    (sent,) = mastodon.of_type("Flag")
    assert sent.activity["content"] == "please look" and "helper" not in json.dumps(sent.activity)
    assert sent.activity["object"] == [mastodon.actor_uri("alice"), note["id"]]

    r = await api.post("/api/kith/v1/reports", json={"uris": note["id"]}, who="write_reports")
    assert r.status_code == 200  # a single URI, and the write:reports scope is enough
    assert (await api.post("/api/kith/v1/reports", json={"uris": [note["id"]]}, who="nobody")).status_code == 403
    assert (await api.post("/api/kith/v1/reports", json={"uris": [note["id"]]}, who="chessmod")).status_code == 403
    # An admin may report an account; one that cannot be fetched is the caller's problem, not a 500.
    r = await api.post("/api/kith/v1/reports", json={"uris": ["https://mastodon.example/users/ghost"]}, who="ada")
    assert r.status_code == 422
    for body in (
        {},
        {"uris": []},
        {"uris": [1]},
        {"uris": ["not a uri"]},
        {"uris": {"a": 1}},
        {"uris": [note["id"]] * 21},
        {"uris": [note["id"]], "comment": "x" * 1001},
    ):
        r = await api.post("/api/kith/v1/reports", json=body)
        assert r.status_code == 422 and set(r.json()) == {"error"}, body
    assert (await api.post("/api/kith/v1/reports", json={"uris": [note["id"]]}, who="mod1_read")).status_code == 403
    assert (await api.post("/api/kith/v1/reports", json={"uris": [note["id"]]}, who="anonymous")).status_code == 401


# --------------------------------------------------------------------------- who may call

READS = ["modlog", "held", "guards", "members", "bans", "moderators", "reports"]
WRITES = [
    ("PATCH", "guards", {"hold_first_posts": 1}),
    ("POST", "follows/approve", {"actor": "https://mastodon.example/users/alice"}),
    ("POST", "posts/lock", {"uri": "https://mastodon.example/notes/x"}),
    ("POST", "bans", {"actor": "https://far.example/u/x"}),
    ("DELETE", "bans", {"actor": "https://far.example/u/x"}),
    ("POST", "moderators", {"who": "nobody"}),
    ("DELETE", "moderators", {"who": "helper"}),
    ("POST", "reports/1/assign", {}),
]


async def test_who_may_call(api, services):
    for who, read_status, write_status in (
        ("anonymous", 401, 401),
        ({"Authorization": "Bearer forged"}, 401, 401),
        ("nobody", 403, 403),  # not a moderator
        ("chessmod", 403, 403),  # another group's owner
        ("mod1_read", 200, 403),  # the scopes
        ("mod1_write", 403, None),
        ("mod1_admin", 403, 403),  # admin scopes are not read/write
    ):
        for what in READS:
            r = await api.get(f"{API}/{what}", who=who)
            assert r.status_code == read_status, (who, what, r.text)
            assert "error" in r.json() or read_status == 200
        for method, what, body in WRITES:
            r = await api.call(method, f"{API}/{what}", who=who, json=body)
            if write_status is None:
                assert r.status_code not in (401, 403), (who, what, r.text)
            else:
                assert r.status_code == write_status, (who, what, r.text)
    # An instance admin who leads no group may moderate any.
    for what in READS:
        assert (await api.get(f"{API}/{what}", who="ada")).status_code == 200
    assert (await api.patch(f"{API}/guards", who="ada", json={"hold_first_posts": 3})).status_code == 200
    # Unknown group: 404, for reading and acting alike.
    assert (await api.get("/api/kith/v1/groups/nosuch/modlog")).status_code == 404
    assert (
        await api.post("/api/kith/v1/groups/nosuch/posts/remove", json={"uri": "https://a.example/1"})
    ).status_code == 404
    # A post of another group is not found through this one.
    r = await api.post(f"{CHESS}/posts/remove", json={"uri": "https://mastodon.example/notes/x"}, who="chessmod")
    assert r.status_code == 404
    # Only the owner's write token acted; nobody refused above left a trace in the log.
    assert {row[0] for row in await log_rows(services)} == {"mod1"}


async def test_app_token_moderates_nothing(api, client):
    app = (
        await client.post(
            "/api/v1/apps", data={"client_name": "bot", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "scopes": "read"}
        )
    ).json()
    r = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "read",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
        },
    )
    r = await api.get(f"{API}/modlog", who={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert r.status_code == 403


async def test_bad_requests_are_4xx(api):
    json_headers = {**api.headers["mod1"], "content-type": "application/json"}
    for method, what in [(m, w) for m, w, _ in WRITES]:
        for content in (b"{", b"[]", b'"x"', b"\xff\xfe"):
            r = await api.client.request(method, f"{API}/{what}", content=content, headers=json_headers)
            assert r.status_code == 400 and set(r.json()) == {"error"}, (method, what, content)
        r = await api.client.request(method, f"{API}/{what}", content=b"x" * 70_000, headers=json_headers)
        assert r.status_code == 413
        r = await api.client.request(
            method, f"{API}/{what}", content=b"<a/>", headers={**json_headers, "content-type": "text/xml"}
        )
        assert r.status_code == 400
    for action in ("remove", "restore", "lock", "pin", "approve", "reject"):
        for body in (
            {},
            {"uri": ""},
            {"uri": 5},
            {"uri": "note-1"},
            {"uri": "https://a.example/n", "reason": "x" * 1001},
        ):
            r = await api.post(f"{API}/posts/{action}", json=body)
            assert r.status_code == 422, (action, body)
        r = await api.post(f"{API}/posts/{action}", json={"uri": "https://mastodon.example/notes/unknown"})
        assert r.status_code == 404
    r = await api.client.post(f"{API}/posts/delete", json={"uri": "https://a.example/n"}, headers=api.headers["mod1"])
    assert r.status_code == 404
    r = await api.client.put(f"{API}/guards", json={}, headers=api.headers["mod1"])
    assert r.status_code == 405
    for decision in ("approve", "reject"):
        assert (await api.post(f"{API}/follows/{decision}", json={})).status_code == 422


async def test_refusals_name_the_field(api, services):
    """Input is validated through the request models; the reason names the field and what is wrong."""
    alice = "https://mastodon.example/users/alice"
    for method, path, kw, status, reason in (
        ("POST", "bans", {"json": {"actor": "alice"}}, 422, "actor must be an http(s) URI"),
        ("POST", "bans", {"json": {}}, 422, "actor is required"),
        (
            "POST",
            "bans",
            {"data": {"actor": alice, "expires_in_days": "soon"}},
            422,
            "expires_in_days must be a whole number",
        ),
        (
            "POST",
            "bans",
            {"json": {"actor": alice, "expires_in_days": 40_000}},
            422,
            "expires_in_days must be at most 36500",
        ),
        (
            "POST",
            "bans",
            {"json": {"actor": alice, "remove_content": "perhaps"}},
            422,
            "remove_content must be true or false",
        ),
        (
            "POST",
            "posts/lock",
            {"json": {"uri": alice, "reason": "x" * 1001}},
            422,
            "reason is longer than 1000 characters",
        ),
        ("PATCH", "guards", {"json": {}}, 422, "name at least one guard to change"),
        ("PATCH", "guards", {"json": {"nonsense": 1}}, 422, "nonsense is not accepted here"),
        ("PATCH", "guards", {"json": {"keywords": ["a", 2]}}, 422, "keywords.1 must be a string"),
        ("PATCH", "guards", {"json": {"filter_action": "explode"}}, 422, "filter_action must be 'hold' or 'reject'"),
        ("GET", "modlog", {"params": {"limit": "x"}}, 400, "limit must be a whole number"),
        ("GET", "members", {"params": {"state": "banned"}}, 400, "state must be 'pending' or 'accepted'"),
        ("POST", "reports/abc/assign", {}, 404, "id must be a whole number"),
    ):
        r = await api.call(method, f"{API}/{path}", **kw)
        assert (r.status_code, r.json()) == (status, {"error": reason}), (method, path, kw)
    r = await api.post("/api/kith/v1/reports", json={"uris": [alice, "not a uri"]})
    assert (r.status_code, r.json()) == (422, {"error": "uris.1 must be an http(s) URI"})
    r = await api.client.post(f"{API}/posts/delete", json={"uri": alice}, headers=api.headers["mod1"])
    assert r.status_code == 404 and r.json()["error"].startswith("action must be 'remove', 'restore'")
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(bans))).all() == []  # nothing refused left a trace
    assert await log_rows(services) == []
