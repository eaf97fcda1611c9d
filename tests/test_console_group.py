"""The moderator's console, ``/console/groups/NAME``, over HTTP against the app, on SQLite and PostgreSQL.

Who gets in (owner, moderators, admins; anyone else a 403 page), the queue (follow requests,
held posts with why, reports with their thread), each action through the same domain
functions as ``kith mod`` (logged and federated), CSRF on every POST, and the pages.
"""

from __future__ import annotations

import re

import httpx
import pytest
import sqlalchemy as sa

from server.accounts import create_user
from server.groups.membership import GroupSpec, create_group
from server.moderation.rulebook import save_guards
from server.tables import bans, follows, group_roles, mod_log, posts, reports
from tests.console_helpers import page_csrf, sign_in
from tests.fakes.mastodon import FakeMastodon

GROUP = "https://kith.test/groups/bookclub"
PASSWORD = "correct horse battery"
CONSOLE = "/console/groups/bookclub"


@pytest.fixture
async def social(network):
    fake = FakeMastodon("social.example", network, signer="bovine")
    fake.add_user("bob")
    yield fake
    await fake.http.aclose()


@pytest.fixture
async def world(client, services, worker, mastodon, social):
    """bookclub (owner olga, held first posts), alice and bob members; olga signed in."""
    for name, admin in (("olga", False), ("nina", False), ("ada", True)):
        await create_user(services.db, name, password=PASSWORD, admin=admin)
    group = await create_group(services.db, GroupSpec(name="bookclub", owner="olga"))
    async with services.db.transaction() as conn:
        await save_guards(conn, services.db, group.id, {"hold_first_posts": 1})
    for server, name in ((mastodon, "alice"), (social, "bob")):
        r = await server.post(client, name, f"{GROUP}/inbox", server.follow(name, GROUP))
        assert r.status_code == 202
    await worker.drain()
    mastodon.received.clear()
    social.received.clear()
    assert (await sign_in(client, "olga", PASSWORD)).status_code == 303
    return group


async def post(client, worker, server, name, content, **kw):
    note = server.note(name, content, to_group=GROUP, **kw)
    r = await server.post(client, name, "https://kith.test/inbox", server.create(name, note))
    assert r.status_code == 202
    await worker.drain()
    return note


def announced(received):
    return [r.activity["object"] for r in received if r.activity["type"] == "Announce" and r.signer == GROUP]


async def act(client, **data) -> httpx.Response:
    token = await page_csrf(client, CONSOLE)
    return await client.post(f"{CONSOLE}/act", data={"csrf": token, "back": "queue", **data})


async def state_of(services, uri):
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(posts.c.state).where(posts.c.uri == uri))).scalar_one()


async def log_actions(services):
    async with services.db.read() as conn:
        rows = (await conn.execute(sa.select(mod_log.c.moderator, mod_log.c.action).order_by(mod_log.c.id))).all()
    return [tuple(r) for r in rows]


async def test_who_gets_in(app, client, services, world):
    assert (await client.get(CONSOLE)).status_code == 200  # the owner
    for name, status in (("nina", 403), ("ada", 200)):  # a stranger, an admin
        other = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://kith.test")
        await sign_in(other, name, PASSWORD)
        r = await other.get(CONSOLE, headers={"Accept": "text/html"})
        assert r.status_code == status, r.text[:300]
        if status == 403:
            assert "<h1>403 Forbidden</h1>" in r.text and "not a moderator of bookclub" in r.text
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
            token = await page_csrf(other)
            r = await other.post(f"{CONSOLE}/act", data={"csrf": token, "action": "pin", "target": "x"})
            assert r.status_code == 403
        await other.aclose()
    assert (await client.get("/console/groups/nosuch")).status_code == 404


async def test_console_home_counts_what_waits(client, worker, mastodon, world):
    await post(client, worker, mastodon, "alice", "<p>first post</p>")
    home = await client.get("/console")
    assert "Book" in home.text or "bookclub" in home.text
    assert "1 waiting" in home.text and "1 held posts" in home.text


async def test_held_post_shows_why_and_approve_federates(client, services, worker, mastodon, social, world):
    note = await post(client, worker, mastodon, "alice", "<p>hello everyone</p>")
    page = await client.get(CONSOLE)
    assert "hello everyone" in page.text
    assert "Held because: a new member&#39;s first posts wait for a moderator" in page.text
    for label in ("Approve", "Reject", "Ban"):
        assert f">{label}</button>" in page.text
    r = await act(client, action="approve-post", target=note["id"], reason="welcome")
    assert r.status_code == 303 and r.headers["location"] == f"{CONSOLE}?done=approve-post"
    assert "Post approved" in (await client.get(r.headers["location"])).text
    assert await state_of(services, note["id"]) == "visible"
    await worker.drain()
    assert note["id"] in announced(social.received)  # the members' servers receive the Announce
    assert await log_actions(services) == [("olga", "approve_post")]


