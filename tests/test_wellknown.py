import xml.etree.ElementTree as ET

import pytest

from server.accounts import create_user
from server.groups.membership import GroupSpec, create_group


async def test_webfinger_acct(client, services):
    await create_group(services.db, GroupSpec(name="bookclub", title="Book Club"))
    r = await client.get("/.well-known/webfinger", params={"resource": "acct:bookclub@kith.test"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/jrd+json")
    assert r.headers["access-control-allow-origin"] == "*"
    jrd = r.json()
    assert jrd["subject"] == "acct:bookclub@kith.test"
    assert jrd["aliases"] == ["https://kith.test/groups/bookclub"]
    self_link = next(link for link in jrd["links"] if link["rel"] == "self")
    assert self_link == {
        "rel": "self",
        "type": "application/activity+json",
        "href": "https://kith.test/groups/bookclub",
    }
    page = next(link for link in jrd["links"] if link["rel"] == "http://webfinger.net/rel/profile-page")
    assert page["type"] == "text/html"


async def test_webfinger_by_actor_url_and_case(client, services):
    await create_group(services.db, GroupSpec(name="bookclub"))
    r = await client.get("/.well-known/webfinger", params={"resource": "https://kith.test/groups/bookclub"})
    assert r.status_code == 200 and r.json()["subject"] == "acct:bookclub@kith.test"
    r = await client.get("/.well-known/webfinger", params={"resource": "acct:BookClub@KITH.test"})
    assert r.status_code == 200


async def test_webfinger_user_and_instance_actor(client, services):
    await create_user(services.db, "alice")
    r = await client.get("/.well-known/webfinger", params={"resource": "acct:alice@kith.test"})
    assert r.json()["aliases"] == ["https://kith.test/users/alice"]
    r = await client.get("/.well-known/webfinger", params={"resource": "acct:kith.test@kith.test"})
    assert r.status_code == 200 and r.json()["aliases"] == ["https://kith.test/actor"]


@pytest.mark.parametrize(
    ("resource", "status"),
    [
        ("acct:nobody@kith.test", 404),
        ("acct:bookclub@elsewhere.example", 404),
        ("https://elsewhere.example/groups/bookclub", 404),
        ("acct:no-at-sign", 400),
        ("acct:a@b@c", 400),
        ("acct:@kith.test", 400),
    ],
)
async def test_webfinger_errors(client, services, resource, status):
    r = await client.get("/.well-known/webfinger", params={"resource": resource})
    assert r.status_code == status
    assert "error" in r.json()


async def test_webfinger_without_resource_is_400(client):
    r = await client.get("/.well-known/webfinger")
    assert r.status_code == 400


async def test_host_meta_xml_and_json(client):
    r = await client.get("/.well-known/host-meta")
    assert r.headers["content-type"].startswith("application/xrd+xml")
    link = ET.fromstring(r.text).find("{http://docs.oasis-open.org/ns/xri/xrd-1.0}Link")
    assert link.get("template") == "https://kith.test/.well-known/webfinger?resource={uri}"
    r = await client.get("/.well-known/host-meta", headers={"Accept": "application/json"})
    assert r.json()["links"][0]["template"] == "https://kith.test/.well-known/webfinger?resource={uri}"
    r = await client.get("/.well-known/host-meta.json")
    assert r.json()["links"][0]["rel"] == "lrdd"


async def test_nodeinfo_with_real_counts(client, services):
    r = await client.get("/.well-known/nodeinfo")
    href = r.json()["links"][0]["href"]
    assert r.json()["links"][0]["rel"] == "http://nodeinfo.diaspora.software/ns/schema/2.1"
    assert href == "https://kith.test/nodeinfo/2.1"
    doc = (await client.get("/nodeinfo/2.1")).json()
    assert doc["version"] == "2.1"
    assert doc["software"]["name"] == "kith" and doc["software"]["version"]
    assert doc["protocols"] == ["activitypub"]
    assert doc["openRegistrations"] is False
    assert doc["usage"]["users"]["total"] == 0
    await create_user(services.db, "alice")
    await create_user(services.db, "bob")
    await create_group(services.db, GroupSpec(name="g1"))
    doc = (await client.get("/nodeinfo/2.1")).json()
    assert doc["usage"]["users"]["total"] == 2
    assert doc["metadata"]["groups"] == 1
