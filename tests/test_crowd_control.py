"""Crowd control: the switch, what it holds, slow mode, the anomaly alarm, and block candidates.

Signed fake remotes throughout (the world's alice and bob, a brigade server of 50 users whose
memberships are written by ``add_members``); the ordinary day is replayed through the real
detector (``moderation/crowd.py`` over ``event_counts``) with simulated clock times.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from server import event_counts
from server.accounts import create_user
from server.groups.membership import GroupSpec, create_group
from server.moderation import actions, crowd
from server.moderation.crowd_rules import Thresholds, Window, anomaly
from server.moderation.rulebook import save_guards
from server.tables import crowd_control, domain_blocks, follows, mod_log, posts, remote_actors
from server.types import utcnow
from tests.console_helpers import page_csrf, sign_in
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.members import add_members
from tests.fakes.ordinary_day import events, peaks
from tests.fakes.world import NAME
from tests.modreply_helpers import make_remote_moderator, notices_to
from tests.shell import kith

PASSWORD = "correct horse battery"
CONSOLE = f"/console/groups/{NAME}"
BRIGADE = 50


@pytest.fixture
async def brigade(network):
    """brigade.example: 50 users with keys of their own, none of them a member yet."""
    fake = FakeMastodon("brigade.example", network)
    for i in range(BRIGADE):
        fake.add_user(f"b{i}")
    yield fake
    await fake.http.aclose()


async def join_brigade(services, world, brigade) -> None:
    """The brigade's 50 users as members who joined just now (written as the Follow handler would)."""
    await add_members(services.db, world.group.id, [(brigade.actor_uri(f"b{i}"), None) for i in range(BRIGADE)])


async def age(services, actor_uri: str, days: int = 10) -> None:
    """Make ``actor_uri``'s membership ``days`` old (an established member)."""
    then = utcnow() - timedelta(days=days)
    async with services.db.transaction() as conn:
        actor_id = (await conn.execute(sa.select(remote_actors.c.id).where(remote_actors.c.uri == actor_uri))).scalar()
        await conn.execute(
            sa.update(follows).where(follows.c.actor_id == actor_id).values(created_at=then, decided_at=then)
        )


async def state_of(services, uri: str) -> tuple[str, str | None]:
    async with services.db.read() as conn:
        row = (await conn.execute(sa.select(posts.c.state, posts.c.held_reason).where(posts.c.uri == uri))).one()
    return row.state, row.held_reason


async def states(services, prefix: str) -> dict[str, int]:
    async with services.db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(posts.c.state, sa.func.count())
                .where(posts.c.author_uri.like(prefix + "%"))
                .group_by(posts.c.state)
            )
        ).all()
    return {state: n for state, n in rows}


async def log_entries(services, action: str) -> list[sa.Row]:
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(mod_log).where(mod_log.c.action == action))).all()


async def crowd_cli(settings, *args: str):
    return await asyncio.to_thread(kith, settings, "mod", "crowd-control", NAME, *args)


async def established(services, world) -> None:
    """alice and bob joined ten days ago and each has a post shown (so their servers are known)."""
    for server, name in ((world.mastodon, "alice"), (world.social, "bob")):
        await age(services, server.actor_uri(name))
        note = await world.post(server, name, f"<p>{name} on books</p>")
        assert (await state_of(services, note["id"]))[0] == "visible"


# --------------------------------------------------------------------------- the switch and what it holds


async def test_crowd_control_holds_a_brigade_of_new_members_while_an_older_member_posts(
    settings, services, world, brigade
):
    await established(services, world)
    await join_brigade(services, world, brigade)
    r = await crowd_cli(settings, "on", "--as", "mod1", "--hours", "6")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["on"] is True and shown["turned_on_by"] == "mod1"
    until = datetime.fromisoformat(shown["until"].replace("Z", "+00:00"))
    assert timedelta(hours=5, minutes=59) < until - utcnow() <= timedelta(hours=6)

    world.clear()
    for i in range(BRIGADE):
        await world.post(brigade, f"b{i}", f"<p>raid {i}</p>", drain=False)
    await world.worker.drain()
    alices = await world.post(world.mastodon, "alice", "<p>back to the book</p>")

    assert await states(services, "https://brigade.example/") == {"held": BRIGADE}
    assert await state_of(services, alices["id"]) == ("visible", None)
    async with services.db.read() as conn:
        reason = (
            await conn.execute(sa.select(posts.c.held_reason).where(posts.c.author_uri.like("https://brigade%")))
        ).scalar()
    assert reason == "crowd control: the author joined in the last 48 hours"
    # Only alice's post reached the members: nothing of the brigade was announced.
    announced = [r.activity for r in world.social.received if r.activity["type"] == "Announce"]
    assert announced and all("raid" not in json.dumps(a) for a in announced)
    # The switch is in the log under the moderator's name.
    (entry,) = await log_entries(services, "crowd_control_on")
    assert entry.moderator == "mod1" and entry.reason == "for 6 hours"


