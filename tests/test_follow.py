"""Following a group end to end: a fake Mastodon follows, receives a verifiable Accept, unfollows."""

import json

import pytest

from server.errors import BadRequest, NotFound
from server.groups.following import count_members, decide_follow, list_follows
from server.groups.membership import GroupSpec, create_group, get_group

GROUP = "https://kith.test/groups/bookclub"
AP = {"Accept": "application/activity+json"}


async def members(services) -> int:
    async with services.db.read() as conn:
        return await count_members(conn, (await get_group(conn, "bookclub")).id)


async def followers_total(client) -> int:
    return (await client.get(f"{GROUP}/followers", headers=AP)).json()["totalItems"]


async def test_auto_follow_gets_verifiable_accept_and_undo(client, services, worker, mastodon):
    await create_group(services.db, GroupSpec(name="bookclub"))
    follow = mastodon.follow("alice", GROUP)
    assert (await mastodon.post(client, "alice", f"{GROUP}/inbox", follow)).status_code == 202
    await worker.drain()
    accepts = mastodon.of_type("Accept")
    assert len(accepts) == 1
    accept = accepts[0]
    assert accept.signer == GROUP  # bovine verified our signature with the group's published key
    assert accept.path == "/inbox"  # delivered to the shared inbox
    assert accept.activity["actor"] == GROUP
    assert accept.activity["object"] == {k: follow[k] for k in ("id", "type", "actor", "object")}
    assert accept.activity["id"].startswith("https://kith.test/activities/")
    sig = accept.headers["signature"]
    assert 'keyId="https://kith.test/groups/bookclub#main-key"' in sig and 'algorithm="rsa-sha256"' in sig
    assert 'headers="(request-target) host date digest content-type"' in sig
    assert await followers_total(client) == 1

    # A repeated Follow is idempotent: still one member, and the Accept is sent again.
    again = mastodon.follow("alice", GROUP)
    assert (await mastodon.post(client, "alice", "https://kith.test/inbox", again)).status_code == 202
    await worker.drain()
    assert await members(services) == 1
    assert len(mastodon.of_type("Accept")) == 2
    assert mastodon.of_type("Accept")[1].activity["object"]["id"] == again["id"]

    # Undo(Follow) removes the member.
    undo = mastodon.undo("alice", again)
    assert (await mastodon.post(client, "alice", "https://kith.test/inbox", undo)).status_code == 202
    await worker.drain()
    assert await followers_total(client) == 0


async def test_undo_of_someone_elses_follow_is_ignored(client, services, worker, mastodon):
    await create_group(services.db, GroupSpec(name="bookclub"))
    mastodon.add_user("mallory")
    follow = mastodon.follow("alice", GROUP)
    await mastodon.post(client, "alice", f"{GROUP}/inbox", follow)
    await worker.drain()
    forged = mastodon.undo("mallory", follow)  # mallory signs an Undo of alice's Follow
    assert (await mastodon.post(client, "mallory", "https://kith.test/inbox", forged)).status_code == 202
    await worker.drain()
    assert await members(services) == 1


async def test_manual_approval(client, services, worker, mastodon):
    await create_group(services.db, GroupSpec(name="bookclub", approval="manual"))
    mastodon.add_user("bob")
    follow_a = mastodon.follow("alice", GROUP)
    follow_b = mastodon.follow("bob", GROUP)
    await mastodon.post(client, "alice", f"{GROUP}/inbox", follow_a)
    await mastodon.post(client, "bob", f"{GROUP}/inbox", follow_b)
    await worker.drain()
    assert mastodon.received == []  # nothing decided yet
    async with services.db.read() as conn:
        pending = await list_follows(conn, (await get_group(conn, "bookclub")).id, "pending")
    # Two actors' Follows run side by side on the worker: either may be stored first.
    assert sorted(p.actor_uri for p in pending) == [mastodon.actor_uri("alice"), mastodon.actor_uri("bob")]
    assert await members(services) == 0

    assert await decide_follow(services, "bookclub", mastodon.actor_uri("alice"), approve=True) == "accepted"
    assert await decide_follow(services, "bookclub", mastodon.actor_uri("bob"), approve=False) == "rejected"
    await worker.drain()
    (accept,) = mastodon.of_type("Accept")
    (reject,) = mastodon.of_type("Reject")
    assert accept.signer == GROUP and accept.activity["object"]["id"] == follow_a["id"]
    assert reject.signer == GROUP and reject.activity["object"]["id"] == follow_b["id"]
    assert await members(services) == 1
    with pytest.raises(BadRequest):
        await decide_follow(services, "bookclub", mastodon.actor_uri("alice"), approve=True)
    with pytest.raises(NotFound):
        await decide_follow(services, "bookclub", mastodon.actor_uri("bob"), approve=True)


async def test_actor_update_and_self_delete(client, services, worker, mastodon):
    await create_group(services.db, GroupSpec(name="bookclub"))
    await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    await worker.drain()
    doc = mastodon.actor_doc("alice")
    doc["name"] = "Alice Renamed"
    update = {"id": mastodon.new_id(), "type": "Update", "actor": doc["id"], "object": doc}
    assert (await mastodon.post(client, "alice", "https://kith.test/inbox", update)).status_code == 202
    await worker.drain()
    assert (await services.actors.cached(doc["id"])).name == "Alice Renamed"

    delete = {"id": mastodon.new_id(), "type": "Delete", "actor": doc["id"], "object": doc["id"]}
    assert (await mastodon.post(client, "alice", "https://kith.test/inbox", delete)).status_code == 202
    await worker.drain()
    assert await services.actors.cached(doc["id"]) is None
    assert await members(services) == 0


async def test_accept_body_is_json_activity(client, services, worker, mastodon):
    await create_group(services.db, GroupSpec(name="bookclub"))
    await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    await worker.drain()
    accept = mastodon.of_type("Accept")[0]
    assert accept.headers["content-type"] == "application/activity+json"
    assert json.loads(json.dumps(accept.activity))["to"] == [mastodon.actor_uri("alice")]


async def test_accepted_activity_survives_a_crash(settings, client, services, mastodon, network):
    """202 then crash before processing: a restarted worker (new process, new engine) picks it up."""
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from server.jobs import build_worker
    from server.services import Services
    from server.tables import inbox_items

    await create_group(services.db, GroupSpec(name="bookclub"))
    follow = mastodon.follow("alice", GROUP)
    assert (await mastodon.post(client, "alice", f"{GROUP}/inbox", follow)).status_code == 202
    # A worker claims the item and dies (SIGKILL) before finishing it.
    claimed = await services.db.claim_due(inbox_items, now=datetime.now(UTC), limit=10, lease=timedelta(minutes=5))
    assert len(claimed) == 1
    restarted = await Services.open(settings, transport=network, migrate=False)
    try:
        worker = build_worker(restarted)
        await worker.drain()
        assert mastodon.of_type("Accept") == []  # still leased by the dead worker
        async with restarted.db.transaction() as conn:
            await conn.execute(sa.update(inbox_items).values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))
        await worker.drain()
    finally:
        await restarted.close()
    assert [a.activity["object"]["id"] for a in mastodon.of_type("Accept")] == [follow["id"]]
