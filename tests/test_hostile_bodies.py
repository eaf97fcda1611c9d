"""Hostile bodies, queries and paths at every door: a 4xx with a reason, never a 5xx.

Doors: the inboxes, ``/api/v1/apps``, ``/oauth/*``, the admin API, Kith's API, WebFinger,
the HTML pages and every paged URL. What a member's server sends that passes the door
but cannot be processed ends done or dead at once, never retried forever. What a
member's server answers (a hostile ``Retry-After``) cannot stop a fan-out.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from server.accounts import create_user
from server.inbox.store import InboxItem, store_activity
from server.oauth import create_user_token
from server.queue import Outcome
from server.tables import deliveries, fanouts, inbox_items
from server.worker import JobKind, Worker
from tests.fakes.mastodon import FakeMastodon
from tests.hostile import GROUP, PUBLIC, SHARED, World, make_world, request

API = "/api/kith/v1/groups/bookclub"


@pytest.fixture
async def world(services, client, worker, mastodon):
    w = await make_world(services, client, worker, mastodon)
    yield w
    await w.social.http.aclose()


@pytest.fixture
async def tokens(world):
    """Bearer headers: an instance admin (who also owns nothing) and bookclub's owner."""
    await create_user(world.services.db, "ada", admin=True, password="correct horse battery")
    await create_user(world.services.db, "owner", password="correct horse battery")
    async with world.services.db.transaction() as conn:
        await conn.execute(
            sa.text(
                "insert into group_roles (group_id, user_id, role, created_at) "
                "select :g, u.id, 'owner', CURRENT_TIMESTAMP from users u "
                "join local_actors l on l.id = u.actor_id where l.name = 'owner'"
            ),
            {"g": world.group_id},
        )
    out = {}
    for name, scopes in (("ada", "read write admin:read admin:write"), ("owner", "read write")):
        out[name] = {"Authorization": f"Bearer {(await create_user_token(world.services.db, name, scopes)).token}"}
    return out


def _reason(response: Any) -> str:
    """The reason a 4xx gives: ``error`` (and OAuth's ``error_description``), or the page's text."""
    if response.headers.get("content-type", "").startswith("application/json"):
        doc = response.json()
        return str(doc.get("error_description") or doc.get("error") or "")
    return response.text


NESTED = b"[" * 100_000
BODIES: dict[str, tuple[str, bytes]] = {
    "oversize": ("application/json", b'{"a":"' + b"x" * 300_000 + b'"}'),
    "deep nesting": ("application/json", NESTED),
    "deep objects": ("application/json", b'{"a":' * 20_000 + b"1" + b"}" * 20_000),
    "NUL escaped in a string": ("application/json", b'{"type":"Follow\\u0000","id":"x"}'),
    "NUL raw": ("application/json", b'{"type":"Fol\x00low"}'),
    "NUL in a key": ("application/json", b'{"ty\\u0000pe":"Follow"}'),
    "invalid UTF-8": ("application/json", b'{"type":"\xff\xfe\xfd"}'),
    "lone surrogate": ("application/json", b'{"type":"\\ud800","name":"\\udfff"}'),
    "non-object: array": ("application/json", b"[]"),
    "non-object: number": ("application/json", b"1e999999"),
    "not JSON": ("application/json", b"{'type': 'Follow'"),
    "empty": ("application/json", b""),
    "huge integer": ("application/json", b'{"a":' + b"9" * 5000 + b"}"),
    "huge array": ("application/json", b'{"a":[' + b"1," * 100_000 + b"1]}"),
    "NaN": ("application/json", b'{"a":NaN,"b":-Infinity}'),
    "wrong type: text/plain": ("text/plain", b'{"type":"Follow"}'),
    "wrong type: xml": ("application/xml", b"<activity><type>Follow</type></activity>"),
    "wrong type: multipart without boundary": ("multipart/form-data", b"--x\r\n\r\n"),
    "form with NUL": ("application/x-www-form-urlencoded", b"client_name=a%00b&redirect_uris=urn%3Aietf%3Awg"),
    "form with invalid UTF-8": ("application/x-www-form-urlencoded", b"client_name=%ff%fe&grant_type=%c0%af"),
    "form with a surrogate": ("application/x-www-form-urlencoded", b"client_name=%ed%a0%80"),
}