async def test_a_server_with_no_shown_post_is_held_while_on(settings, services, world):
    # bob joined long ago, but nobody on social.example ever had a post shown in the group.
    await age(services, world.social.actor_uri("bob"))
    assert (await crowd_cli(settings, "on", "--as", "mod2")).returncode == 0
    note = await world.post(world.social, "bob", "<p>hello at last</p>")
    assert await state_of(services, note["id"]) == (
        "held",
        "crowd control: the first post from this server in the group",
    )


async def test_new_follows_wait_while_on_even_in_an_auto_approval_group(settings, services, world):
    world.mastodon.add_user("carol")
    world.mastodon.add_user("dave")
    assert world.group.approval == "auto"
    assert (await crowd_cli(settings, "on", "--as", "mod1")).returncode == 0
    world.clear()
    await world.join(world.mastodon, "carol")
    async with services.db.read() as conn:
        state = (
            await conn.execute(
                sa.select(follows.c.state)
                .join(remote_actors, remote_actors.c.id == follows.c.actor_id)
                .where(remote_actors.c.uri == world.mastodon.actor_uri("carol"))
            )
        ).scalar_one()
    assert state == "pending"
    assert world.mastodon.of_type("Accept") == []
    # Off again: the next follow is accepted at once; carol still waits for a moderator.
    r = await crowd_cli(settings, "off", "--as", "mod1")
    assert json.loads(r.stdout)["on"] is False
    await world.join(world.mastodon, "dave")
    accepted = [r.activity["object"]["actor"] for r in world.mastodon.of_type("Accept")]
    assert accepted == [world.mastodon.actor_uri("dave")]


async def test_slow_mode_holds_a_second_reply_in_a_thread_within_ten_minutes(settings, services, world):
    await established(services, world)
    root = await world.post(world.social, "bob", "<p>chapter one?</p>")
    other = await world.post(world.social, "bob", "<p>chapter two?</p>")
    assert (await crowd_cli(settings, "on", "--as", "mod1")).returncode == 0

    first = await world.reply(world.mastodon, "alice", root, "<p>loved it</p>")
    second = await world.reply(world.mastodon, "alice", root, "<p>and another thing</p>")
    elsewhere = await world.reply(world.mastodon, "alice", other, "<p>not yet read</p>")
    assert (await state_of(services, first["id"]))[0] == "visible"
    assert await state_of(services, second["id"]) == (
        "held",
        "crowd control's slow mode: one post per member per thread every 10 minutes",
    )
    assert (await state_of(services, elsewhere["id"]))[0] == "visible"  # per thread
    # Kept for the moderators, with its reason, not lost:
    r = await asyncio.to_thread(kith, settings, "mod", "held", NAME)
    assert [p["uri"] for p in json.loads(r.stdout)] == [second["id"]]

    # Ten minutes later (her posts in the thread made older), she may reply again.
    async with services.db.transaction() as conn:
        await conn.execute(
            sa.update(posts)
            .where(posts.c.author_uri == world.mastodon.actor_uri("alice"))
            .values(created_at=utcnow() - timedelta(minutes=11))
        )
    later = await world.reply(world.mastodon, "alice", root, "<p>after a pause</p>")
    assert (await state_of(services, later["id"]))[0] == "visible"


