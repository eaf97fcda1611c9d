"""Group conversations end to end in the test world (tests/fakes/world.py): two fake remote servers, real signing."""

import pytest
import sqlalchemy as sa

from server.groups.membership import GroupSpec, create_group
from server.tables import posts

GROUP = "https://kith.test/groups/bookclub"
AP = {"Accept": "application/activity+json"}


async def stored_posts(services):
    async with services.db.read() as conn:
        return list((await conn.execute(sa.select(posts).order_by(posts.c.id))).all())


async def test_post_reply_delete_reach_every_member(client, services, worker, mastodon, social, world):
    note = mastodon.note("alice", "<p>Reading <b>Dune</b> this month!<script>x()</script></p>", to_group=GROUP)
    create = mastodon.create("alice", note)
    assert (await mastodon.post(client, "alice", "https://kith.test/inbox", create)).status_code == 202
    await worker.drain()

    # Both members' servers get Announce(Create) and Announce(Note), signed by the group.
    for server in (mastodon, social):
        announces = server.of_type("Announce")
        assert len(announces) == 2, server.host
        assert all(a.signer == GROUP for a in announces)
        wrapped, plain = sorted(announces, key=lambda a: isinstance(a.activity["object"], str))
        assert wrapped.activity["object"] == create  # wrapped unchanged
        assert plain.activity["object"] == note["id"]
        for a in announces:
            assert a.activity["to"] == ["https://www.w3.org/ns/activitystreams#Public"]
            assert a.activity["cc"] == [f"{GROUP}/followers"] and a.activity["audience"] == GROUP
    (post,) = await stored_posts(services)
    assert post.content_html == "<p>Reading <b>Dune</b> this month!</p>"  # sanitised

    # The Announces dereference, and the outbox lists them newest first.
    uid = plain.activity["id"].rsplit("/", 1)[1]
    r = await client.get(f"/activities/{uid}", headers=AP)
    assert r.status_code == 200 and r.json()["object"] == note["id"]
    outbox = (await client.get(f"{GROUP}/outbox", headers=AP)).json()
    assert outbox["totalItems"] == 2
    page = (await client.get(outbox["first"], headers=AP)).json()
    assert [i["id"] for i in page["orderedItems"]] == [plain.activity["id"], wrapped.activity["id"]]

    # Bob replies; it threads under Alice's post and reaches Alice's server wrapped.
    mastodon.received.clear()
    reply = await world.reply(social, "bob", note, "<p>Great pick.</p>")
    (announce,) = mastodon.of_type("Announce")  # replies travel wrapped only
    assert announce.activity["object"]["object"]["id"] == reply["id"]
    root, child = await stored_posts(services)
    assert child.parent_id == root.id and child.root_id == root.id and root.replies == 1
    thread = (await client.get("/api/kith/v1/groups/bookclub/threads")).json()["threads"][0]
    assert thread["id"] == note["id"] and thread["replies"][0]["id"] == reply["id"]
    assert thread["author"]["handle"] == "@alice@mastodon.example"

    # Alice deletes her post: members are told, the tombstone stays, our Announces answer 410.
    social.received.clear()
    delete = {
        "id": note["id"] + "#delete",
        "type": "Delete",
        "actor": mastodon.actor_uri("alice"),
        "object": {"id": note["id"], "type": "Tombstone"},
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
    }
    assert (await mastodon.post(client, "alice", "https://kith.test/inbox", delete)).status_code == 202
    await worker.drain()
    (announce,) = social.of_type("Announce")
    assert announce.activity["object"] == delete and announce.signer == GROUP
    r = await client.get(f"/activities/{uid}", headers=AP)
    assert r.status_code == 410 and r.json()["type"] == "Tombstone"
    root = (await stored_posts(services))[0]
    assert root.state == "deleted" and root.content_html == ""
    page = (await client.get(f"{GROUP}/outbox?page=true", headers=AP)).json()
    assert [i["object"]["type"] for i in page["orderedItems"]] == ["Delete", "Create"]  # the post's are gone
    page = await client.get("/groups/bookclub", headers={"Accept": "text/html"})
    assert "Reading" not in page.text


