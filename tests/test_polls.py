"""The group's polls: a Question from the group, votes as Mastodon sends them, Update(Question) with the counts.

Over the test world (tests/fakes/world.py): bookclub, owner mod1, alice on mastodon.example
(Kith's signer) and bob on social.example (bovine's), whose inboxes verify what the group
sends; votes are signed by them as Mastodon signs its own. On SQLite and PostgreSQL. The
sweep takes ``now`` rather than the test sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from server.errors import BadRequest, Forbidden
from server.federation.vocab import AS_PUBLIC
from server.groups import polls
from server.groups.polls import check_poll, create_poll, send_updates, tally
from server.groups.stats import ACTIVITY_SOURCES, active_people, voted
from server.moderation.policy import may_vote
from server.tables import outbound_activities, poll_votes, posts
from server.types import utcnow
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.world import GROUP, NAME, OWNER

AS_JSON = {"Accept": "application/activity+json"}
_votes = itertools.count(1)


def vote(server: FakeMastodon, name: str, question: str, option: str) -> dict[str, Any]:
    """The Create Mastodon sends for a vote (rebased's ``mastodon-vote.json``): fragment ids, to the poll's author."""
    actor = server.actor_uri(name)
    n = next(_votes)
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor}#votes/{n}/activity",
        "type": "Create",
        "actor": actor,
        "to": GROUP,
        "object": {
            "id": f"{actor}#votes/{n}",
            "type": "Note",
            "name": option,
            "attributedTo": actor,
            "inReplyTo": question,
            "to": GROUP,
        },
    }


def counts_of(question: dict[str, Any]) -> dict[str, int]:
    key = "anyOf" if "anyOf" in question else "oneOf"
    return {o["name"]: o["replies"]["totalItems"] for o in question[key]}


async def _rows(services, table, *where):
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(table).where(*where))).all()


async def _tally(services, post_id):
    async with services.db.read() as conn:
        return await tally(conn, post_id)


def _updates(world) -> dict[str, list[dict[str, Any]]]:
    return {s.host: [r.activity for r in s.of_type("Update")] for s in world.servers}


# --------------------------------------------------------------------------- pure parts


def test_poll_checks() -> None:
    assert check_poll(" Which? ", ["  A  b ", "C"], 24) == ("Which?", ["A b", "C"])
    assert check_poll("Q", [str(i) for i in range(10)], 720)[1][-1] == "9"
    for options, hours, reason in [
        (["only"], 24, "2 to 10 options; 1 given"),
        ([str(i) for i in range(11)], 24, "2 to 10 options; 11 given"),
        (["A", "a", "A"], 24, "not unique"),
        (["A", "x" * 101], 24, "at most 100"),
        (["A", "  "], 24, "empty"),
        (["A", "B"], 0, "1 to 720 hours"),
        (["A", "B"], 721, "1 to 720 hours"),
    ]:
        with pytest.raises(BadRequest, match=reason):
            check_poll("Q", options, hours)
    with pytest.raises(BadRequest, match="empty"):
        check_poll("  ", ["A", "B"], 24)


def test_who_may_vote_by_the_groups_posting_policy() -> None:
    def allowed(posting: str, **standing: bool) -> bool:
        facts = {"is_member": False, "is_moderator": False, "banned": False, **standing}
        return may_vote(posting, **facts).allowed

    assert allowed("members", is_member=True) and not allowed("members")
    assert allowed("moderators", is_member=True)  # an announcement group still asks its members
    assert not allowed("moderators") and allowed("moderators", is_moderator=True)
    assert allowed("anyone") and not allowed("anyone", banned=True)
    assert not allowed("members", is_member=True, banned=True)
    assert may_vote("members", is_member=False, is_moderator=False, banned=False).reason == (
        "only members may post in this group"
    )


def test_is_vote_wants_a_named_note_replying_to_one_of_ours() -> None:
    ours = "https://kith.test/activities/"
    base = {"type": "Note", "name": "A", "inReplyTo": ours + "x"}
    assert polls.is_vote(base, ours)
    assert polls.is_vote({**base, "type": "Answer"}, ours)  # Pleroma's
    assert not polls.is_vote({**base, "inReplyTo": "https://elsewhere.example/x"}, ours)
    assert not polls.is_vote({k: v for k, v in base.items() if k != "name"}, ours)
    assert not polls.is_vote({**base, "type": ["Note"]}, ours)


# --------------------------------------------------------------------------- the world


async def test_a_poll_goes_out_as_a_question_members_verify_and_dereference(world, client, services):
    post = await create_poll(services, NAME, OWNER, question="Next book?", options=["Dune", "Emma"], hours=48)
    await world.worker.drain()
    assert post.type == "Question" and post.author_uri == GROUP
    for server in world.servers:
        [got] = server.received
        assert got.signer == GROUP and got.activity["type"] == "Create"  # verified by the member's server
        question = got.activity["object"]
        assert question["type"] == "Question" and question["id"] == post.uri
        assert question["content"] == "<p>Next book?</p>" and question["to"] == [AS_PUBLIC]
        assert question["oneOf"] == [
            {"type": "Note", "name": "Dune", "replies": {"type": "Collection", "totalItems": 0}},
            {"type": "Note", "name": "Emma", "replies": {"type": "Collection", "totalItems": 0}},
        ]
        assert question["votersCount"] == 0 and "anyOf" not in question and "closed" not in question
    served = (await client.get(post.uri, headers=AS_JSON)).json()
    assert {k: v for k, v in served.items() if k != "@context"} == question
    signed = await world.social.signed_get(client, "bob", post.uri)
    assert signed.status_code == 200 and signed.json() == served
    [poll] = await _rows(services, polls.polls)
    assert poll.ends_at - poll.sent_at == timedelta(hours=48) and poll.closed_at is None


async def test_votes_from_two_servers_are_counted_and_members_get_one_update_a_minute(world, client, services):
    for server, name in ((world.mastodon, "carol"), (world.social, "dave")):
        server.add_user(name)
        await world.join(server, name)
    t0 = utcnow()
    post = await create_poll(services, NAME, OWNER, question="Meet when?", options=["Monday", "Friday"], now=t0)
    await world.worker.drain()
    world.clear()

    # A burst: three votes from two servers within the minute.
    await world.send(world.mastodon, "alice", vote(world.mastodon, "alice", post.uri, "Monday"))
    await world.send(world.social, "bob", vote(world.social, "bob", post.uri, "Friday"))
    await world.send(world.mastodon, "carol", vote(world.mastodon, "carol", post.uri, "Monday"))
    assert await _tally(services, post.id) == ({"Monday": 2, "Friday": 1}, 3)
    # Shown at once, before any Update: at its id, on the group page, in the API.
    served = (await client.get(post.uri, headers=AS_JSON)).json()
    assert counts_of(served) == {"Monday": 2, "Friday": 1} and served["votersCount"] == 3
    page = (await client.get(GROUP, headers={"Accept": "text/html"})).text
    assert re.search(r'class="option">Monday</span> <span class="votes">2</span>', page)
    assert re.search(r'class="option">Friday</span> <span class="votes">1</span>', page)
    api = (await client.get(f"/api/kith/v1/groups/{NAME}/threads")).json()
    assert api["threads"][0]["poll"] == [{"title": "Monday", "votes": 2}, {"title": "Friday", "votes": 1}]
    assert _updates(world) == {"mastodon.example": [], "social.example": []}  # nothing sent per vote

    assert await send_updates(services, now=t0 + timedelta(seconds=30)) == 0  # the poll went out 30 s ago
    assert await send_updates(services, now=t0 + timedelta(seconds=61)) == 1
    assert await send_updates(services, now=t0 + timedelta(seconds=62)) == 0  # nothing new since
    await world.worker.drain()
    for server in world.servers:
        [received] = server.of_type("Update")
        assert received.signer == GROUP  # verified by the member's server
        update = received.activity
        assert update["actor"] == GROUP and update["to"] == [AS_PUBLIC] and update["cc"] == [f"{GROUP}/followers"]
        question = update["object"]
        assert question["id"] == post.uri and question["type"] == "Question" and "updated" not in question
        assert counts_of(question) == {"Monday": 2, "Friday": 1} and question["votersCount"] == 3
        assert "closed" not in question
    # The Update dereferences at its id too.
    assert (await client.get(update["id"], headers=AS_JSON)).json()["object"] == question

    # A vote 30 s after the Update waits for the minute to be over.
    await world.send(world.social, "dave", vote(world.social, "dave", post.uri, "Friday"))
    assert await send_updates(services, now=t0 + timedelta(seconds=91)) == 0
    assert await send_updates(services, now=t0 + timedelta(seconds=122)) == 1
    await world.worker.drain()
    for server in world.servers:
        _, second = server.of_type("Update")
        assert counts_of(second.activity["object"]) == {"Monday": 2, "Friday": 2}
        assert second.activity["object"]["votersCount"] == 4


async def test_two_sweeps_at_once_send_one_update(world, services):
    t0 = utcnow()
    post = await create_poll(services, NAME, OWNER, question="Q?", options=["A", "B"], now=t0)
    await world.send(world.mastodon, "alice", vote(world.mastodon, "alice", post.uri, "A"))
    later = t0 + timedelta(minutes=2)
    sent = await asyncio.gather(*(send_updates(services, now=later) for _ in range(4)))
    assert sum(sent) == 1
    updates = await _rows(services, outbound_activities, outbound_activities.c.type == "Update")
    assert len(updates) == 1


async def test_who_may_vote_and_what_is_ignored(world, client, services):
    world.mastodon.add_user("eve")  # on a member's server, but not a member herself
    t0 = utcnow()
    post = await create_poll(services, NAME, OWNER, question="Pick one", options=["A", "B"], now=t0)
    await world.worker.drain()
    world.clear()

    await world.send(world.mastodon, "eve", vote(world.mastodon, "eve", post.uri, "A"))
    assert await _tally(services, post.id) == ({}, 0)  # a non-member's vote is not counted
    assert await send_updates(services, now=t0 + timedelta(minutes=5)) == 0  # nor does it cause an Update

    await world.send(world.mastodon, "alice", vote(world.mastodon, "alice", post.uri, "A"))
    await world.send(world.mastodon, "alice", vote(world.mastodon, "alice", post.uri, "A"))  # again, a new id
    await world.send(world.mastodon, "alice", vote(world.mastodon, "alice", post.uri, "B"))  # oneOf: ignored
    assert await _tally(services, post.id) == ({"A": 1}, 1)

    # Signed by bob but claiming to be alice's: the inbox's signer check drops it before any count.
    forged = vote(world.mastodon, "alice", post.uri, "B")
    r = await world.social.post(client, "bob", f"https://{GROUP.split('/')[2]}/inbox", forged)
    assert r.status_code in (401, 403)
    # bob's activity carrying an object that is alice's: not his vote to cast.
    theirs = vote(world.social, "bob", post.uri, "B")
    theirs["object"]["attributedTo"] = world.mastodon.actor_uri("alice")
    await world.send(world.social, "bob", theirs)
    assert await _tally(services, post.id) == ({"A": 1}, 1)

    # Never a post, never passed on, never shown.
    assert [p.uri for p in await _rows(services, posts)] == [post.uri]
    await world.worker.drain()
    assert [r.activity for s in world.servers for r in s.received] == []
    assert await _rows(services, outbound_activities, outbound_activities.c.type == "Announce") == []
    page = (await client.get(GROUP, headers={"Accept": "text/html"})).text
    assert "#votes/" not in page and page.count('class="poll"') == 1
    [stored] = await _rows(services, poll_votes)
    assert (stored.voter_uri, stored.option) == (world.mastodon.actor_uri("alice"), "A")


async def test_several_options_count_in_an_anyof_poll(world, services):
    t0 = utcnow()
    post = await create_poll(
        services, NAME, OWNER, question="Which days?", options=["Mon", "Tue", "Wed"], multiple=True, now=t0
    )
    await world.worker.drain()
    assert "anyOf" in world.mastodon.received[0].activity["object"]
    world.clear()
    for option in ("Mon", "Wed", "Mon"):
        await world.send(world.mastodon, "alice", vote(world.mastodon, "alice", post.uri, option))
    await world.send(world.social, "bob", vote(world.social, "bob", post.uri, "Wed"))
    assert await _tally(services, post.id) == ({"Mon": 1, "Wed": 2}, 2)
    assert await send_updates(services, now=t0 + timedelta(minutes=1)) == 1
    await world.worker.drain()
    [update] = world.social.of_type("Update")
    question = update.activity["object"]
    assert "oneOf" not in question and counts_of(question) == {"Mon": 1, "Tue": 0, "Wed": 2}
    assert question["votersCount"] == 2


async def test_at_its_end_the_poll_closes_with_a_final_update_and_later_votes_are_ignored(world, client, services):
    t0 = utcnow() - timedelta(minutes=59, seconds=57)  # posted almost an hour ago, for an hour
    post = await create_poll(services, NAME, OWNER, question="Quick one", options=["Yes", "No"], hours=1, now=t0)
    await world.worker.drain()
    world.clear()
    await world.send(world.social, "bob", vote(world.social, "bob", post.uri, "No"))
    assert await _tally(services, post.id) == ({"No": 1}, 1)

    end = t0 + timedelta(hours=1)
    while utcnow() < end:  # at most three seconds: the poll's end must be real for the inbox's vote below
        await asyncio.sleep(0.5)
    await world.send(world.mastodon, "alice", vote(world.mastodon, "alice", post.uri, "Yes"))  # after endTime
    assert await _tally(services, post.id) == ({"No": 1}, 1)

    assert await send_updates(services, now=end + timedelta(seconds=1)) == 1
    await world.worker.drain()
    for server in world.servers:
        [update] = server.of_type("Update")
        question = update.activity["object"]
        assert question["closed"] == question["endTime"] and counts_of(question) == {"Yes": 0, "No": 1}
    served = (await client.get(post.uri, headers=AS_JSON)).json()
    assert served["closed"] == served["endTime"]
    [poll] = await _rows(services, polls.polls)
    assert poll.closed_at is not None
    # Closed: no more Updates, and a vote now is ignored even with a clock that says otherwise.
    assert await send_updates(services, now=end + timedelta(minutes=5)) == 0
    assert await polls.take_vote(
        services, vote(world.mastodon, "alice", post.uri, "Yes")["object"], world.mastodon.actor_uri("alice"), now=t0
    ) == ("ignored: the poll is closed")


async def test_a_vote_counts_the_voter_as_active_in_the_groups_figures(world, services):
    post = await create_poll(services, NAME, OWNER, question="Q?", options=["A", "B"])
    async with services.db.read() as conn:
        before = await active_people(conn, world.group.id, utcnow())
    await world.send(world.social, "bob", vote(world.social, "bob", post.uri, "B"))
    async with services.db.read() as conn:
        after = await active_people(conn, world.group.id, utcnow())
        voters = (await conn.execute(voted(world.group.id, utcnow() - timedelta(days=1)))).all()
    assert after == (before[0] + 1, before[1] + 1)  # bob, who only voted
    assert [v.who for v in voters] == [world.social.actor_uri("bob")]
    assert voted in ACTIVITY_SOURCES


async def test_a_removed_poll_takes_no_votes_and_sends_no_update(world, services):
    from server.moderation.actions import group_and_moderator, remove_post

    t0 = utcnow()
    post = await create_poll(services, NAME, OWNER, question="Q?", options=["A", "B"], now=t0)
    await world.send(world.mastodon, "alice", vote(world.mastodon, "alice", post.uri, "A"))
    group, by = await group_and_moderator(services, NAME, OWNER)
    await remove_post(services, group, post.uri, by=by, reason="wrong poll")
    await world.send(world.social, "bob", vote(world.social, "bob", post.uri, "B"))
    assert await _tally(services, post.id) == ({"A": 1}, 1)
    assert await send_updates(services, now=t0 + timedelta(minutes=2)) == 0
    assert await _rows(services, outbound_activities, outbound_activities.c.type == "Update") == []


async def test_only_leaders_ask(world, services):
    with pytest.raises(Forbidden, match="not the owner or a moderator"):
        await create_poll(services, NAME, "nobody", question="Q?", options=["A", "B"])
    assert await _rows(services, polls.polls) == []


async def test_kith_group_poll_from_a_shell(world, settings, services):
    env = {**os.environ, "KITH_DOMAIN": settings.domain, "KITH_DATABASE_URL": settings.database_url}
    base = [sys.executable, "-m", "server", "group", "poll"]

    async def kith(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run, [*base, *args], env=env, capture_output=True, text=True, timeout=60
        )

    r = await kith(NAME, "--as", OWNER, "--question", "Tea or coffee?", "--option", "Tea", "--option", "Coffee")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["options"] == ["Tea", "Coffee"] and shown["multiple"] is False
    [poll] = await _rows(services, polls.polls)
    assert poll.ends_at - poll.sent_at == timedelta(hours=24)
    for args, message in [
        ((NAME, "--as", OWNER, "--question", "Q", "--option", "A"), "2 to 10 options; 1 given"),
        ((NAME, "--as", OWNER, "--question", "Q", "--option", "A", "--option", "A"), "not unique"),
        ((NAME, "--as", OWNER, "--question", "Q", "--option", "A", "--option", "B" * 101), "at most 100"),
        ((NAME, "--as", OWNER, "--question", "Q", "--option", "A", "--option", "B", "--hours", "0"), "1 to 720"),
        ((NAME, "--as", OWNER, "--question", "Q", "--option", "A", "--option", "B", "--hours", "721"), "1 to 720"),
        ((NAME, "--as", "alice", "--question", "Q", "--option", "A", "--option", "B"), "not the owner"),
        (("nosuch", "--as", OWNER, "--question", "Q", "--option", "A", "--option", "B"), "no group named"),
    ]:
        r = await kith(*args)
        assert r.returncode == 1 and r.stdout == "", r.stdout
        [line] = r.stderr.strip().splitlines()
        assert line.startswith("kith: error:") and message in line.lower(), line
    assert len(await _rows(services, polls.polls)) == 1