async def test_post_without_csrf_changes_nothing(client, services, worker, mastodon, world):
    note = await post(client, worker, mastodon, "alice", "<p>held still</p>")
    for data in ({}, {"csrf": "forged"}):
        r = await client.post(f"{CONSOLE}/act", data={**data, "action": "approve-post", "target": note["id"]})
        assert r.status_code == 403
    assert await state_of(services, note["id"]) == "held"
    assert await log_actions(services) == []
    assert (await client.get(f"{CONSOLE}/act")).status_code == 405  # and nothing changes on GET


async def test_report_in_context_remove_federates(client, services, worker, mastodon, social, world):
    root = await post(client, worker, mastodon, "alice", "<p>a book I liked</p>")
    await act(client, action="approve-post", target=root["id"])
    reply = await post(client, worker, social, "bob", "<p>rude reply</p>", in_reply_to=root["id"])
    await act(client, action="approve-post", target=reply["id"])
    await worker.drain()
    flag = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": mastodon.new_id("flags"),
        "type": "Flag",
        "actor": mastodon.actor_uri("alice"),
        "object": [social.actor_uri("bob"), reply["id"]],
        "content": "this is rude",
    }
    assert (await mastodon.post(client, "alice", "https://kith.test/inbox", flag)).status_code == 202
    await worker.drain()
    page = (await client.get(CONSOLE)).text
    assert "this is rude" in page and "a book I liked" in page and "rude reply" in page
    assert mastodon.actor_uri("alice") in page  # the reporter, shown to this instance's moderators
    for label in ("Remove", "Resolve", "Forward", "Lock", "Ban"):
        assert f">{label}</button>" in page
    report_id = re.search(r'name="report" value="(\d+)"', page).group(1)
    mastodon.received.clear()
    r = await act(client, action="resolve-remove", report=report_id, reason="rude")
    assert r.status_code == 303
    assert await state_of(services, reply["id"]) == "removed"
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(reports.c.state, reports.c.action_taken))).one() == ("resolved", "remove")
    await worker.drain()
    deletes = [a for a in announced(mastodon.received) if isinstance(a, dict) and a["type"] == "Delete"]
    assert [d["object"] for d in deletes] == [reply["id"]]
    assert "Nothing waits for a decision." in (await client.get(CONSOLE)).text


async def test_follow_request_ban_and_moderators(client, services, worker, world, network):
    async with services.db.transaction() as conn:
        await conn.execute(sa.text("UPDATE local_actors SET approval = 'manual' WHERE name = 'bookclub'"))
    carol = FakeMastodon("third.example", network)
    carol.add_user("carol")
    await carol.post(client, "carol", f"{GROUP}/inbox", carol.follow("carol", GROUP))
    await worker.drain()
    page = (await client.get(CONSOLE)).text
    assert "Follow request" in page and "@carol@third.example" in page
    assert (await act(client, action="approve-follow", target=carol.actor_uri("carol"))).status_code == 303
    await worker.drain()
    assert carol.of_type("Accept")
    members = (await client.get(f"{CONSOLE}/members")).text
    assert "@carol@third.example" in members and "third.example" in members
    # A row's "Ban…" fills in the ban form (with its length and "remove their content"), never bans at once.
    prefilled = (await client.get(f"{CONSOLE}/members", params={"ban": carol.actor_uri("carol")})).text
    assert f'value="{carol.actor_uri("carol")}"' in prefilled and 'name="remove_content"' in prefilled

    r = await act(client, action="ban", target=carol.actor_uri("carol"), days="7", remove_content="on", reason="spam")
    assert r.status_code == 303
    async with services.db.read() as conn:
        ban = (await conn.execute(sa.select(bans.c.actor_uri, bans.c.expires_at))).one()
        member = (await conn.execute(sa.select(follows).where(follows.c.actor_id.is_not(None)))).all()
    assert ban.actor_uri == carol.actor_uri("carol") and ban.expires_at is not None
    assert len(member) == 2  # carol's membership ended
    bans_page = (await client.get(f"{CONSOLE}/bans")).text
    assert carol.actor_uri("carol") in bans_page and ">Lift</button>" in bans_page
    assert (await act(client, action="unban", target=carol.actor_uri("carol"))).status_code == 303
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(bans))).scalar_one() == 0

    assert (await act(client, action="add-mod", target="nina")).status_code == 303
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(group_roles))).scalar_one() == 2
    mods = (await client.get(f"{CONSOLE}/moderators")).text
    assert "nina" in mods and ">Remove</button>" in mods
    assert (await act(client, action="remove-mod", target="nina")).status_code == 303
    log = (await client.get(f"{CONSOLE}/log")).text
    for action in ("approve follow", "ban", "unban", "add moderator", "remove moderator"):
        assert action in log
    assert '<td data-label="Moderator">olga</td>' in log


