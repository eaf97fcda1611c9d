import pytest

from server.accounts import create_user
from server.federation.keys import load_public_key
from server.groups.membership import GroupSpec, create_group

AP = "application/activity+json"
LD = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'


@pytest.mark.full_cost  # Kith's own key generation and password hashing, not the cheap test stand-ins
async def test_group_actor_document(client, services):
    await create_user(services.db, "alice")
    await create_group(
        services.db,
        GroupSpec(
            name="bookclub",
            title="Book Club",
            summary="We read.\n\nOne <b>book</b> a month.",
            owner="alice",
            approval="manual",
            posting="moderators",
        ),
    )
    r = await client.get("/groups/bookclub", headers={"Accept": AP})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(AP)
    doc = r.json()
    base = "https://kith.test/groups/bookclub"
    assert doc["type"] == "Group"
    assert doc["id"] == base and doc["url"] == base
    assert doc["@context"][:2] == ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"]
    ext = doc["@context"][2]
    for term in ("manuallyApprovesFollowers", "discoverable", "featured", "moderators", "postingRestrictedToMods"):
        assert term in ext
    assert doc["preferredUsername"] == "bookclub" and doc["name"] == "Book Club"
    assert doc["summary"] == "<p>We read.</p><p>One &lt;b&gt;book&lt;/b&gt; a month.</p>"
    for key in ("inbox", "outbox", "followers", "following", "featured", "moderators"):
        assert doc[key] == f"{base}/{key}"
    assert doc["attributedTo"] == f"{base}/moderators"
    assert doc["endpoints"] == {"sharedInbox": "https://kith.test/inbox"}
    assert doc["publicKey"]["id"] == f"{base}#main-key" and doc["publicKey"]["owner"] == base
    load_public_key(doc["publicKey"]["publicKeyPem"])
    assert doc["manuallyApprovesFollowers"] is True
    assert doc["postingRestrictedToMods"] is True
    assert doc["discoverable"] is True
    assert doc["published"].endswith("Z")


async def test_ld_json_gets_ld_json(client, services):
    await create_group(services.db, GroupSpec(name="bookclub"))
    r = await client.get("/groups/bookclub", headers={"Accept": LD})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/ld+json")
    assert 'profile="https://www.w3.org/ns/activitystreams"' in r.headers["content-type"]
    assert r.json()["type"] == "Group"


async def test_browser_gets_html_with_alternate(client, services):
    await create_group(services.db, GroupSpec(name="bookclub", title="Book <Club>", summary="Read & talk"))
    r = await client.get("/groups/bookclub", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<link rel="alternate" type="application/activity+json" href="https://kith.test/groups/bookclub">' in r.text
    assert "Book &lt;Club&gt;" in r.text and "<Club>" not in r.text
    assert "@bookclub@kith.test" in r.text
    assert r.headers["vary"] == "Accept, Cookie"  # a signed-in moderator sees a "Moderate" link


async def test_unknown_group_404(client):
    r = await client.get("/groups/nope", headers={"Accept": AP})
    assert r.status_code == 404


async def test_collections(client, services):
    await create_user(services.db, "alice")
    await create_group(services.db, GroupSpec(name="bookclub", owner="alice"))
    for which in ("outbox", "followers", "following", "featured", "moderators"):
        r = await client.get(f"/groups/bookclub/{which}", headers={"Accept": AP})
        assert r.status_code == 200, which
        doc = r.json()
        assert doc["type"] == "OrderedCollection"
        assert doc["id"] == f"https://kith.test/groups/bookclub/{which}"
        assert isinstance(doc["totalItems"], int)
    mods = (await client.get("/groups/bookclub/moderators", headers={"Accept": AP})).json()
    assert mods["orderedItems"] == ["https://kith.test/users/alice"] and mods["totalItems"] == 1
    followers = (await client.get("/groups/bookclub/followers", headers={"Accept": AP})).json()
    assert followers["totalItems"] == 0 and "orderedItems" not in followers
    assert (await client.get("/groups/bookclub/nonsense")).status_code == 404


async def test_instance_actor_and_person(client, services):
    r = await client.get("/actor", headers={"Accept": AP})
    doc = r.json()
    assert doc["type"] == "Application" and doc["preferredUsername"] == "kith.test"
    assert doc["publicKey"]["id"] == "https://kith.test/actor#main-key"
    load_public_key(doc["publicKey"]["publicKeyPem"])
    await create_user(services.db, "alice")
    doc = (await client.get("/users/alice", headers={"Accept": AP})).json()
    assert doc["type"] == "Person" and doc["inbox"] == "https://kith.test/users/alice/inbox"


async def test_home_lists_groups(client, services):
    await create_group(services.db, GroupSpec(name="bookclub", title="Book Club"))
    r = await client.get("/")
    assert r.status_code == 200 and "Book Club" in r.text and "@bookclub@kith.test" in r.text


async def test_rules_appear_in_the_actor_summary(client, services):
    await create_group(services.db, GroupSpec(name="rules", summary="Purpose.", rules="Be kind.\nNo <spam>."))
    doc = (await client.get("/groups/rules", headers={"Accept": AP})).json()
    assert doc["summary"] == "<p>Purpose.</p><p>Rules:</p><ol><li>Be kind.</li><li>No &lt;spam&gt;.</li></ol>"