async def test_followers_only_post_is_never_redistributed(client, services, worker, mastodon, social, world):
    note = mastodon.note("alice", "<p>just for my followers</p>", to_group=GROUP, public=False)
    assert (
        await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    ).status_code == 202
    await worker.drain()
    assert social.received == [] and mastodon.received == []
    assert await stored_posts(services) == []
    page = await client.get("/groups/bookclub", headers={"Accept": "text/html"})
    assert "just for my followers" not in page.text


async def test_non_member_is_refused_with_reject(client, services, worker, mastodon, social, world):
    mastodon.add_user("carol")
    note = mastodon.note("carol", "<p>spam</p>", to_group=GROUP)
    create = mastodon.create("carol", note)
    await mastodon.post(client, "carol", "https://kith.test/inbox", create)
    await worker.drain()
    assert social.of_type("Announce") == []
    (reject,) = mastodon.of_type("Reject")
    assert reject.activity["object"] == create["id"] and reject.signer == GROUP
    assert await stored_posts(services) == []


async def test_create_of_another_servers_post_is_refused(client, services, worker, mastodon, social, world):
    real = social.note("bob", "<p>the real words</p>", to_group=GROUP)
    forged = {**real, "content": "<p>forged words</p>"}
    # Alice's server sends a Create carrying bob's note id with other content; and by reference.
    for obj in (forged, real["id"]):
        create = {
            "id": mastodon.new_id(),
            "type": "Create",
            "actor": mastodon.actor_uri("alice"),
            "object": obj,
            "to": real["to"],
            "cc": real["cc"],
        }
        await mastodon.post(client, "alice", "https://kith.test/inbox", create)
    await worker.drain()
    # Only bob may Create bob's post: nothing stored, nothing passed on.
    assert await stored_posts(services) == []
    assert social.of_type("Announce") == [] and mastodon.of_type("Announce") == []


@pytest.fixture
async def zed(mastodon):
    """A non-member on alice's own server."""
    return mastodon.add_user("zed")


def by_zed(mastodon, kind: str, obj) -> dict:
    return {"id": mastodon.new_id(), "type": kind, "actor": mastodon.actor_uri("zed"), "object": obj}


async def test_a_neighbour_cannot_create_a_members_post(client, services, worker, mastodon, social, world, zed):
    """Same server, so same origin: still only the author may Create the post (Lemmy's rule)."""
    note = mastodon.note("alice", "<p>words put in alice's mouth</p>", to_group=GROUP)  # served as alice's
    for obj in (note, note["id"]):  # embedded, and by reference (then fetched: still alice's)
        create = {**by_zed(mastodon, "Create", obj), "to": note["to"], "cc": note["cc"]}
        assert (await mastodon.post(client, "zed", "https://kith.test/inbox", create)).status_code == 202
    await worker.drain()
    assert await stored_posts(services) == []
    assert social.of_type("Announce") == [] and mastodon.of_type("Announce") == []

    # Alice's own Create of the same post still goes through.
    await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    await worker.drain()
    (post,) = await stored_posts(services)
    assert post.uri == note["id"] and post.author_uri == mastodon.actor_uri("alice") and post.state == "visible"
    assert len(social.of_type("Announce")) == 2


async def test_a_neighbour_cannot_update_a_members_post(client, services, worker, mastodon, social, world, zed):
    note = mastodon.note("alice", "<p>v1</p>", to_group=GROUP)
    await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    await worker.drain()
    social.received.clear()
    # As alice's (attributedTo kept), and as zed's own (attributedTo changed).
    for author in (mastodon.actor_uri("alice"), zed):
        update = by_zed(mastodon, "Update", {**note, "attributedTo": author, "content": "<p>defaced</p>"})
        assert (await mastodon.post(client, "zed", "https://kith.test/inbox", update)).status_code == 202
    await worker.drain()
    (post,) = await stored_posts(services)
    assert post.content_html == "<p>v1</p>" and post.author_uri == mastodon.actor_uri("alice")
    assert social.of_type("Announce") == []


