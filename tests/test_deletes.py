"""An author's Delete withdraws the plain Announce too (issue 12, item 10).

Mastodon shows the group's plain ``Announce(Note)`` and ignores ``Announce(Delete)``: before,
an author's own Delete left the post standing there, while a moderator's removal already sent
``Undo(Announce)``. Every deletion now withdraws it.
"""

from __future__ import annotations

from server.groups.membership import GroupSpec, create_group
from tests.fakes.mastodon import FakeMastodon

GROUP = "https://kith.test/groups/bookclub"


async def test_an_authors_delete_undoes_the_plain_announce(client, services, worker, mastodon, network):
    social = FakeMastodon("social.example", network)
    social.add_user("bob")
    try:
        await create_group(services.db, GroupSpec(name="bookclub"))
        for server, name in ((mastodon, "alice"), (social, "bob")):
            assert (await server.post(client, name, f"{GROUP}/inbox", server.follow(name, GROUP))).status_code == 202
        await worker.drain()
        note = mastodon.note("alice", "<p>Reading Dune</p>", to_group=GROUP)
        await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
        await worker.drain()
        (plain,) = [r.activity for r in social.of_type("Announce") if r.activity["object"] == note["id"]]
        social.received.clear()

        delete = {
            "id": note["id"] + "#delete",
            "type": "Delete",
            "actor": mastodon.actor_uri("alice"),
            "object": note["id"],
        }
        assert (await mastodon.post(client, "alice", "https://kith.test/inbox", delete)).status_code == 202
        await worker.drain()

        (undo,) = social.of_type("Undo")
        assert undo.signer == GROUP and undo.activity["actor"] == GROUP
        assert undo.activity["object"]["id"] == plain["id"] and undo.activity["object"]["object"] == note["id"]
        (wrapped,) = social.of_type("Announce")
        assert wrapped.activity["object"]["type"] == "Delete"  # FEP-1b12 servers still hear of the Delete
        gone = await client.get(
            "/activities/" + plain["id"].rsplit("/", 1)[1], headers={"Accept": "application/activity+json"}
        )
        assert gone.status_code == 410
    finally:
        await social.http.aclose()
