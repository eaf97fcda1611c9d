"""The welcome: one direct message to each new member, to them alone, never twice within 30 days."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from server.accounts import create_user
from server.federation.vocab import is_public
from server.groups.following import decide_follow
from server.groups.membership import GroupSpec, create_group
from server.moderation.actions import group_and_moderator
from server.moderation.profiles import ProfileEdit, edit_profile
from server.tables import welcomes
from server.types import utcnow

GROUP = "https://kith.test/groups/readers"


async def make_group(services, *, approval: str = "auto", welcome: str = "Glad you are here. Say hello!") -> None:
    await create_user(services.db, "owner")
    spec = GroupSpec(name="readers", owner="owner", approval=approval, rules="Be kind.\nNo spoilers.")
    await create_group(services.db, spec)
    group, by = await group_and_moderator(services, "readers", "owner")
    await edit_profile(services, group, ProfileEdit(welcome=welcome), by=by)


async def follow(client, worker, mastodon, name: str) -> dict:
    activity = mastodon.follow(name, GROUP)
    assert (await mastodon.post(client, name, f"{GROUP}/inbox", activity)).status_code == 202
    await worker.drain()
    return activity


def welcomes_received(mastodon):
    return [r for r in mastodon.of_type("Create") if r.activity["actor"] == GROUP]


async def test_a_new_member_gets_one_private_welcome_that_only_they_can_read(client, services, worker, mastodon):
    await make_group(services)
    mastodon.add_user("bob")
    first = await follow(client, worker, mastodon, "alice")
    [welcome] = welcomes_received(mastodon)
    alice = mastodon.actor_uri("alice")
    assert welcome.signer == GROUP and welcome.path == "/users/alice/inbox"  # her own inbox, not the shared one
    note = welcome.activity["object"]
    assert welcome.activity["to"] == [alice] and note["to"] == [alice] and note["cc"] == []
    assert not is_public(welcome.activity) and not is_public(note)
    assert note["tag"] == [{"type": "Mention", "href": alice, "name": "@alice@mastodon.example"}]
    assert "Glad you are here." in note["content"] and "<li>No spoilers.</li>" in note["content"]

    # Its id dereferences for alice alone (a signed GET), for nobody else.
    for activity_id in (note["id"], welcome.activity["id"]):
        assert (await client.get(activity_id, headers={"Accept": "application/activity+json"})).status_code == 404
        assert (await mastodon.signed_get(client, "bob", activity_id)).status_code == 404
        r = await mastodon.signed_get(client, "alice", activity_id)
        assert r.status_code == 200 and r.json()["id"] == activity_id
    outbox = (await client.get(f"{GROUP}/outbox?page=true", headers={"Accept": "application/activity+json"})).text
    assert note["id"] not in outbox

    # Leaving and following again within 30 days: no second welcome.
    assert (await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.undo("alice", first))).status_code == 202
    await worker.drain()
    mastodon.received.clear()
    await follow(client, worker, mastodon, "alice")
    assert mastodon.of_type("Accept") and welcomes_received(mastodon) == []

    # A month later, a returning member is welcomed again.
    async with services.db.transaction() as conn:
        await conn.execute(sa.update(welcomes).values(sent_at=utcnow() - timedelta(days=31)))
    await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.undo("alice", first))
    await worker.drain()
    mastodon.received.clear()
    await follow(client, worker, mastodon, "alice")
    assert len(welcomes_received(mastodon)) == 1


async def test_manual_groups_welcome_on_approval_and_a_group_can_turn_it_off(client, services, worker, mastodon):
    await make_group(services, approval="manual")
    mastodon.add_user("bob")
    await follow(client, worker, mastodon, "alice")
    await follow(client, worker, mastodon, "bob")
    assert welcomes_received(mastodon) == []  # pending: not a member yet
    await decide_follow(services, "readers", mastodon.actor_uri("alice"), approve=True)
    await worker.drain()
    assert [w.path for w in welcomes_received(mastodon)] == ["/users/alice/inbox"]

    group, by = await group_and_moderator(services, "readers", "owner")
    await edit_profile(services, group, ProfileEdit(welcome_enabled=False), by=by)
    mastodon.received.clear()
    await decide_follow(services, "readers", mastodon.actor_uri("bob"), approve=True)
    await worker.drain()
    assert mastodon.of_type("Accept") and welcomes_received(mastodon) == []
