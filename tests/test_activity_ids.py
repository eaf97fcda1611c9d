"""Every activity the group sends dereferences at its id (issue 12, item 11), except what is not public.

microblog.pub re-fetches, by its id, every activity an Announce wraps: a moderator's Delete
that answered 404 there never took effect. Reports (and direct messages) answer 404 to
anyone but their addressees.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from server.accounts import create_user
from server.groups.membership import GroupSpec, create_group, get_group
from server.moderation import actions, reports

GROUP = "https://kith.test/groups/bookclub"
AP = {"Accept": "application/activity+json"}


def path(uri: str) -> str:
    return urlsplit(uri).path


async def test_accept_and_reject_dereference(client, services, worker, mastodon):
    await create_group(services.db, GroupSpec(name="bookclub", approval="manual"))
    mastodon.add_user("bob")
    for name in ("alice", "bob"):
        await mastodon.post(client, name, f"{GROUP}/inbox", mastodon.follow(name, GROUP))
    await worker.drain()
    await actions.decide_follow_request(
        services, await _group(services), mastodon.actor_uri("alice"), True, by=await _mod(services)
    )
    await actions.decide_follow_request(
        services, await _group(services), mastodon.actor_uri("bob"), False, by=await _mod(services)
    )
    await worker.drain()
    for kind in ("Accept", "Reject"):
        (sent,) = mastodon.of_type(kind)
        response = await client.get(path(sent.activity["id"]), headers=AP)
        assert response.status_code == 200, (kind, response.text)
        assert response.json()["id"] == sent.activity["id"] and response.json()["type"] == kind


async def test_what_an_announce_wraps_dereferences(client, services, worker, mastodon):
    await create_group(services.db, GroupSpec(name="bookclub"))
    await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    note = mastodon.note("alice", "<p>hello</p>", to_group=GROUP)
    await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    await worker.drain()
    mastodon.received.clear()
    await actions.remove_post(services, await _group(services), note["id"], by=await _mod(services), reason="spam")
    await worker.drain()
    wrapped = [r.activity["object"] for r in mastodon.of_type("Announce") if isinstance(r.activity["object"], dict)]
    (delete,) = [w for w in wrapped if w["type"] == "Delete"]
    response = await client.get(path(delete["id"]), headers=AP)
    assert response.status_code == 200 and response.json() == {"@context": response.json()["@context"], **delete}
    (undo,) = mastodon.of_type("Undo")  # the plain Announce withdrawn, for Mastodon
    assert (await client.get(path(undo.activity["id"]), headers=AP)).status_code == 200


async def test_a_report_is_for_its_addressees_only(client, services, worker, mastodon):
    await create_user(services.db, "mod1")
    await create_group(services.db, GroupSpec(name="bookclub", owner="mod1"))
    await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    note = mastodon.note("alice", "<p>rude</p>", to_group=GROUP)
    await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    await worker.drain()
    await reports.report_remote(services, "mod1", [note["id"]], "please look")
    await worker.drain()
    (flag,) = mastodon.of_type("Flag")
    flag_path = path(flag.activity["id"])
    mastodon.add_user("eve")
    assert (await client.get(flag_path, headers=AP)).status_code == 404  # unsigned
    assert (await mastodon.signed_get(client, "eve", f"https://kith.test{flag_path}")).status_code == 404
    addressed = await mastodon.signed_get(client, "alice", f"https://kith.test{flag_path}")
    assert addressed.status_code == 200 and addressed.json()["type"] == "Flag"


async def _group(services):
    async with services.db.read() as conn:
        return await get_group(conn, "bookclub")


async def _mod(services) -> actions.Moderator:
    return actions.Moderator("cli", "https://kith.test/actor")