DOORS: list[tuple[str, str, str | None]] = [
    ("POST", SHARED, None),
    ("POST", f"{GROUP}/inbox", None),
    ("POST", "/actor/inbox", None),
    ("POST", "/api/v1/apps", None),
    ("POST", "/oauth/token", None),
    ("POST", "/oauth/revoke", None),
    ("POST", "/oauth/authorize", None),
    ("POST", "/api/v1/admin/domain_blocks", "ada"),
    ("PUT", "/api/v1/admin/domain_blocks/1", "ada"),
    ("POST", "/api/v1/admin/domain_allows", "ada"),
    ("POST", "/api/v1/admin/reports/1/resolve", "ada"),
    ("PATCH", f"{API}/guards", "owner"),
    ("POST", f"{API}/bans", "owner"),
    ("POST", f"{API}/moderators", "owner"),
    ("POST", f"{API}/posts/remove", "owner"),
    ("POST", f"{API}/follows/approve", "owner"),
    ("POST", "/api/kith/v1/reports", "owner"),
]


async def test_every_door_refuses_every_hostile_body_with_a_reason(world, tokens, client):
    wrong = []
    for method, path, who in DOORS:
        for name, (content_type, body) in BODIES.items():
            headers = {"Content-Type": content_type, **(tokens[who] if who else {})}
            r = await request(client, method, path, content=body, headers=headers)
            if not 400 <= r.status_code < 500 or not _reason(r):
                wrong.append((method, path, name, r.status_code, r.text[:200]))
    assert wrong == [], "\n".join(map(str, wrong))
    assert len(await _inbox(world)) == 2  # the two members' Follows, nothing else


HOSTILE_VALUES = [
    "99999999999999999999999",
    "-1",
    "²",
    "١٢٣",
    "NaN",
    "9" * 5000,
    "%00",
    "%ff%fe",
    "",
]
PAGED = [
    "/groups/bookclub/outbox?page=true",
    "/groups/bookclub/followers?page=true",
    "/groups/bookclub/moderators?page=true",
    "/groups/bookclub/featured?page=true",
    "/groups/bookclub/modlog?x=1",
    "/groups/bookclub?x=1",
    "/groups/bookclub/threads/1?x=1",
    "/users/owner/outbox?page=true",
    "/?x=1",
    "/.well-known/webfinger?x=1",
    "/api/v1/instance/domain_blocks?x=1",
    "/api/v1/admin/domain_blocks?x=1",
    "/api/v1/admin/domain_allows?x=1",
    "/api/v1/admin/reports?x=1",
    f"{API}/threads?x=1",
    f"{API}/modlog?x=1",
    f"{API}/held?x=1",
    f"{API}/members?x=1",
    f"{API}/bans?x=1",
    f"{API}/reports?x=1",
    f"{API}/moderators?x=1",
    f"{API}/guards?x=1",
]
PARAMS = ("max_id", "since_id", "min_id", "limit", "before", "cursor", "resource", "state", "page")


async def test_every_paged_url_takes_any_value_without_a_5xx(world, tokens, client):
    wrong = []
    for url in PAGED:
        # What each URL's readers ask for: ActivityPub collections, pages for people, JSON for the API.
        accept = "application/json" if url.startswith("/api") else "text/html"
        accept = "application/activity+json" if "page=true" in url else accept
        headers = {**tokens["ada"], "Accept": accept}
        for value in HOSTILE_VALUES:
            query = "&".join(f"{p}={value}" for p in PARAMS if not (p == "page" and "page=true" in url))
            r = await request(client, "GET", f"{url}&{query}", headers=headers)
            if r.status_code >= 500 or (r.status_code >= 400 and not _reason(r)):
                wrong.append((url, value[:20], r.status_code, r.text[:200]))
    assert wrong == [], "\n".join(map(str, wrong))


PATHS = [
    "/groups/book%00club",
    "/groups/%ff%fe",
    "/groups/%ed%a0%80",
    "/groups/" + "a" * 5000,
    "/groups/bookclub/threads/%00",
    "/groups/bookclub/threads/²",
    "/groups/bookclub/threads/99999999999999999999999",
    "/groups/bookclub/threads/-1",
    "/groups/bookclub/threads/" + "9" * 5000,
    "/api/v1/admin/domain_blocks/" + "9" * 5000,
    "/api/v1/admin/reports/" + "9" * 5000,
    f"{API}/reports/{'9' * 5000}/resolve",
    "/users/%ff",
    "/activities/%00",
    "/activities/" + "f" * 5000,
    "/activities/..%2f..%2fetc%2fpasswd",
    "/static/..%2f..%2fpyproject.toml",
    "/static/%00",
    "/api/v1/admin/domain_blocks/%ff",
    "/api/v1/admin/domain_blocks/99999999999999999999999",
    "/api/v1/admin/reports/²",
    f"{API}/posts/%00",
    f"{API}/reports/99999999999999999999/resolve",
    "/api/kith/v1/groups/%ed%a0%80/threads",
]