async def test_it_turns_itself_off_when_its_hours_are_over(settings, services, world, brigade):
    await established(services, world)
    await join_brigade(services, world, brigade)
    assert (await crowd_cli(settings, "on", "--as", "mod1", "--hours", "2")).returncode == 0
    held = await world.post(brigade, "b0", "<p>too early</p>")
    assert (await state_of(services, held["id"]))[0] == "held"
    # Two hours pass: the stored ``until`` is behind us. No timer ran; the next post reads it.
    async with services.db.transaction() as conn:
        await conn.execute(sa.update(crowd_control).values(until=utcnow() - timedelta(seconds=1)))
    shown = await world.post(brigade, "b1", "<p>after the storm</p>")
    assert (await state_of(services, shown["id"]))[0] == "visible"
    status = json.loads((await crowd_cli(settings, "--as", "mod1")).stdout)
    assert status["on"] is False and status["until"] is None
    async with services.db.read() as conn:
        control = await crowd.load(conn, world.group.id)
    assert not control.on(utcnow()) and control.on(utcnow() - timedelta(minutes=1))


async def test_the_command_refuses_bad_input_and_non_moderators(settings, services, world):
    await create_user(services.db, "stranger")
    cases = [
        (("on", "--as", "mod1", "--hours", "0"), "hours must be a whole number from 1 to 720"),
        (("on", "--as", "mod1", "--hours", "100000"), "hours must be a whole number from 1 to 720"),
        (("--as", "mod1", "--server-share", "101"), "server-share-percent must be a whole number from 1 to 100"),
        (("--as", "mod1", "--follows", "0"), "follows must be a whole number from 1 to 100000"),
        (("on", "--as", "stranger"), "stranger is not a moderator of bookclub"),
        (("sideways", "--as", "mod1"), "invalid choice"),
    ]
    for args, message in cases:
        r = await crowd_cli(settings, *args)
        assert r.returncode != 0, args
        assert message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    async with services.db.read() as conn:
        control = await crowd.load(conn, world.group.id)
    assert not control.on(utcnow()) and control.thresholds == Thresholds()
    # Thresholds are stored per group, and logged.
    r = await crowd_cli(settings, "--as", "mod2", "--new-member-posts", "40", "--follows", "80")
    assert json.loads(r.stdout)["thresholds"] == {
        "new_member_posts": 40,
        "server_share_percent": 50,
        "server_min_posts": 25,
        "follows": 80,
    }
    (entry,) = await log_entries(services, "crowd_thresholds")
    assert entry.moderator == "mod2" and entry.reason == "new-member-posts=40, follows=80"


# --------------------------------------------------------------------------- the console


async def test_the_console_turns_it_on_and_off_with_csrf(services, client, world):
    await create_user(services.db, "ada", password=PASSWORD, admin=True)
    assert (await sign_in(client, "ada", PASSWORD)).status_code == 303
    page = await client.get(CONSOLE)
    assert "Crowd control: off" in page.text and "Turn on" in page.text and "Turn off" in page.text
    forged = await client.post(f"{CONSOLE}/act", data={"csrf": "forged", "action": "crowd-on", "hours": "3"})
    assert forged.status_code == 403
    async with services.db.read() as conn:
        assert not (await crowd.load(conn, world.group.id)).on(utcnow())

    token = await page_csrf(client, CONSOLE)
    r = await client.post(f"{CONSOLE}/act", data={"csrf": token, "back": "queue", "action": "crowd-on", "hours": "3"})
    assert r.status_code == 303
    page = await client.get(r.headers["location"])
    assert "Crowd control is on." in page.text and "Crowd control: on" in page.text and "Turned on by ada" in page.text
    async with services.db.read() as conn:
        control = await crowd.load(conn, world.group.id)
    assert control.until is not None and timedelta(hours=2, minutes=59) < control.until - utcnow()

    bad = await client.post(f"{CONSOLE}/act", data={"csrf": token, "action": "crowd-on", "hours": "9999"})
    assert bad.status_code == 400 and "hours must be a whole number from 1 to 720" in bad.text
    r = await client.post(f"{CONSOLE}/act", data={"csrf": token, "back": "queue", "action": "crowd-off"})
    assert r.status_code == 303
    assert "Crowd control: off" in (await client.get(CONSOLE)).text
    assert [e.moderator for e in await log_entries(services, "crowd_control_off")] == ["ada"]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"action": "dismiss-alarm", "alarm": "9" * 5000}, "the form named no alarm"),
        ({"action": "dismiss-alarm", "alarm": "²"}, "the form named no alarm"),
        ({"action": "remove-schedule", "target": "9" * 5000}, "the form named no schedule"),
        ({"action": "resolve", "report": "9" * 5000}, "the form named no report"),
        ({"action": "crowd-on", "hours": "9" * 5000}, "hours must be a whole number"),
    ],
)
async def test_the_consoles_numbers_are_refused_with_a_400_however_long(services, client, world, fields, reason):
    # int() refuses more than 4,300 digits with a ValueError: a 500 unless the length is checked first.
    await create_user(services.db, "ada", password=PASSWORD, admin=True)
    await sign_in(client, "ada", PASSWORD)
    token = await page_csrf(client, CONSOLE)
    r = await client.post(f"{CONSOLE}/act", data={"csrf": token, **fields})
    assert r.status_code == 400 and reason in r.text


