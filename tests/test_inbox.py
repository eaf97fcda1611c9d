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


@pytest.mark.parametrize("signer", ["ours", "bovine"])
async def test_a_request_signed_for_another_server_is_401(client, services, group, mastodon, signer):
    """A POST alice's server really sent to other.example, replayed here within the clock window."""
    mastodon.signer = signer
    body = json.dumps(mastodon.follow("alice", GROUP)).encode()
    elsewhere = mastodon.signed_headers("alice", "https://other.example/groups/bookclub/inbox", body)
    assert {k.lower(): v for k, v in elsewhere.items()}["host"] == "other.example"
    # Sent with its own Host header, as a replay would be: the signature itself is valid.
    r = await _post_raw(client, body, elsewhere)
    assert r.status_code == 401 and r.json()["error"] == "signature: signed for another host"
    assert await stored(services) == []
    # The same activity signed for this server (kith.test) is taken.
    r = await _post_raw(client, body, mastodon.signed_headers("alice", INBOX, body))
    assert r.status_code == 202, r.text
    assert len(await stored(services)) == 1


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


# ---------------------------------------------------------------------------
# The fast acceptance path: raw body stored, raw asyncpg store on PostgreSQL, caches


async def test_stored_body_is_the_body_as_received(client, services, group, mastodon):
    follow = mastodon.follow("alice", GROUP)
    # Spacing and key order a re-dump would change: the stored text must be these bytes.
    body = json.dumps(follow, indent=2, sort_keys=True).encode()
    r = await _post_raw(client, body, mastodon.signed_headers("alice", INBOX, body))
    assert r.status_code == 202, r.text
    rows = await stored(services)
    assert len(rows) == 1 and rows[0].body == body.decode() and json.loads(rows[0].body) == follow


async def test_utf16_body_is_stored_re_serialised(client, services, group, mastodon):
    follow = mastodon.follow("alice", GROUP)
    body = json.dumps(follow).encode("utf-16")  # json.loads reads it; the worker's json.loads(str) would not
    r = await _post_raw(client, body, mastodon.signed_headers("alice", INBOX, body))
    assert r.status_code == 202, r.text
    rows = await stored(services)
    assert len(rows) == 1 and json.loads(rows[0].body) == follow


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'{"a": "\xc3\xa9"}', '{"a": "\xe9"}'),
        (b'{"a": "\\u0000\\ud800"}', '{"a": "\\u0000\\ud800"}'),  # escapes stay escapes, as sent
        (b'\xef\xbb\xbf{"a": 1}', None),  # a UTF-8 byte order mark
        ('{"a": 1}'.encode("utf-16"), None),
        (b'{"a": "\xff"}', None),
    ],
)
def test_body_text(body, text):
    from server.inbox.store import body_text

    assert body_text(body) == text


async def test_store_activity_stores_once_and_reports_duplicates(services):
    from server.inbox.store import store_activity

    activity = {"id": "https://mastodon.example/a/1", "type": "Like", "actor": "https://mastodon.example/u/alice"}
    raw = json.dumps(activity, indent=1)
    first = await store_activity(services.db, activity, actor=activity["actor"], group_id=None, raw=raw)
    second = await store_activity(services.db, activity, actor=activity["actor"], group_id=None)
    assert (first, second) == (True, False)
    rows = await stored(services)
    assert len(rows) == 1
    row = rows[0]
    assert (row.activity_uri, row.actor_uri, row.group_id, row.body) == (activity["id"], activity["actor"], None, raw)
    assert (row.state, row.attempts, row.lease_until) == ("queued", 0, None)
    assert row.next_attempt_at == row.created_at and row.next_attempt_at.tzinfo is not None
    # On PostgreSQL this went through the raw asyncpg pool; on SQLite through the group commit.
    assert (await services.db.raw_pool() is not None) == (services.db.dialect == "postgresql")


async def test_concurrent_duplicates_are_stored_once(services):
    import asyncio

    from server.inbox.store import store_activity

    activity = {"id": "https://mastodon.example/a/2", "type": "Like", "actor": "https://mastodon.example/u/alice"}
    results = await asyncio.gather(
        *(store_activity(services.db, activity, actor=activity["actor"], group_id=None) for _ in range(8))
    )
    assert sorted(results) == [False] * 7 + [True]
    assert len(await stored(services)) == 1