async def test_hostile_paths_are_4xx_with_a_reason(world, tokens, client):
    wrong = []
    for path in PATHS:
        for method in ("GET", "POST"):
            for accept in ("text/html", "application/json"):
                r = await request(client, method, path, headers={**tokens["ada"], "Accept": accept})
                if not 400 <= r.status_code < 500 or not _reason(r):
                    wrong.append((method, path[:60], accept, r.status_code, r.text[:200]))
    assert wrong == [], "\n".join(map(str, wrong))


# --------------------------------------------------------------------------- poisoned activities


def _poisons(w: World) -> list[dict[str, Any]]:
    """Activities a member's server may send that pass the door but that no handler can use."""
    m = w.mastodon
    alice = m.actor_uri("alice")

    def note(**fields: Any) -> dict[str, Any]:
        n = m.note("alice", "<p>x</p>", to_group=GROUP)
        n.update(fields)
        return m.create("alice", n)

    return [
        note(content=["<p>a list</p>"]),
        note(content={"en": "an object"}),
        note(inReplyTo={"id": 5}),
        note(inReplyTo=["https://mastodon.example/notes/a", "https://mastodon.example/notes/b"]),
        note(tag="not a list"),
        note(tag=[{"type": "Mention", "href": ["x"]}]),
        note(to={"id": PUBLIC}),
        note(cc=12),
        note(attributedTo=[alice, {"id": alice}]),
        note(published="not a date"),
        note(published="99999-99-99T99:99:99Z"),
        note(summary=7, name=["n"], sensitive="yes"),
        note(url=[{"type": "Link", "href": 5}]),
        note(type="Question", oneOf="not a list"),
        note(content="<p>" + "\u202e" * 1000 + "</p>", name="x" * 100_000),
        note(id="https://mastodon.example/notes/" + "x" * 3000),
        note(inReplyTo="https://mastodon.example/notes/" + "y" * 3000),
        note(url="https://mastodon.example/@alice/" + "u" * 3000),
        note(tag=[{"type": "Mention", "href": GROUP + "/" + "m" * 3000}]),
        {"id": m.new_id(), "type": "Create", "actor": alice, "object": None, "to": [PUBLIC]},
        {"id": m.new_id(), "type": "Create", "actor": alice, "object": [1, 2], "to": [PUBLIC]},
        {"id": m.new_id(), "type": "Update", "actor": alice, "object": {"type": "Note"}},
        {"id": m.new_id(), "type": "Delete", "actor": alice, "object": {"id": 5}},
        {"id": m.new_id(), "type": "Like", "actor": alice, "object": ["https://kith.test/x"]},
        {"id": m.new_id(), "type": "EmojiReact", "actor": alice, "object": GROUP, "content": 5},
        {"id": m.new_id(), "type": "Announce", "actor": alice, "object": {"id": None}},
        {"id": m.new_id(), "type": "Undo", "actor": alice, "object": [{"type": "Follow"}]},
        {"id": m.new_id(), "type": "Undo", "actor": alice, "object": {"type": ["Like"], "id": 3}},
        {"id": m.new_id(), "type": "Flag", "actor": alice, "object": "x" * 5000, "content": ["r"]},
        {"id": m.new_id(), "type": "Flag", "actor": alice, "object": [GROUP] * 5000},
        {"id": m.new_id(), "type": "Flag", "actor": alice, "object": [alice + "/" + "f" * 3000], "content": "r"},
        {
            "id": m.new_id(),
            "type": "Update",
            "actor": alice,
            "object": {**m.actor_doc("alice"), "inbox": alice + "/" + "i" * 3000, "name": "n" * 10_000},
        },
        {"id": m.new_id(), "type": "Like", "actor": alice, "object": alice + "/" + "l" * 3000},
        {"id": m.new_id(), "type": "Block", "actor": alice, "object": alice + "/" + "b" * 3000, "target": GROUP},
        {"id": m.new_id(), "type": "Block", "actor": alice, "object": {"id": alice}, "target": [GROUP]},
        {"id": m.new_id(), "type": "Lock", "actor": alice, "object": 5, "audience": {"id": GROUP}},
        {"id": m.new_id(), "type": "Add", "actor": alice, "object": alice, "target": {"id": f"{GROUP}/moderators"}},
        {"id": m.new_id(), "type": "Update", "actor": alice, "object": {"id": alice, "type": "Person", "inbox": 5}},
        {"id": m.new_id(), "type": ["Create", "Note"], "actor": alice, "object": "x"},
        {"id": m.new_id(), "type": "Follow", "actor": alice, "object": {"id": GROUP, "type": "Group"}},
    ]