# --------------------------------------------------------------------------- the anomaly alarm


async def test_the_alarm_turns_it_on_when_a_brigade_of_new_members_posts(services, client, world, brigade):
    await make_remote_moderator(world, world.social, "mara")  # a moderator on another server
    await established(services, world)
    await join_brigade(services, world, brigade)
    for i in range(BRIGADE):
        await world.post(brigade, f"b{i}", f"<p>raid {i}</p>", drain=False)
    await world.worker.drain()
    alices = await world.post(world.mastodon, "alice", "<p>anyway, chapter three</p>")

    # 20 new members' posts in ten minutes are ordinary; the 21st trips the alarm and is held.
    assert await states(services, "https://brigade.example/") == {"visible": 20, "held": 30}
    assert (await state_of(services, alices["id"]))[0] == "visible"
    (alarm,) = await log_entries(services, "crowd_control_alarm")
    assert alarm.moderator == crowd.ALARM and alarm.target == NAME
    # The count it names is the one seen by the post whose transaction turned it on: the 21st,
    # or, when worker batches run side by side (on PostgreSQL each count commits at once), a
    # later post whose batch committed its switch first. Never fewer than 21.
    counted = re.fullmatch(
        r"(\d+) posts in 10 minutes from members who joined in the last 48 hours \(more than 20\)", alarm.reason
    )
    assert counted and 21 <= int(counted[1]) <= BRIGADE, alarm.reason
    seen = f"{counted[1]} posts in 10 minutes from members who joined"
    async with services.db.read() as conn:
        control = await crowd.load(conn, world.group.id)
    assert control.on(utcnow()) and control.turned_on_by == crowd.ALARM
    assert timedelta(hours=23, minutes=59) < control.until - utcnow() <= timedelta(hours=24)
    # The moderators see it on the group's console page.
    await create_user(services.db, "ada", password=PASSWORD, admin=True)
    await sign_in(client, "ada", PASSWORD)
    page = (await client.get(CONSOLE)).text
    assert "Alarm:" in page and seen in page
    # The remote moderator is told by direct message, once, however many posts came after the 21st.
    (message,) = notices_to(world.social, "mara")
    assert "Crowd control turned itself on" in message["object"]["content"]
    assert seen in message["object"]["content"]
    assert "https://www.w3.org/ns/activitystreams#Public" not in json.dumps(message)


async def test_the_alarm_trips_on_a_jump_in_follows_with_the_groups_own_threshold(settings, services, world):
    r = await crowd_cli(settings, "--as", "mod1", "--follows", "4")
    assert r.returncode == 0, r.stderr
    for i in range(6):
        world.mastodon.add_user(f"f{i}")
        await world.join(world.mastodon, f"f{i}")
    async with services.db.read() as conn:
        pending = (await conn.execute(sa.select(sa.func.count()).where(follows.c.state == "pending"))).scalar_one()
    # alice and bob joined in these ten minutes too: the 3rd new follow here is the 5th, over 4.
    assert pending == 4
    (alarm,) = await log_entries(services, "crowd_control_alarm")
    assert alarm.reason == "5 new follows in 10 minutes (more than 4)"


async def test_the_alarm_trips_on_one_servers_share_of_posts(settings, services, world):
    await established(services, world)
    r = await crowd_cli(settings, "--as", "mod1", "--server-min-posts", "6")
    assert r.returncode == 0
    for i in range(3):
        world.mastodon.add_user(f"o{i}")
        await world.join(world.mastodon, f"o{i}")
        await age(services, world.mastodon.actor_uri(f"o{i}"))
    for i in range(6):
        await world.post(world.mastodon, f"o{i % 3}", f"<p>o{i}</p>")
    # With alice's and bob's earlier posts: the 5th makes mastodon.example's 6 of 7, over half.
    (alarm,) = await log_entries(services, "crowd_control_alarm")
    assert alarm.reason == "6 of the last 10 minutes' 7 posts came from mastodon.example (more than 50%)"