async def test_a_neighbours_delete_does_not_block_the_authors_create(
    client, services, worker, mastodon, social, world, zed
):
    """A Delete that comes before its object binds only whoever sent it."""
    note = mastodon.note("alice", "<p>not zed's to delete</p>", to_group=GROUP)
    await mastodon.post(client, "zed", "https://kith.test/inbox", by_zed(mastodon, "Delete", note["id"]))
    await worker.drain()
    await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    await worker.drain()
    (post,) = await stored_posts(services)
    assert post.uri == note["id"] and post.state == "visible"
    announced = [a.activity["object"] for a in social.of_type("Announce")]
    assert sorted(announced, key=str) == sorted([note["id"], mastodon.create("alice", note)], key=str)


async def test_the_authors_delete_outranks_a_neighbours(client, services, worker, mastodon, social, world, zed):
    """Zed deletes alice's post first, then alice does, then her Create arrives: her Delete wins."""
    note = mastodon.note("alice", "<p>oops</p>", to_group=GROUP)
    await mastodon.post(client, "zed", "https://kith.test/inbox", by_zed(mastodon, "Delete", note["id"]))
    await worker.drain()
    delete = {"id": note["id"] + "#delete", "type": "Delete", "actor": mastodon.actor_uri("alice")}
    await mastodon.post(client, "alice", "https://kith.test/inbox", {**delete, "object": note["id"]})
    await worker.drain()
    await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    await worker.drain()
    assert await stored_posts(services) == []
    assert social.of_type("Announce") == []


async def test_spoofed_create_of_missing_object_is_dropped(client, services, worker, mastodon, social, world):
    forged = {
        "id": "https://social.example/notes/nothere",
        "type": "Note",
        "attributedTo": social.actor_uri("bob"),
        "content": "<p>lies</p>",
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "cc": [GROUP],
    }
    create = {"id": mastodon.new_id(), "type": "Create", "actor": mastodon.actor_uri("alice"), "object": forged}
    await mastodon.post(client, "alice", "https://kith.test/inbox", create)
    await worker.drain()
    assert await stored_posts(services) == []
    assert social.of_type("Announce") == []


async def test_announce_with_forged_content_is_refetched(client, services, worker, mastodon, social, world):
    real = social.note("bob", "<p>original</p>", to_group=GROUP)
    forged = {**real, "content": "<p>forged inside an Announce</p>"}
    boost = {
        "id": mastodon.new_id(),
        "type": "Announce",
        "actor": mastodon.actor_uri("alice"),
        "object": forged,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
    }
    await mastodon.post(client, "alice", "https://kith.test/inbox", boost)
    await worker.drain()
    (post,) = await stored_posts(services)
    assert post.content_html == "<p>original</p>"


async def test_announced_post_attributed_off_its_origin_is_refused(
    client, services, worker, network, mastodon, social, world
):
    """Content seen through an Announce is credited to its attributedTo, which must be on its id's server."""
    note = social.note("bob", "<p>alice never wrote this</p>", to_group=GROUP)
    note["attributedTo"] = mastodon.actor_uri("alice")  # served so by social.example
    boost = {
        "id": social.new_id(),
        "type": "Announce",
        "actor": social.actor_uri("bob"),
        "object": note["id"],
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "cc": [GROUP],
    }
    assert (await social.post(client, "bob", "https://kith.test/inbox", boost)).status_code == 202
    await worker.drain()
    assert note["id"] in [str(r.url) for r in network.requests]  # fetched from its origin, then refused
    assert await stored_posts(services) == []
    assert mastodon.of_type("Announce") == []


async def test_update_from_non_author_is_refused(client, services, worker, mastodon, social, world):
    note = mastodon.note("alice", "<p>v1</p>", to_group=GROUP)
    await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    await worker.drain()
    mastodon.add_user("mallory")
    for actor, server in (("mallory", mastodon), ("bob", social)):
        update = {
            "id": server.new_id(),
            "type": "Update",
            "actor": server.actor_uri(actor),
            "object": {**note, "content": "<p>defaced</p>"},
        }
        assert (await server.post(client, actor, "https://kith.test/inbox", update)).status_code == 202
    delete = {"id": social.new_id(), "type": "Delete", "actor": social.actor_uri("bob"), "object": note["id"]}
    await social.post(client, "bob", "https://kith.test/inbox", delete)
    await worker.drain()
    (post,) = await stored_posts(services)
    assert post.content_html == "<p>v1</p>" and post.state == "visible"
    # The author's own Update is applied and passed on.
    social.received.clear()
    update = {
        "id": mastodon.new_id(),
        "type": "Update",
        "actor": mastodon.actor_uri("alice"),
        "object": {**note, "content": "<p>v2</p>", "updated": "2026-11-26T11:00:00Z"},
    }
    await mastodon.post(client, "alice", "https://kith.test/inbox", update)
    await worker.drain()
    (post,) = await stored_posts(services)
    assert post.content_html == "<p>v2</p>"
    assert [a.activity["object"]["id"] for a in social.of_type("Announce")] == [update["id"]]