async def _inbox(world: World) -> list[Any]:
    async with world.services.db.read() as conn:
        return list((await conn.execute(sa.select(inbox_items).order_by(inbox_items.c.id))).all())


async def test_a_poisoned_activity_is_processed_or_dead_at_once(world):
    statuses = []
    for activity in _poisons(world):
        r = await world.mastodon.post(world.client, "alice", SHARED, activity)
        statuses.append(r.status_code)
        assert r.status_code < 500, (activity, r.text)
    await world.worker.drain()
    rows = await _inbox(world)
    assert statuses.count(202) >= len(statuses) - 3  # most pass the door: the test is what comes after
    unfinished = [
        (r.activity_uri[-20:], r.state, r.attempts, r.last_error) for r in rows if r.state not in ("done", "dead")
    ]
    assert unfinished == []
    assert all(r.attempts <= 1 for r in rows), [(r.state, r.attempts, r.last_error) for r in rows]


async def test_a_job_the_database_refuses_for_its_data_is_dead_at_once(services):
    """PostgreSQL's data exceptions (a value too long for its column) reach the worker as a plain
    DBAPIError: still the row's own fault, so dead at the first try rather than retried for hours."""
    if services.db.dialect != "postgresql":
        pytest.skip("SQLite does not hold a value to its column's width")
    await store_activity(
        services.db, {"id": "https://m.example/a/1", "type": "Note"}, actor="https://m.example/u", group_id=None
    )

    async def run(item: InboxItem) -> Outcome:
        async with services.db.transaction() as conn:
            await conn.execute(sa.update(inbox_items).where(inbox_items.c.id == item.id).values(actor_uri="x" * 3000))
        return Outcome.done()

    await Worker(services.db, [JobKind("inbox", inbox_items, InboxItem, run, max_attempts=8)]).drain()
    async with services.db.read() as conn:
        (row,) = (await conn.execute(sa.select(inbox_items))).all()
    assert (row.state, row.attempts) == ("dead", 1), row.last_error


# --------------------------------------------------------------------------- hostile answers


class Grumpy(FakeMastodon):
    """A member server whose inbox answers ``429`` with a ``Retry-After`` chosen to hurt."""

    retry_after = "99999999999999999999"

    async def _inbox(self, request: Request) -> Response:
        return Response(status_code=429, headers={"Retry-After": self.retry_after})


@pytest.mark.parametrize("value", ["99999999999999999999", "²"])
async def test_a_hostile_retry_after_does_not_stop_a_fan_out(world, network, value):
    grumpy = Grumpy("aaa-grumpy.example", network)
    grumpy.retry_after = "3600"  # its Accept waits an hour (a "0" would be retried at once, again and again)
    grumpy.add_user("gus", keys=world.mastodon.users["alice"])
    await grumpy.post(world.client, "gus", f"{GROUP}/inbox", grumpy.follow("gus", GROUP))
    await world.worker.drain()
    grumpy.retry_after = value
    await world.post_by(world.mastodon, "alice", "<p>to everyone</p>")
    await grumpy.http.aclose()
    assert len(world.social.of_type("Announce")) == 2  # the other member got it
    async with world.services.db.read() as conn:
        fan = (await conn.execute(sa.select(fanouts.c.state, fanouts.c.last_error))).all()
        rows = (
            await conn.execute(sa.select(deliveries.c.inbox, deliveries.c.state, deliveries.c.next_attempt_at))
        ).all()
    assert [f.state for f in fan] == ["done"], fan
    retried = [r for r in rows if r.inbox.startswith("https://aaa-grumpy.example")]
    assert retried and all(r.state == "queued" for r in retried)