async def test_several_processes_seeing_one_anomaly_raise_one_alarm(services, world):
    """Two transactions that both see the window trip: the conditional update lets one turn it on."""
    seen = Window(posts=30, new_member_posts=30, server_posts=30)
    control = crowd.CrowdControl(world.group.id)

    async def trip():
        async with services.db.transaction() as conn:
            await crowd.watch_post(
                conn, services.db, world.group, control, seen, domain="x.example", new=True, now=utcnow()
            )

    await asyncio.gather(trip(), trip())
    assert len(await log_entries(services, "crowd_control_alarm")) == 1


async def test_a_count_waits_for_no_open_transaction_and_every_count_is_distinct(services, world):
    """Two transactions each counting a post to one group in one minute: on PostgreSQL the count commits at
    once, so the second neither waits for the first to commit (its batch may hold nine more posts) nor
    sees the same number; on SQLite, one writer at a time, the second transaction starts after the first."""
    at = utcnow()
    keys = (crowd.POSTS, crowd.server_key("x.example"))
    if services.db.is_sqlite:
        async with services.db.transaction() as conn:
            first = await event_counts.add(conn, services.db, world.group.id, keys, at)
        async with services.db.transaction() as conn:
            second = await event_counts.add(conn, services.db, world.group.id, keys, at)
    else:
        async with services.db.transaction() as one:
            first = await event_counts.add(one, services.db, world.group.id, keys, at)
            async with services.db.transaction() as other:  # another connection, while the first stays open
                second = await asyncio.wait_for(event_counts.add(other, services.db, world.group.id, keys, at), 5)
    assert first == {crowd.POSTS: 1, "server:x.example": 1}
    assert second == {crowd.POSTS: 2, "server:x.example": 2}
    async with services.db.read() as conn:
        window = await event_counts.window(conn, world.group.id, keys, at)
    assert window == second


# --------------------------------------------------------------------------- the ordinary day

DAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def test_the_defaults_stay_quiet_on_ten_ordinary_days():
    """The generated day's busiest ten minutes, for ten seeds, against the default thresholds (pure)."""
    defaults = Thresholds()
    for seed in range(15, 25):
        p = peaks(events(DAY, seed), min_server_posts=defaults.server_min_posts)
        assert 1_500 < p.posts < 2_100 and p.servers >= 35
        assert p.peak_new_member_posts <= defaults.new_member_posts, seed
        assert p.peak_server_share * 100 <= defaults.server_share_percent, seed
        assert p.peak_follows <= defaults.follows, seed
        assert p.peak_posts > 60  # the bursts are real bursts
    # The first guess, "half, once a server sent 10", would have tripped on this very day:
    assert peaks(events(DAY), min_server_posts=10).peak_server_share > 0.5