async def test_wake_is_set_only_for_a_new_row(client, services, group, mastodon):
    follow = mastodon.follow("alice", GROUP)
    told: list[str | None] = []
    services.wake = type("Recorder", (), {"set": lambda self, kind=None: told.append(kind)})()
    assert (await mastodon.post(client, "alice", INBOX, follow)).status_code == 202
    assert told == ["inbox"]
    assert (await mastodon.post(client, "alice", INBOX, follow)).status_code == 202
    assert told == ["inbox"]


async def test_cached_key_needs_no_database(client, services, group, mastodon, network, monkeypatch):
    assert (await mastodon.post(client, "alice", INBOX, mastodon.follow("alice", GROUP))).status_code == 202
    key_id = mastodon.actor_uri("alice") + "#main-key"

    async def no_database(*args, **kwargs):
        raise AssertionError("the key cache went to the database")

    monkeypatch.setattr(services.actors, "_lookup_key", no_database)
    resolved = await services.actors.lookup_key(key_id, refresh=False)
    assert resolved is not None and resolved.owner == mastodon.actor_uri("alice")


async def test_stored_key_lookup_reads_the_same_on_both_paths(client, services, group, mastodon, network):
    assert (await mastodon.post(client, "alice", INBOX, mastodon.follow("alice", GROUP))).status_code == 202
    key_id = mastodon.actor_uri("alice") + "#main-key"
    services.actors._keys.clear()  # the in-process cache; the next lookup reads the row
    fetches = len(network.sent_to("mastodon.example", "GET"))
    resolved = await services.actors.lookup_key(key_id, refresh=False)
    assert resolved is not None and resolved.owner == mastodon.actor_uri("alice")
    assert len(network.sent_to("mastodon.example", "GET")) == fetches  # from the row, no refetch
    row = await services.actors._stored_key(key_id)
    assert row is not None and row.uri == mastodon.actor_uri("alice") and row.fetched_at.tzinfo is not None
    assert row.public_key_pem == resolved.public_key_pem
    assert await services.actors._stored_key(key_id + "-unknown") is None


SAME_ORIGIN_CASES = [
    ("https://a.example/1", "https://a.example/users/x"),
    ("https://a.example/1", "https://b.example/users/x"),
    ("https://A.example/1", "https://a.example/users/x"),
    ("https://a.example:443/1", "https://a.example/users/x"),
    ("http://a.example/1", "https://a.example/users/x"),
    ("https://a.example:8443/1", "https://a.example:8443/u"),
    ("https://a.example:8443/1", "https://a.example:8444/u"),
    ("https://a.example/1?x#y", "https://a.example/u"),
    ("https://a.example?x/1", "https://a.example?x/2"),
    ("https://a.example#x/1", "https://a.example#x/2"),
    ("https://user@a.example/1", "https://user@a.example/2"),
    ("https://a.example/1\x00", "https://a.example/2"),
    ("https://a.example/\ud800", "https://a.example/2"),
    ("https://a.example/é", "https://a.example/2"),
    ("https://[::1]/1", "https://[::1]/2"),
    ("https://[::1/1", "https://[::1/2"),
    ("https://a.example:99999/1", "https://a.example:99999/2"),
    ("https:///1", "https:///2"),
    ("https://a..example/1", "https://a..example/2"),
    ("https://a.example", "https://a.example/"),
    ("ftp://a.example/1", "ftp://a.example/2"),
    ("https://a.example/" + "x" * 3000, "https://a.example/2"),
    ("https://a.example/1", None),
    ("https://a.example/1", ""),
    ("https://a.example/1",),
]


@pytest.mark.parametrize("urls", SAME_ORIGIN_CASES)
def test_same_origin_shortcut_agrees_with_full_parsing(urls):
    from server.federation.objects import _same_origin_parsed, same_origin

    assert same_origin(*urls) == _same_origin_parsed(urls)


async def test_server_processes_freeze_the_start_up_heap(settings, services, monkeypatch):
    """``kith serve`` freezes what start-up built (full collections stalled the inbox's p99)."""
    import gc

    from server.app import create_app

    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    for freeze in (False, True):
        app = create_app(settings, services=services, run_worker=False, freeze=freeze)
        async with app.router.lifespan_context(app):
            pass
    assert frozen == [True]


def test_first_values_is_dict_of_starlette_headers():
    from starlette.requests import Request

    from server.inbox.endpoint import _first_values

    raw = [(b"host", b"kith.test"), (b"digest", b"SHA-256=a"), (b"signature", b"s"), (b"digest", b"SHA-256=b")]
    request = Request({"type": "http", "method": "POST", "path": "/inbox", "headers": raw})
    expected = {"host": "kith.test", "digest": "SHA-256=a", "signature": "s"}
    assert _first_values(request) == dict(request.headers) == expected