async def test_lock_pin_remove_restore_and_errors(client, services, worker, mastodon, social, world):
    note = await post(client, worker, mastodon, "alice", "<p>thread</p>")
    await act(client, action="approve-post", target=note["id"])
    for name in ("lock", "unlock", "pin", "unpin", "remove"):
        r = await act(client, action=name, target=note["id"], reason="r")
        assert r.status_code == 303, (name, r.text[:300])
    assert await state_of(services, note["id"]) == "removed"
    log = (await client.get(f"{CONSOLE}/log")).text
    assert ">Restore</button>" in log
    r = await act(client, action="restore", target=note["id"])
    assert r.status_code == 303 and await state_of(services, note["id"]) == "visible"
    # The domain's own refusal, as a page: restoring a visible post is a 400 with the reason.
    bad = await act(client, action="restore", target=note["id"])
    assert bad.status_code == 400 and "the post is not removed" in bad.text
    assert (await act(client, action="nonsense", target="x")).status_code == 400
    assert (await act(client, action="ban", target=note["id"], days="-3")).status_code == 400
    assert [a for _, a in await log_actions(services)] == [
        "approve_post",
        "lock",
        "unlock",
        "pin",
        "unpin",
        "remove",
        "restore",
    ]


async def test_guards_and_settings(client, services, world):
    r = await act(
        client,
        action="guards",
        back="settings",
        hold_first_posts="2",
        keywords="spoiler\nleak",
        link_domains="spam.example",
        filter_action="reject",
        member_posts_per_hour="5",
        instance_posts_per_hour="0",
        max_group_mentions="3",
    )
    assert r.status_code == 303 and r.headers["location"] == f"{CONSOLE}/settings?done=guards"
    page = (await client.get(f"{CONSOLE}/settings")).text
    assert "spoiler\nleak</textarea>" in page and 'value="reject" selected' in page
    bad = await act(client, action="guards", back="settings", hold_first_posts="lots", filter_action="hold")
    assert bad.status_code == 400


async def test_public_group_page_links_moderators_to_the_console(app, client, world):
    assert 'href="/console/groups/bookclub">Moderate</a>' in (await client.get("/groups/bookclub")).text
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://kith.test")
    assert "Moderate</a>" not in (await anonymous.get("/groups/bookclub")).text
    await sign_in(anonymous, "nina", PASSWORD)
    assert "Moderate</a>" not in (await anonymous.get("/groups/bookclub")).text
    await anonymous.aclose()


async def test_every_console_page_renders(client, worker, mastodon, world):
    await post(client, worker, mastodon, "alice", "<p>x</p>")
    for path in ("", "/members", "/bans", "/moderators", "/settings", "/log"):
        r = await client.get(CONSOLE + path)
        assert r.status_code == 200, path
        assert "<script" not in r.text and "style=" not in r.text
        assert r.headers["referrer-policy"] == "same-origin"
    assert (await client.get(f"{CONSOLE}?page=abc")).status_code == 400
    assert (await client.get(f"{CONSOLE}/log?max_id=abc")).status_code == 400
    assert (await client.get("/console/account")).status_code == 200


async def test_queue_is_oldest_first_across_kinds_and_paged(
    client, services, worker, mastodon, world, network, monkeypatch
):
    async with services.db.transaction() as conn:
        await conn.execute(sa.text("UPDATE local_actors SET approval = 'manual' WHERE name = 'bookclub'"))
    carol = FakeMastodon("third.example", network)
    carol.add_user("carol")
    await carol.post(client, "carol", f"{GROUP}/inbox", carol.follow("carol", GROUP))  # 1st: a follow request
    await worker.drain()
    note = await post(client, worker, mastodon, "alice", "<p>held one</p>")  # 2nd: a held post
    flag = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": mastodon.new_id("flags"),
        "type": "Flag",
        "actor": mastodon.actor_uri("alice"),
        "object": [note["id"]],
        "content": "third in line",
    }
    await mastodon.post(client, "alice", "https://kith.test/inbox", flag)  # 3rd: a report
    await worker.drain()
    page = (await client.get(CONSOLE)).text
    kinds = re.findall(r'<p class="kind">(Follow request|Held post|Report)', page)
    assert kinds == ["Follow request", "Held post", "Report"]

    monkeypatch.setattr("server.web.console.queue.PAGE", 1)
    first = (await client.get(CONSOLE)).text
    assert re.findall(r'<p class="kind">(Follow request|Held post|Report)', first) == ["Follow request"]
    assert 'href="?page=1">More items</a>' in first
    second = (await client.get(f"{CONSOLE}?page=1")).text
    assert re.findall(r'<p class="kind">(Follow request|Held post|Report)', second) == ["Held post"]
    assert 'href="?page=0">Earlier items</a>' in second
    last = (await client.get(f"{CONSOLE}?page=2")).text
    assert "third in line" in last and "More items" not in last