async def test_like_and_undo_counted_and_passed_on(client, services, worker, mastodon, social, world):
    note = mastodon.note("alice", "<p>like me</p>", to_group=GROUP)
    await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    await worker.drain()
    like = {"id": social.new_id(), "type": "Like", "actor": social.actor_uri("bob"), "object": note["id"]}
    for _ in range(2):  # a repeated Like counts once
        await social.post(client, "bob", "https://kith.test/inbox", {**like, "id": social.new_id()} if _ else like)
    await worker.drain()
    (post,) = await stored_posts(services)
    assert post.likes == 1
    undo = {"id": social.new_id(), "type": "Undo", "actor": social.actor_uri("bob"), "object": like}
    mastodon.received.clear()
    r = await social.post(client, "bob", "https://kith.test/inbox", undo)
    assert r.status_code == 202, r.text
    await worker.drain()
    (post,) = await stored_posts(services)
    assert post.likes == 0
    assert [a.activity["object"]["type"] for a in mastodon.of_type("Announce")] == ["Undo"]


async def test_delete_before_create_leaves_a_tombstone(client, services, worker, mastodon, social, world):
    """Deliveries can overtake each other: a Delete that arrives first still wins."""
    note = mastodon.note("alice", "<p>oops</p>", to_group=GROUP)
    delete = {
        "id": note["id"] + "#delete",
        "type": "Delete",
        "actor": mastodon.actor_uri("alice"),
        "object": note["id"],
    }
    await mastodon.post(client, "alice", "https://kith.test/inbox", delete)
    await worker.drain()
    await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    await worker.drain()
    assert await stored_posts(services) == []
    assert social.of_type("Announce") == []


async def test_an_actors_activities_run_in_order_within_a_batch(client, services, worker, mastodon, social, world):
    note = mastodon.note("alice", "<p>short-lived</p>", to_group=GROUP)
    delete = {
        "id": note["id"] + "#delete",
        "type": "Delete",
        "actor": mastodon.actor_uri("alice"),
        "object": note["id"],
    }
    await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    await mastodon.post(client, "alice", "https://kith.test/inbox", delete)
    await worker.drain()  # both claimed in one batch
    (post,) = await stored_posts(services)
    assert post.state == "deleted"


async def test_threads_page_by_keyset(client, services):
    """25 threads: a first page of 20 and a second of 5, newest activity first, none twice."""
    from datetime import UTC, datetime, timedelta

    from server.federation.objects import parse_post
    from server.groups.posts import insert_post

    group = await create_group(services.db, GroupSpec(name="bookclub"))
    base = datetime(2026, 1, 1, tzinfo=UTC)
    async with services.db.transaction() as conn:
        for i in range(25):
            obj = {
                "id": f"https://a.example/n/{i}",
                "type": "Note",
                "attributedTo": "https://a.example/u",
                "content": f"<p>{i}</p>",
                "to": ["https://www.w3.org/ns/activitystreams#Public"],
                "published": (base + timedelta(minutes=i % 7, seconds=i)).isoformat(),
            }
            await insert_post(conn, group_id=group.id, env=parse_post(obj), raw=obj, author_id=None, parent=None)
    first = (await client.get("/api/kith/v1/groups/bookclub/threads")).json()
    second = (await client.get("/api/kith/v1/groups/bookclub/threads", params={"before": first["next"]})).json()
    ids = [t["id"] for t in first["threads"] + second["threads"]]
    assert len(first["threads"]) == 20 and len(second["threads"]) == 5 and second["next"] is None
    assert len(set(ids)) == 25
    times = [t["published"] for t in first["threads"] + second["threads"]]
    assert times == sorted(times, reverse=True)
    assert (await client.get("/api/kith/v1/groups/bookclub/threads", params={"before": "junk"})).status_code == 400
