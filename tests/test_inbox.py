"""The inbox doors: every refusal gets the right 4xx and stores nothing; accepted is stored once."""

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import sqlalchemy as sa

from server.federation.httpsig import sign_request
from server.groups.membership import GroupSpec, create_group
from server.tables import inbox_items, remote_actors

GROUP = "https://kith.test/groups/bookclub"
INBOX = "https://kith.test/groups/bookclub/inbox"
SHARED = "https://kith.test/inbox"


@pytest.fixture
async def group(services):
    return await create_group(services.db, GroupSpec(name="bookclub"))


async def stored(services) -> list:
    async with services.db.read() as conn:
        return list((await conn.execute(sa.select(inbox_items))).all())


@pytest.mark.parametrize("signer", ["ours", "bovine"])
async def test_signed_follow_is_stored_once(client, services, group, mastodon, signer):
    mastodon.signer = signer
    follow = mastodon.follow("alice", GROUP)
    r = await mastodon.post(client, "alice", INBOX, follow)
    assert r.status_code == 202, r.text
    again = await mastodon.post(client, "alice", SHARED, follow)
    assert again.status_code == 202
    rows = await stored(services)
    assert len(rows) == 1
    assert rows[0].activity_uri == follow["id"] and rows[0].group_id == group.id
    assert json.loads(rows[0].body) == follow
    async with services.db.read() as conn:  # the key was fetched and cached with the actor
        actor = (await conn.execute(sa.select(remote_actors))).one()
    assert actor.uri == mastodon.actor_uri("alice") and actor.shared_inbox == "https://mastodon.example/inbox"


async def _post_raw(client, body: bytes, headers: dict, url: str = INBOX):
    return await client.post(url, content=body, headers=headers)


async def test_unsigned_is_401(client, services, group, mastodon):
    r = await _post_raw(
        client, json.dumps(mastodon.follow("alice", GROUP)).encode(), {"content-type": "application/activity+json"}
    )
    assert r.status_code == 401 and r.json()["error"] == "missing signature"
    assert await stored(services) == []


async def test_wrong_digest_is_401(client, services, group, mastodon):
    body = json.dumps(mastodon.follow("alice", GROUP)).encode()
    headers = mastodon.signed_headers("alice", INBOX, body)
    r = await _post_raw(client, body.replace(b"Follow", b"Folloq"), headers)
    assert r.status_code == 401 and "digest" in r.json()["error"]
    assert await stored(services) == []


async def test_stale_date_is_401(client, services, group, mastodon):
    body = json.dumps(mastodon.follow("alice", GROUP)).encode()
    key_id = mastodon.actor_uri("alice") + "#main-key"
    old = datetime.now(UTC) - timedelta(hours=3)
    headers = {"content-type": "application/activity+json"}
    headers.update(
        sign_request(
            "POST", INBOX, headers, body, key_id=key_id, private_key_pem=mastodon.users["alice"].private_pem, now=old
        )
    )
    assert headers["Date"] == format_datetime(old.replace(microsecond=0), usegmt=True)
    r = await _post_raw(client, body, headers)
    assert r.status_code == 401 and "date" in r.json()["error"]
    assert await stored(services) == []


async def test_key_of_another_actor_is_401(client, services, group, mastodon):
    mastodon.add_user("mallory")
    follow = mastodon.follow("alice", GROUP)  # claims to be alice ...
    body = json.dumps(follow).encode()
    r = await _post_raw(client, body, mastodon.signed_headers("mallory", INBOX, body))  # ... signed by mallory
    assert r.status_code == 401 and "does not belong" in r.json()["error"]
    assert await stored(services) == []


async def test_bad_signature_is_401(client, services, group, mastodon):
    body = json.dumps(mastodon.follow("alice", GROUP)).encode()
    headers = mastodon.signed_headers("alice", INBOX, body)
    headers["signature"] = headers.get("signature", headers.get("Signature")).replace('signature="', 'signature="AAAA')
    headers.pop("Signature", None)
    r = await _post_raw(client, body, headers)
    assert r.status_code == 401
    assert await stored(services) == []


async def test_oversized_body_is_413(client, services, group, mastodon):
    follow = mastodon.follow("alice", GROUP)
    follow["padding"] = "x" * 300_000
    r = await mastodon.post(client, "alice", INBOX, follow)
    assert r.status_code == 413
    assert await stored(services) == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[1, 2]", "JSON object"),
        (b"not json", "not JSON"),
        (b'{"type": "Follow", "id": "https://mastodon.example/1"}', "actor"),
    ],
)
async def test_malformed_is_400(client, services, group, body, reason):
    r = await _post_raw(client, body, {"content-type": "application/activity+json"})
    assert r.status_code == 400 and reason in r.json()["error"]


async def test_follow_of_unknown_group_is_404(client, services, group, mastodon):
    follow = mastodon.follow("alice", "https://kith.test/groups/nobody")
    r = await mastodon.post(client, "alice", SHARED, follow)
    assert r.status_code == 404
    assert await stored(services) == []
    r = await mastodon.post(client, "alice", "https://kith.test/groups/nobody/inbox", follow)
    assert r.status_code == 404


async def test_blocked_domain_refused_before_any_fetch(client, services, group, mastodon, network):
    services.is_blocked = lambda host: host == "mastodon.example"
    r = await mastodon.post(client, "alice", INBOX, mastodon.follow("alice", GROUP))
    assert r.status_code == 403
    assert network.sent_to("mastodon.example") == []  # no key fetch
    assert await stored(services) == []


async def test_unknown_actor_key_is_401(client, services, group, mastodon):
    follow = mastodon.follow("alice", GROUP)
    body = json.dumps(follow).encode()
    headers = mastodon.signed_headers("alice", INBOX, body)
    del mastodon.users["alice"]  # the actor 404s now
    r = await _post_raw(client, body, headers)
    assert r.status_code == 401 and "unknown key" in r.json()["error"]


async def test_key_rotation_refetches_once(client, services, group, mastodon, network):
    from tests.fakes.mastodon import remote_keypair

    r = await mastodon.post(client, "alice", INBOX, mastodon.follow("alice", GROUP))
    assert r.status_code == 202
    fetches = len(network.sent_to("mastodon.example", "GET"))
    mastodon.users["alice"] = remote_keypair(5)  # alice rotates her key
    # The cached key is fresh (< 1 minute), so make it look old enough to refetch.
    async with services.db.transaction() as conn:
        await conn.execute(sa.update(remote_actors).values(fetched_at=datetime.now(UTC) - timedelta(minutes=5)))
    r = await mastodon.post(client, "alice", INBOX, mastodon.follow("alice", GROUP))
    assert r.status_code == 202
    assert len(network.sent_to("mastodon.example", "GET")) == fetches + 1
    assert len(await stored(services)) == 2


async def test_activity_id_on_another_host_is_400(client, services, group, mastodon):
    follow = mastodon.follow("alice", GROUP)
    follow["id"] = "https://elsewhere.example/follow/1"
    r = await mastodon.post(client, "alice", INBOX, follow)
    assert r.status_code == 400


async def test_our_fetches_are_signed_by_the_instance_actor(client, services, group, mastodon, network):
    await mastodon.post(client, "alice", INBOX, mastodon.follow("alice", GROUP))
    get = network.sent_to("mastodon.example", "GET")[0]
    assert 'keyId="https://kith.test/actor#main-key"' in get.headers["signature"]