async def test_the_alarm_stays_quiet_on_a_replayed_ordinary_day_and_trips_on_a_brigade(db):
    """The ordinary day through the real detector (its database counts, its rules), at simulated times;
    then the same day with a brigade of 50 new members from one server at 14:00."""
    await create_user(db, "owner")
    group = await create_group(db, GroupSpec(name="readers", owner="owner"))
    day = events(DAY)
    busiest = Window()
    for hour_start in range(24):  # one transaction per simulated hour
        hour = [e for e in day if e.at.hour == hour_start]
        async with db.transaction() as conn:
            for e in hour:
                control = await crowd.load(conn, group.id)
                if e.kind == "follow":
                    control = await crowd.watch_follow(conn, db, group, control, now=e.at)
                else:
                    new = e.at - e.member.joined < timedelta(hours=48)
                    before = await crowd.look(conn, group.id, e.member.domain, e.at)
                    control = await crowd.watch_post(
                        conn, db, group, control, before, domain=e.member.domain, new=new, now=e.at
                    )
                    seen = await crowd.look(conn, group.id, e.member.domain, e.at + timedelta(minutes=1))
                    busiest = Window(
                        posts=max(busiest.posts, seen.posts),
                        new_member_posts=max(busiest.new_member_posts, seen.new_member_posts),
                        server_posts=max(busiest.server_posts, seen.server_posts),
                    )
                assert not control.on(e.at), (e, control.reason)
    async with db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(mod_log))).scalar_one() == 0
    # What the detector itself counted at the busiest moments (its windows are whole minutes,
    # 9 to 10 minutes long, so never above the exact sliding window's figures).
    exact = peaks(day)
    assert 60 < busiest.posts <= exact.peak_posts
    assert 0 < busiest.new_member_posts <= exact.peak_new_member_posts
    assert anomaly(busiest, Thresholds(new_member_posts=busiest.new_member_posts)) is None

    # The brigade: 50 accounts on one server, joined an hour ago, two posts each within ten minutes.
    start = DAY + timedelta(hours=14)
    tripped = None
    for n in range(2 * BRIGADE):
        at = start + timedelta(seconds=6 * n)
        async with db.transaction() as conn:
            control = await crowd.load(conn, group.id)
            before = await crowd.look(conn, group.id, "brigade.example", at)
            control = await crowd.watch_post(
                conn, db, group, control, before, domain="brigade.example", new=True, now=at
            )
        if control.on(at):
            tripped = n + 1
            break
    assert tripped is not None and tripped <= 21
    async with db.read() as conn:
        control = await crowd.load(conn, group.id)
        (alarm,) = (await conn.execute(sa.select(mod_log))).all()
    assert control.turned_on_by == crowd.ALARM and "joined in the last 48 hours" in alarm.reason


# --------------------------------------------------------------------------- floods and block candidates


async def test_a_flood_from_one_server_is_refused_under_crowd_control_while_others_post(settings, services, world):
    await established(services, world)
    for i in range(5):
        world.mastodon.add_user(f"troll{i}")
        await world.join(world.mastodon, f"troll{i}")
        await age(services, world.mastodon.actor_uri(f"troll{i}"))
    async with services.db.transaction() as conn:
        await save_guards(conn, services.db, world.group.id, {"instance_posts_per_hour": 6})
    assert (await crowd_cli(settings, "on", "--as", "mod1")).returncode == 0
    world.clear()
    for round_ in range(3):
        for i in range(5):
            await world.post(world.mastodon, f"troll{i}", f"<p>flood {round_}-{i}</p>")
    bobs = await world.post(world.social, "bob", "<p>still talking about books</p>")
    # alice's earlier post and 5 more: the server's 6 an hour; the other 10 were refused, each told.
    assert await states(services, "https://mastodon.example/users/troll") == {"visible": 5}
    assert len(world.mastodon.of_type("Reject")) == 10
    assert (await state_of(services, bobs["id"]))[0] == "visible"


async def test_three_bans_in_a_day_offer_a_server_as_a_block_candidate_and_block_nothing(
    services, client, world, brigade
):
    await join_brigade(services, world, brigade)
    group, by = await actions.group_and_moderator(services, NAME, "mod1")
    for i in range(3):
        await actions.ban(services, group, brigade.actor_uri(f"b{i}"), by=by, reason="raid")
    await actions.ban(services, group, world.social.actor_uri("bob"), by=by)  # one ban: no candidate
    async with services.db.read() as conn:
        (candidate,) = await crowd.domain_candidates(conn)
        assert (await conn.execute(sa.select(sa.func.count()).select_from(domain_blocks))).scalar_one() == 0
    assert (candidate.domain, candidate.bans, candidate.members) == ("brigade.example", 3, 3)
    assert not services.blocklist.is_blocked("brigade.example")
    # A day later the bans no longer make it a candidate.
    async with services.db.read() as conn:
        assert await crowd.domain_candidates(conn, utcnow() + timedelta(days=1, minutes=1)) == []

    await create_user(services.db, "ada", password=PASSWORD, admin=True)
    await sign_in(client, "ada", PASSWORD)
    page = (await client.get("/console/admin/domains")).text
    assert "Candidates for a block" in page and "brigade.example" in page and "social.example" not in page
    review = (await client.get("/console/admin/domains?candidate=brigade.example")).text
    assert 'value="brigade.example"' in review
    # The members of the brigade not banned still post: nothing was blocked.
    note = await world.post(brigade, "b10", "<p>still here</p>")
    assert (await state_of(services, note["id"]))[0] == "visible"
