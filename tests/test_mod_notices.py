"""Moderators are told at once: a direct message per moderator, gathered per minute, the reporter kept back."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import sqlalchemy as sa

from server.federation.vocab import is_public
from server.groups.membership import get_group
from server.moderation.digests import reporter_shown
from server.moderation.notices import Notice, link_account, notify_moderators
from server.moderation.rulebook import save_guards
from server.tables import mod_log, posts
from server.web.console.queue import load_queue
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.world import GROUP
from tests.fakes.world import NAME as GROUP_NAME
from tests.modreply_helpers import a_minute_later, flag, make_remote_moderator, notices_to, reply
from tests.shell import kith


@pytest.fixture
async def mods(network):
    fake = FakeMastodon("mods.example", network)
    yield fake
    await fake.http.aclose()


def items_in(notice) -> int:
    return len(re.findall(r"<strong>#\d+</strong>", notice["object"]["content"])) or 1


async def test_a_report_reaches_remote_moderators_directly_in_one_worker_pass(world, mods, client):
    mia = await make_remote_moderator(world, mods, "mia")  # on a server of her own
    bob = await make_remote_moderator(world, world.social, "bob")  # on the reporter's server
    note = await world.post(world.mastodon, "alice", "<p>Buy <b>cheap</b> pills &amp; more at pills.example</p>")
    world.social.add_user("rita")
    world.clear()
    mods.received.clear()
    await world.send(world.social, "rita", flag(world.social, "rita", note, "spam, again"), drain=False)

    await world.worker.run_once()  # one pass: the Flag processed, the notice written and delivered

    [to_mia] = notices_to(mods, "mia")
    dm = to_mia["object"]
    assert dm["to"] == [mia] and dm["cc"] == [] and to_mia["to"] == [mia] and to_mia["cc"] == []
    assert not is_public(dm) and not is_public(to_mia) and "followers" not in json.dumps(to_mia)
    assert dm["tag"] == [{"type": "Mention", "href": mia, "name": "@mia@mods.example"}]
    content = dm["content"]
    assert "Report about a post by @alice@mastodon.example" in content and "“spam, again”" in content
    assert "“Buy cheap pills &amp; more at pills.example”" in content  # sanitised to text, escaped once
    assert f'<a href="{note["id"]}">' in content  # a link to the post
    assert "remove [reason]" in content and "dismiss" in content and "Reply to this message" in content
    # rita is on social.example: never named to mia (mods.example) ...
    assert "rita" not in json.dumps(to_mia) and "social.example" not in content
    # ... but to bob, on rita's own server, she may be.
    [to_bob] = notices_to(world.social, "bob")
    assert world.social.actor_uri("rita") in to_bob["object"]["content"]
    assert to_bob["object"]["to"] == [bob]
    # Nobody else heard of it: not alice, not the members, not the outbox.
    assert not [r for r in world.mastodon.received if r.activity.get("type") == "Create"]
    outbox = (await client.get(f"{GROUP}/outbox?page=true", headers={"Accept": "application/activity+json"})).text
    assert dm["id"] not in outbox
    # Its id dereferences for mia alone.
    assert (await client.get(dm["id"], headers={"Accept": "application/activity+json"})).status_code == 404
    assert (await mods.signed_get(client, "mia", dm["id"])).status_code == 200


def test_the_reporter_is_named_only_on_their_own_server():
    assert reporter_shown("https://a.example/users/r", "https://a.example/users/mod")
    assert not reporter_shown("https://a.example/users/r", "https://b.example/users/mod")
    assert not reporter_shown("https://a.example/actor", "https://sub.a.example/users/mod")
    assert not reporter_shown("ann", "https://a.example/users/mod")  # a local reporter: never off this instance
    assert not reporter_shown(None, "https://a.example/users/mod")


async def test_a_burst_of_30_reports_is_one_message_per_moderator_that_minute(world, mods):
    await make_remote_moderator(world, mods, "mia")
    await make_remote_moderator(world, world.social, "bob")
    world.social.add_user("rita")
    # 30 posts from one server by a member of a day would trip crowd control's alarm (its own
    # message to the moderators, taking their minute): this group's thresholds are above them.
    r = await asyncio.to_thread(
        kith, world.services.settings, "mod", "crowd-control", GROUP_NAME, "--as", "mod1",
        "--new-member-posts", "100", "--server-min-posts", "100",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    notes = [await world.post(world.mastodon, "alice", f"<p>post {i}</p>", drain=False) for i in range(30)]
    await world.worker.drain()
    world.clear()
    mods.received.clear()
    for i, note in enumerate(notes):  # some processed one by one as they come, the rest in a heap
        await world.send(world.social, "rita", flag(world.social, "rita", note, f"spam {i}"), drain=i < 10)
    await world.worker.drain()

    for server, name in ((mods, "mia"), (world.social, "bob")):
        [first] = notices_to(server, name)  # one message this minute
        assert items_in(first) == 1  # the first report went at once; the rest waited
    mods.received.clear()
    world.social.received.clear()
    await a_minute_later(world)
    for server, name in ((mods, "mia"), (world.social, "bob")):
        [second] = notices_to(server, name)
        assert items_in(second) == 25  # a message holds at most 25 items
    mods.received.clear()
    await a_minute_later(world)
    [third] = notices_to(mods, "mia")
    assert items_in(third) == 4
    assert "“spam 29”" in third["object"]["content"]


async def test_a_held_post_reaches_a_linked_local_moderator_who_approves_it(world, mods, services):
    mia = await make_remote_moderator(world, mods, "mia")
    max_uri = mods.add_user("max")
    assert await link_account(services, "mod2", max_uri) == max_uri
    async with services.db.transaction() as conn:
        await save_guards(conn, services.db, world.group.id, {"keywords": ["pills"]})
    world.clear()
    note = await world.post(world.mastodon, "alice", "<p>cheap pills here</p>")
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(posts.c.state).where(posts.c.uri == note["id"]))).scalar_one() == "held"
    [to_max] = notices_to(mods, "max")
    [to_mia] = notices_to(mods, "mia")
    assert "Post held for approval by @alice@mastodon.example" in to_max["object"]["content"]
    assert "approve" in to_max["object"]["content"] and to_mia["object"]["to"] == [mia]
    assert not [r for s in world.servers for r in s.received if r.activity.get("type") == "Announce"]

    # mia's notice is not max's: max answers his own.
    await world.send(mods, "max", reply(mods, "max", to_max, "approve"))
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(posts.c.state).where(posts.c.uri == note["id"]))).scalar_one() == "visible"
        logged = (await conn.execute(sa.select(mod_log.c.moderator, mod_log.c.action))).all()
    assert ("mod2", "approve_post") in logged  # the local moderator's name, not the linked account's
    for server in world.servers:
        assert any(r.activity["type"] == "Announce" for r in server.received)


async def test_linking_an_account_checks_it_and_unlinking_stops_the_notices(world, mods, services, settings):
    max_uri = mods.add_user("max")
    from server.errors import BadRequest

    with pytest.raises(BadRequest, match="does not answer as a fediverse account"):
        await link_account(services, "mod2", "https://mods.example/users/nobody")
    with pytest.raises(BadRequest, match="another server"):
        await link_account(services, "mod2", "https://kith.test/users/mod1")
    await link_account(services, "mod2", max_uri)
    with pytest.raises(BadRequest, match="linked to mod2 already"):
        await link_account(services, "mod1", max_uri)
    # From the shell: one clear line and a non-zero exit for what cannot be linked.
    r = kith(settings, "user", "link", "mod2", "not-a-uri")
    assert r.returncode == 1 and "actor URI" in r.stderr and "Traceback" not in r.stderr
    r = kith(settings, "user", "unlink", "mod2")
    assert r.returncode == 0 and "unlinked mod2" in r.stderr
    async with services.db.transaction() as conn:
        group = await get_group(conn, "bookclub")
        await notify_moderators(conn, services, group, Notice("alarm", reason="a test"))
    await world.worker.drain()
    assert notices_to(mods, "max") == []


async def test_an_alarm_tells_remote_moderators_and_waits_in_the_console_queue(world, mods, services):
    await make_remote_moderator(world, mods, "mia")
    async with services.db.transaction() as conn:
        group = await get_group(conn, "bookclub")
        stored = await notify_moderators(
            conn, services, group, Notice("alarm", reason="<b>41 posts</b> from new members in 10 minutes")
        )
    await world.worker.drain()
    [to_mia] = notices_to(mods, "mia")
    content = to_mia["object"]["content"]
    assert "Alarm: &lt;b&gt;41 posts&lt;/b&gt; from new members" in content and "Reply to this" not in content
    async with services.db.read() as conn:
        queue = await load_queue(conn, group)
    assert [(i.kind, i.alarm.id) for i in queue.items if i.alarm] == [("alarm", stored.id)]
    # An alarm takes no command: the answer says so and nothing changes.
    mods.received.clear()
    await world.send(mods, "mia", reply(mods, "mia", to_mia, "dismiss"))
    assert "does not apply to an alarm" in notices_to(mods, "mia")[0]["object"]["content"]
