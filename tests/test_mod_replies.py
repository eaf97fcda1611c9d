"""Moderators act by replying to the group's direct message: the command applies once, and only theirs counts."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from server.moderation.authority import remove_remote_moderator
from server.moderation.commands import Command, CommandError, parse_command
from server.tables import follows, mod_log, mod_replies, posts, reports
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.world import GROUP, SHARED_INBOX
from tests.modreply_helpers import PUBLIC, a_minute_later, flag, make_remote_moderator, notices_to, reply

# --------------------------------------------------------------------------- the parser (pure)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@bookclub remove spam", Command("remove", None, "spam")),
        ("@bookclub@kith.test   Remove  2 off topic", Command("remove", 2, "off topic")),
        ("@haven @ann@x.example approve", Command("approve")),
        ("remove #3", Command("remove", 3)),
        ("ban 7d flooding purge", Command("ban", None, "flooding", 7, True)),
        ("ban 2 30d", Command("ban", 2, "", 30)),
        ("ban purge", Command("ban", None, "", None, True)),
        ("ban 4", Command("ban", 4)),
        ("dismiss.", Command("dismiss")),
        ("resolve thanks, handled", Command("resolve", None, "thanks, handled")),
        ("lock", Command("lock")),
        ("restore 1 my mistake", Command("restore", 1, "my mistake")),
    ],
)
def test_commands_are_read_after_the_mentions(text, expected):
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no command"),
        ("@bookclub", "no command"),
        ("@bookclub please remove this", "'please' is not a command"),
        ("@bookclub delete 2", "'delete' is not a command"),
        ("ban 0d", "1 to 3650 days"),
        ("ban 9999d", "1 to 3650 days"),
        ("remove 0", "no item 0"),
    ],
)
def test_what_is_not_a_command_says_why(text, why):
    with pytest.raises(CommandError, match=why):
        parse_command(text)


def test_a_reason_is_capped_and_the_command_normalised():
    command = parse_command("@g ban 2 7d " + "x" * 900 + " purge")
    assert len(command.reason) == 500 and command.purge and command.describe().startswith("ban #2 7d xxx")


# --------------------------------------------------------------------------- the whole path


async def _reported(world, mods: FakeMastodon):
    """alice's post, reported by rita (social.example), told to mia (mods.example): (note, mia's notice)."""
    await make_remote_moderator(world, mods, "mia")
    note = await world.post(world.mastodon, "alice", "<p>Buy cheap pills at pills.example</p>")
    world.social.add_user("rita")
    await world.send(world.social, "rita", flag(world.social, "rita", note))
    [notice] = notices_to(mods, "mia")
    return note, notice


async def _state(services, uri):
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(posts.c.state).where(posts.c.uri == uri))).scalar_one()


async def _log(services):
    async with services.db.read() as conn:
        return [(r.moderator, r.action, r.target, r.reason) for r in (await conn.execute(sa.select(mod_log))).all()]


@pytest.fixture
async def mods(network):
    fake = FakeMastodon("mods.example", network)
    yield fake
    await fake.http.aclose()


async def test_a_reply_remove_spam_removes_the_post_everywhere_once(world, mods, services):
    note, notice = await _reported(world, mods)
    mia = mods.actor_uri("mia")
    world.clear()
    mods.received.clear()

    answer = reply(mods, "mia", notice, "remove spam")
    await world.send(mods, "mia", answer)

    assert await _state(services, note["id"]) == "removed"
    for server in world.servers:  # every member server hears of the removal, as from the console
        deletes = [
            r.activity["object"]
            for r in server.received
            if r.activity["type"] == "Announce" and isinstance(r.activity["object"], dict)
        ]
        assert any(d["type"] == "Delete" and d["object"] == note["id"] and d["actor"] == mia for d in deletes)
    assert ("https://mods.example/users/mia", "remove", note["id"], "spam") in await _log(services)
    async with services.db.read() as conn:
        report = (await conn.execute(sa.select(reports))).one()
    assert report.state == "resolved" and report.action_taken == "remove"
    [confirmation] = notices_to(mods, "mia")
    assert "Removed" in confirmation["object"]["content"] and PUBLIC not in json.dumps(confirmation)
    # The reply is no group post: not stored, not announced, not on the group's page.
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(posts.c.uri).where(posts.c.uri == answer["object"]["id"]))).first() is None
    assert answer["object"]["id"] not in json.dumps([r.activity for s in world.servers for r in s.received])

    # The same reply delivered again (and in another Create) acts once and is answered once.
    before = await _log(services)
    mods.received.clear()
    await world.send(mods, "mia", answer)
    again = dict(answer, id=answer["id"] + "-again")
    await world.send(mods, "mia", again)
    assert await _log(services) == before and notices_to(mods, "mia") == []
    async with services.db.read() as conn:
        assert len((await conn.execute(sa.select(mod_replies))).all()) == 1


async def _nothing_changes(world, services, mods, note, activity, sender="mia", server=None):
    before = (await _state(services, note["id"]), await _log(services))
    mods.received.clear()
    await world.send(server or mods, sender, activity)
    assert (await _state(services, note["id"]), await _log(services)) == before
    assert notices_to(mods, "mia") == []  # no answer either
    async with services.db.read() as conn:
        stored = (await conn.execute(sa.select(posts.c.uri).where(posts.c.uri == activity["object"]["id"]))).first()
    assert stored is None  # never a group post


async def test_replies_by_anyone_else_or_off_the_rules_change_nothing(world, mods, services, client):
    note, notice = await _reported(world, mods)

    # A member who is no moderator replies to mia's notice (its id is no secret once seen).
    world.mastodon.add_user("mallory")
    await _nothing_changes(
        world, services, mods, note, reply(world.mastodon, "mallory", notice, "remove spam"), "mallory", world.mastodon
    )
    # Unsigned: the inbox refuses it (401), nothing is stored.
    unsigned = reply(mods, "mia", notice, "remove spam")
    r = await client.post(
        SHARED_INBOX, content=json.dumps(unsigned), headers={"content-type": "application/activity+json"}
    )
    assert r.status_code == 401
    assert await _state(services, note["id"]) == "visible"
    # Signed by mia, but the reply claims an id on another origin.
    await _nothing_changes(
        world, services, mods, note, reply(mods, "mia", notice, "remove spam", note_id="https://kith.test/notes/x")
    )
    # Signed by mia, but attributed to someone else.
    await _nothing_changes(
        world,
        services,
        mods,
        note,
        reply(mods, "mia", notice, "remove spam", author=world.mastodon.actor_uri("alice")),
    )
    # Public, or to followers: commands are never read from public posts.
    await _nothing_changes(world, services, mods, note, reply(mods, "mia", notice, "remove spam", to=[GROUP, PUBLIC]))
    await _nothing_changes(
        world,
        services,
        mods,
        note,
        reply(mods, "mia", notice, "remove spam", cc=[mods.actor_uri("mia") + "/followers"]),
    )
    # A reply to something other than a notice sent to mia: the member's own post, or another moderator's notice.
    await make_remote_moderator(world, world.social, "bob")
    world.social.received.clear()
    await world.send(world.social, "rita", flag(world.social, "rita", note, "again"))
    await world.worker.drain()
    bobs = notices_to(world.social, "bob")
    assert bobs, "bob, a moderator too, was told"
    await _nothing_changes(world, services, mods, note, reply(mods, "mia", bobs[-1], "remove spam"))
    await _nothing_changes(world, services, mods, note, reply(mods, "mia", note["id"], "remove spam"))
    # mia is removed as a moderator: her reply to her own notice no longer counts.
    async with services.db.transaction() as conn:
        await remove_remote_moderator(conn, world.group.id, mods.actor_uri("mia"))
    await _nothing_changes(world, services, mods, note, reply(mods, "mia", notice, "remove spam"))


async def test_a_domain_block_wins_over_a_listed_moderator(world, mods, services):
    from server.moderation.blocklist.store import BLOCKS, BlockSpec, create

    note, notice = await _reported(world, mods)
    activity = reply(mods, "mia", notice, "remove spam")
    await world.send(mods, "mia", activity, drain=False)  # accepted before the block...
    await create(services.db, BLOCKS, BlockSpec("mods.example", "suspend"), actor="admin1")
    await services.blocklist.reload()
    await world.worker.drain()  # ...and dropped after it
    assert await _state(services, note["id"]) == "visible"


async def test_commands_on_a_digest_name_their_item_and_wrong_ones_are_answered(world, mods, services):
    await make_remote_moderator(world, mods, "mia")
    world.social.add_user("rita")
    one = await world.post(world.mastodon, "alice", "<p>first</p>", drain=False)
    two = await world.post(world.mastodon, "alice", "<p>second</p>", drain=False)
    await world.worker.drain()
    await world.send(world.social, "rita", flag(world.social, "rita", one, "rude"), drain=False)
    await world.send(world.social, "rita", flag(world.social, "rita", two, "spam"), drain=False)
    await world.worker.drain()
    [digest] = notices_to(mods, "mia")
    content = digest["object"]["content"]
    assert "#1" in content and "#2" in content and "“remove 2 spam”" in content
    mods.received.clear()

    await world.send(mods, "mia", reply(mods, "mia", digest, "remove spam"))
    [answer] = notices_to(mods, "mia")
    assert "holds 2 items" in answer["object"]["content"]
    mods.received.clear()
    await world.send(mods, "mia", reply(mods, "mia", digest, "approve 2"))
    assert "does not apply to a report" in notices_to(mods, "mia")[0]["object"]["content"]
    mods.received.clear()
    await world.send(mods, "mia", reply(mods, "mia", digest, "remove 7"))
    assert "no item 7" in notices_to(mods, "mia")[0]["object"]["content"]
    assert await _state(services, one["id"]) == "visible" and await _state(services, two["id"]) == "visible"

    mods.received.clear()
    await world.send(mods, "mia", reply(mods, "mia", digest, "remove 2 spam"))
    assert await _state(services, two["id"]) == "removed" and await _state(services, one["id"]) == "visible"
    # The answer is bound to item 2: replying "restore" to it restores that post.
    [answer] = notices_to(mods, "mia")
    await world.send(mods, "mia", reply(mods, "mia", answer, "restore"))
    assert await _state(services, two["id"]) == "visible"


async def test_ban_purge_from_a_report_and_a_follow_request_approved(world, mods, services):
    await make_remote_moderator(world, mods, "mia")
    world.social.add_user("rita")
    note = await world.post(world.mastodon, "alice", "<p>nasty</p>")
    await world.send(world.social, "rita", flag(world.social, "rita", note, "abuse"))
    [notice] = notices_to(mods, "mia")
    mods.received.clear()
    await world.send(mods, "mia", reply(mods, "mia", notice, "ban 7d abuse purge"))
    assert await _state(services, note["id"]) == "removed"
    assert "Banned" in notices_to(mods, "mia")[0]["object"]["content"]
    assert ("https://mods.example/users/mia", "ban", world.mastodon.actor_uri("alice"), "abuse") in await _log(services)

    # A manual group: a follow request is told and approved by reply.
    from server.moderation.actions import group_and_moderator
    from server.moderation.profiles import ProfileEdit, edit_profile

    group, by = await group_and_moderator(services, "bookclub", "mod1")
    await edit_profile(services, group, ProfileEdit(approval="manual"), by=by)
    await world.worker.drain()
    world.mastodon.add_user("nora")
    mods.received.clear()
    await world.join(world.mastodon, "nora")
    assert notices_to(mods, "mia") == []  # mia heard from the group this minute: it waits
    await a_minute_later(world)
    [request] = notices_to(mods, "mia")
    assert "Follow request from @nora@mastodon.example" in request["object"]["content"]
    world.clear()
    await world.send(mods, "mia", reply(mods, "mia", request, "approve"))
    assert any(r.activity["type"] == "Accept" for r in world.mastodon.received)
    async with services.db.read() as conn:
        states = (await conn.execute(sa.select(follows.c.state))).scalars().all()
    assert "pending" not in states
