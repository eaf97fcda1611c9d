"""A group's figures for its moderators: ``groups/figures`` (pure), ``groups/stats`` (the counts),
``kith group stats`` (a table, JSON) and the console's Stats tab, on SQLite and PostgreSQL.

The known data set below is written straight into the tables with chosen times (the
figures count by ISO week, so the weeks must be known) and every expected figure is
worked out by hand from it. Its weeks are named W10, W11 and W12 after their first
writing (March 2026) and now begin nine weeks before the current one, so that the CLI and
the console, which count up to the real now, see all of them in their default 12 weeks;
``NOW`` for ``group_figures`` is the Wednesday of W12 at 12:00 UTC, W12 still running.
Days are numbered from W10's Monday (day 0); the old thread is in W08, day -12.

The joins and leaves themselves are also checked on the real path: a signed Follow, its
Undo, a ban, a domain block and an actor's own Delete each write the ``membership_events``
row that ``groups/following`` owns.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from server.accounts import create_user
from server.days import utc_day, utc_hour, utc_week
from server.groups.figures import (
    Replies,
    ThreadStart,
    duration,
    median,
    monday_midnight,
    percent,
    replies_by_week,
    replies_of,
    share,
    week_label,
    week_start,
    weeks_ending,
)
from server.groups.membership import GroupSpec, create_group, get_group
from server.groups.stats import MEMBERSHIPS_SINCE_KEY, group_figures
from server.instance import set_setting
from server.moderation import actions
from server.moderation.blocklist.store import BLOCKS, BlockSpec, create
from server.tables import follows, membership_events, posts, reactions, remote_actors
from tests.console_helpers import sign_in
from tests.fakes.world import GROUP
from tests.shell import kith

PASSWORD = "correct horse battery"
W10 = week_start(datetime.now(UTC)) - timedelta(weeks=9)
W11, W12 = W10 + timedelta(weeks=1), W10 + timedelta(weeks=2)


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    """``hour:minute`` UTC on day ``day`` counted from W10's Monday."""
    return monday_midnight(W10) + timedelta(days=day, hours=hour, minutes=minute)


NOW = at(16)  # Wednesday of W12, 12:00


# --------------------------------------------------------------------------- pure


def test_week_start_is_the_iso_monday_in_utc():
    def march(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 3, day, hour, minute, tzinfo=UTC)

    monday, next_monday = date(2026, 3, 2), date(2026, 3, 9)
    assert week_start(march(2, 0)) == monday  # a Monday at midnight starts its own week
    assert week_start(march(8, 23, 59)) == monday  # Sunday night still belongs to it
    assert week_start(march(9, 0)) == next_monday
    # 00:30 on Monday in UTC+2 is still Sunday in UTC: the week is UTC's.
    assert week_start(datetime(2026, 3, 9, 0, 30, tzinfo=timezone(timedelta(hours=2)))) == monday
    # New year: Thursday 1 January 2026 is in the ISO week that began on Monday 29 December 2025.
    assert week_start(datetime(2026, 1, 1, 12, tzinfo=UTC)) == date(2025, 12, 29)
    assert week_label(date(2025, 12, 29)) == "2026-W01"
    assert week_label(monday) == "2026-W10"


def test_weeks_ending_counts_back_from_the_current_week():
    assert weeks_ending(NOW, 3) == [W10, W11, W12]
    assert weeks_ending(NOW, 1) == [W12]
    assert all(m.weekday() == 0 for m in weeks_ending(datetime.now(UTC), 52))


def test_median_share_and_their_empty_cases():
    assert median([5, 1, 3]) == 3
    assert median([4, 1, 3, 2]) == 2.5  # the mean of the middle two
    assert median([]) is None
    assert share(1, 4) == 0.25
    assert share(0, 0) is None  # no threads: no share, not 0 %


def test_a_thread_with_no_reply_lowers_the_share_not_the_median():
    start = at(0)
    answered = ThreadStart(start, start + timedelta(hours=2))
    silent = ThreadStart(start, None)
    assert replies_of([answered]) == Replies(1, 1, 7200)
    both = replies_of([answered, silent])
    assert (both.threads, both.replied, both.share, both.median_wait) == (2, 1, 0.5, 7200)
    weekly = replies_by_week([answered, ThreadStart(at(8), at(8, 13))])
    assert weekly[W10].median_wait == 7200 and weekly[W11].median_wait == 3600


def test_waits_and_shares_read_as_people_write_them():
    assert [duration(s) for s in (None, 42, 600, 7200, 7500, 200_000)] == [
        "–",
        "42 s",
        "10 min",
        "2 h",
        "2 h 5 min",
        "2 d 7 h",
    ]
    assert (percent(None), percent(0.75), percent(1 / 3)) == ("–", "75 %", "33 %")


# --------------------------------------------------------------------------- the known data set

PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank")


def uri(name: str) -> str:
    return f"https://one.example/users/{name}"


async def build(services: Any, *, since: datetime | None = None) -> dict[str, Any]:
    """bookclub (owned by olga) and chess; the people, their posts, reactions, joins and leaves
    (recorded since ``since``, by default the Sunday before W10)."""
    since = since or at(-1, 0)
    await create_user(services.db, "olga", password=PASSWORD)
    await create_user(services.db, "nina", password=PASSWORD)  # no role in bookclub
    await create_user(services.db, "ada", password=PASSWORD, admin=True)
    books = await create_group(services.db, GroupSpec(name="bookclub", title="Book Club", owner="olga"))
    chess = await create_group(services.db, GroupSpec(name="chess", title="Chess"))
    ids: dict[str, int] = {}
    async with services.db.transaction() as conn:
        await set_setting(conn, services.db.dialect, MEMBERSHIPS_SINCE_KEY, since.isoformat())
        for name in PEOPLE:
            row = {
                "uri": uri(name),
                "domain": "one.example",
                "type": "Person",
                "preferred_username": name,
                "inbox": uri(name) + "/inbox",
                "raw": "{}",
                "fetched_at": at(-1),
            }
            ids[name] = (
                await conn.execute(sa.insert(remote_actors).values(**row).returning(remote_actors.c.id))
            ).scalar_one()
        # Members now: alice and carol (bob left, erin was removed); dave only asked.
        await conn.execute(
            sa.insert(follows),
            [
                {
                    "group_id": books.id,
                    "actor_id": ids[name],
                    "activity_uri": f"{uri(name)}#follow",
                    "activity_raw": "{}",
                    "state": state,
                    "created_at": at(0),
                    "decided_at": at(0) if state == "accepted" else None,
                }
                for name, state in (("alice", "accepted"), ("carol", "accepted"), ("dave", "pending"))
            ],
        )
        await conn.execute(
            sa.insert(membership_events),
            [
                {"group_id": books.id, "actor_uri": uri(who), "kind": kind, "created_at": when}
                for who, kind, when in (
                    ("alice", "joined", at(0, 10)),
                    ("bob", "joined", at(1)),
                    ("erin", "joined", at(2)),
                    ("carol", "joined", at(8)),
                    ("bob", "left", at(9)),
                    ("erin", "removed", at(14)),
                    ("frank", "joined", at(3)),  # ... in chess: not bookclub's
                )
            ],
        )
        await conn.execute(
            sa.update(membership_events).where(membership_events.c.actor_uri == uri("frank")).values(group_id=chess.id)
        )

        async def post(
            n: int, name: str, when: datetime, *, root: int | None = None, state: str = "visible", group: Any = books
        ) -> int:
            row = {
                "uri": f"{uri(name)}/statuses/{n}",
                "group_id": group.id,
                "author_id": ids[name],
                "author_uri": uri(name),
                "type": "Note",
                "in_reply_to": None if root is None else f"https://x.example/{root}",
                "parent_id": root,
                "root_id": root,
                "state": state,
                "raw": "{}",
                "published": when,
                "last_activity_at": when,
                "created_at": when,
            }
            return (await conn.execute(sa.insert(posts).values(**row).returning(posts.c.id))).scalar_one()

        old = await post(1, "erin", at(-12))  # before the window, within 30 days
        await post(2, "bob", at(3), root=old)  # a reply in W10 to a thread begun before it
        t1 = await post(3, "alice", at(0))  # W10: bob answers in 2 h (alice's own reply first does not count)
        await post(4, "alice", at(0, 12, 30), root=t1)
        await post(5, "bob", at(0, 14), root=t1)
        await post(6, "carol", at(1), root=t1)
        await post(7, "bob", at(2, 9))  # W10: nobody answers
        t3 = await post(8, "carol", at(8, 8))  # W11: alice answers in 4 h
        await post(9, "alice", at(8, 12), root=t3)
        t4 = await post(10, "alice", at(14, 10))  # W12: carol's deleted reply does not count; bob's in 30 min does
        await post(11, "carol", at(14, 10, 5), root=t4, state="deleted")
        await post(12, "bob", at(14, 10, 30), root=t4)
        await post(13, "carol", at(15), state="deleted")  # deleted by its author: counts nowhere
        await post(14, "bob", at(9), state="removed")  # removed by a moderator: it was written
        other = await post(15, "frank", at(1), group=chess)  # another group: counts nowhere here
        await conn.execute(
            sa.insert(reactions),
            [
                {"post_id": t1, "actor_uri": uri("dave"), "kind": "Like", "activity_uri": "l1", "created_at": at(15)},
                {
                    "post_id": other,
                    "actor_uri": uri("frank"),
                    "kind": "Like",
                    "activity_uri": "l2",
                    "created_at": at(15),
                },
            ],
        )
    return {"books": books, "chess": chess, "ids": ids}


async def figures_of(services: Any, name: str = "bookclub", weeks: int = 3):
    async with services.db.read() as conn:
        return await group_figures(conn, await get_group(conn, name), weeks=weeks, now=NOW)


async def test_the_figures_of_a_known_data_set(services):
    await build(services)
    f = await figures_of(services)
    assert [w.start for w in f.weeks] == [W10, W11, W12]
    assert f.members == 2  # alice and carol; dave's request is no membership
    # Active, last 7 days (from day 9, 12:00): alice's thread and bob's reply on day 14, dave's like on
    # day 15 (bob's removed post at day 9, 12:00 is exactly on the edge: counted, he is there anyway).
    assert f.active_7_days == 3
    # Last 30 days (from day -14, 12:00): erin's post on day -12, alice, bob, carol, dave.
    assert f.active_30_days == 5
    w10, w11, w12 = f.weeks
    # W10: alice (thread, own reply), bob (reply to erin's old thread, reply, thread), carol (reply).
    # W11: carol (thread), alice (reply), bob (a post a moderator removed). W12: alice, bob, dave's like.
    assert [w.active for w in f.weeks] == [3, 3, 3]
    # Threads: W10 alice's and bob's; W11 carol's; W12 alice's (carol's deleted thread does not count).
    # Replies: W10 bob to erin, alice's own, bob, carol; W11 alice; W12 bob (carol's deleted one does not count).
    assert [(w.threads, w.replies) for w in f.weeks] == [(2, 4), (2, 1), (1, 1)]
    # W11's second "thread" is bob's removed post (root_id NULL): written, so counted, and unanswered.
    assert [(w.joined, w.left, w.removed) for w in f.weeks] == [(3, 0, 0), (1, 1, 0), (0, 0, 1)]
    # W10: alice's thread answered after 2 h, bob's never (half of them); W11: carol's after 4 h, bob's
    # removed post never; W12: alice's after 30 min.
    assert (w10.replies_to_threads.replied, w10.replies_to_threads.threads) == (1, 2)
    assert w10.replies_to_threads.share == 0.5 and w10.replies_to_threads.median_wait == 7200
    assert (w11.replies_to_threads.replied, w11.replies_to_threads.threads, w11.replies_to_threads.median_wait) == (
        1,
        2,
        4 * 3600,
    )
    assert w12.replies_to_threads == Replies(1, 1, 1800)
    # Over the window: 3 of 5 threads answered; the median of 2 h, 4 h and 30 min is 2 h.
    assert (f.replies.threads, f.replies.replied, f.replies.share, f.replies.median_wait) == (5, 3, 0.6, 7200)


async def test_weeks_before_joins_and_leaves_were_recorded_show_none(services):
    await build(services, since=at(8, 0))  # recording began on Tuesday of W11
    f = await figures_of(services)
    assert [(w.joined, w.left, w.removed) for w in f.weeks] == [(None, None, None), (1, 1, 0), (0, 0, 1)]
    assert f.memberships_since == at(8, 0)


async def test_a_wider_window_and_another_group(services):
    await build(services)
    f = await figures_of(services, weeks=5)
    assert [w.start for w in f.weeks] == [W10 - timedelta(weeks=2), W10 - timedelta(weeks=1), W10, W11, W12]
    assert [w.label for w in f.weeks] == [week_label(w.start) for w in f.weeks]
    # W08: erin's thread of day -12, answered by bob on day 3 (15 days later); W09: nothing.
    assert (f.weeks[0].threads, f.weeks[0].active, f.weeks[0].replies_to_threads) == (1, 1, Replies(1, 1, 15 * 86400))
    assert (f.weeks[1].threads, f.weeks[1].active, f.weeks[1].joined) == (0, 0, 0)
    chess = await figures_of(services, "chess")
    assert [(w.threads, w.active, w.joined) for w in chess.weeks] == [(1, 1, 1), (0, 0, 0), (0, 1, 0)]


async def test_sql_weeks_and_days_agree_with_python(db):
    moments = [
        datetime(2026, 3, 2, 0, 0, tzinfo=UTC),  # Monday, midnight
        datetime(2026, 3, 8, 23, 59, 59, 999999, tzinfo=UTC),  # the Sunday's last moment
        datetime(2026, 1, 1, 12, tzinfo=UTC),  # the ISO year began in 2025
        datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
        NOW,
    ]
    async with db.read() as conn:
        for moment in moments:
            bound = sa.literal(moment, type_=posts.c.created_at.type)
            week, day, hour = (await conn.execute(sa.select(utc_week(bound), utc_day(bound), utc_hour(bound)))).one()
            assert date.fromisoformat(week) == week_start(moment), moment
            # SQLite's own date functions would round the Sunday's last microsecond into Monday.
            assert (day, hour) == (f"{moment:%Y-%m-%d}", f"{moment:%Y-%m-%dT%H}"), moment


# --------------------------------------------------------------------------- the real path writes the events


async def events(services) -> list[tuple[str, str]]:
    async with services.db.read() as conn:
        rows = await conn.execute(
            sa.select(membership_events.c.actor_uri, membership_events.c.kind).order_by(membership_events.c.id)
        )
        return [(u.rsplit("/", 1)[1], k) for u, k in rows.all()]


async def test_joins_and_leaves_are_recorded_where_memberships_change(services, world, mastodon, social):
    # world: alice and bob followed (signed Follows, accepted at once).
    assert sorted(await events(services)) == [("alice", "joined"), ("bob", "joined")]
    follow = mastodon.follow("alice", GROUP)
    await world.send(mastodon, "alice", mastodon.undo("alice", follow))
    by = (await actions.group_and_moderator(services, "bookclub", "mod1"))[1]
    await actions.ban(services, world.group, social.actor_uri("bob"), by=by, reason="spam")
    assert (await events(services))[2:] == [("alice", "left"), ("bob", "removed")]
    # A ban of someone who is no member, and an Undo of a membership that is gone, record nothing.
    await world.send(mastodon, "alice", mastodon.undo("alice", follow))
    assert len(await events(services)) == 4
    # Back in, then their server is blocked: removed; then an actor deletes itself: left.
    mastodon.add_user("carol")
    await world.join(mastodon, "alice")
    await world.join(mastodon, "carol")
    await create(services.db, BLOCKS, BlockSpec("mastodon.example", "suspend"), actor="admin1")
    assert sorted((await events(services))[4:]) == [
        ("alice", "joined"),
        ("alice", "removed"),
        ("carol", "joined"),
        ("carol", "removed"),
    ]


async def test_an_actor_deleting_itself_leaves_its_groups(services, world, social):
    actor = social.actor_uri("bob")
    public = "https://www.w3.org/ns/activitystreams#Public"
    await world.send(
        social, "bob", {"id": actor + "#delete", "type": "Delete", "actor": actor, "object": actor, "to": [public]}
    )
    assert (await events(services))[2:] == [("bob", "left")]
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(remote_actors.c.id).where(remote_actors.c.uri == actor))).first() is None


# --------------------------------------------------------------------------- the CLI


async def test_cli_table_and_json(services, settings):
    await build(services)
    done = kith(settings, "group", "stats", "bookclub", "--json")  # 12 weeks, the current one last
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["group"] == "bookclub" and doc["members"] == 2 and len(doc["weeks"]) == 12
    by_week = {w["start"]: w for w in doc["weeks"]}
    w10 = by_week[W10.isoformat()]
    assert w10["week"] == week_label(W10) and (w10["threads"], w10["replies"], w10["active_members"]) == (2, 4, 3)
    assert w10["reply_share"] == 0.5 and w10["median_first_reply_seconds"] == 7200
    assert (by_week[W11.isoformat()]["joined"], by_week[W11.isoformat()]["left"]) == (1, 1)
    # Over the 12 weeks: W08's thread too (answered after 15 days): 4 of 6, median of 15 d, 2 h, 4 h, 30 min.
    assert (doc["threads"], doc["threads_replied"], doc["median_first_reply_seconds"]) == (6, 4, 3 * 3600)
    assert doc["memberships_recorded_since"] == at(-1, 0).isoformat()
    assert len(json.loads(kith(settings, "group", "stats", "bookclub", "--json", "--weeks", "3").stdout)["weeks"]) == 3
    table = kith(settings, "group", "stats", "bookclub")
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("bookclub: 2 members, as of ")
    row = next(line for line in table.stdout.splitlines() if line.startswith(week_label(W10)))
    # week, starts, active, joined, left, removed, threads, replies, replied, first reply
    assert row.split() == [week_label(W10), W10.isoformat(), "3", "3", "0", "0", "2", "4", "50", "%", "2", "h"]
    assert "got a reply from someone else: 4 (67 %); median time to a first reply: 3 h" in table.stdout


async def test_cli_refuses_bad_input_in_one_line(services, settings):
    await build(services)
    for args in (["--weeks", "0"], ["--weeks", "53"], ["--weeks", "x"], ["--weeks", "9" * 5000]):
        done = kith(settings, "group", "stats", "bookclub", *args)
        assert done.returncode == 2 and "--weeks must be a whole number from 1 to 52" in done.stderr
        assert "Traceback" not in done.stderr
    done = kith(settings, "group", "stats", "nosuch")
    assert done.returncode == 1 and done.stderr.strip().splitlines() == ["kith: error: no group named 'nosuch'"]


# --------------------------------------------------------------------------- the console


STATS = "/console/groups/bookclub/stats"


def bars(html: str, chart_id: str, css_class: str) -> float:
    svg = re.search(rf'<svg class="chart" id="{chart_id}".*?</svg>', html, re.S)
    assert svg is not None, chart_id
    return sum(float(n) for n in re.findall(rf'<rect class="{css_class}"[^>]*data-count="([\d.]+)"', svg.group(0)))


async def test_the_console_shows_the_figures_to_the_groups_moderators_only(client, services):
    await build(services)
    assert (await sign_in(client, "nina", PASSWORD)).status_code == 303
    r = await client.get(STATS)
    assert r.status_code == 403 and "How the group is doing" not in r.text
    client.cookies.clear()
    assert (await client.get(STATS)).status_code in (302, 303)  # signed out: to the sign-in page
    for who in ("olga", "ada"):  # the owner, and an admin
        client.cookies.clear()
        assert (await sign_in(client, who, PASSWORD)).status_code == 303
        r = await client.get(STATS)
        assert r.status_code == 200, r.text[:300]
        html = r.text
        for chart in ("chart-active", "chart-members", "chart-posts", "chart-replied", "chart-wait"):
            assert f'id="{chart}"' in html and f'aria-labelledby="{chart}-title {chart}-desc"' in html
        # The charts' bars add up to the data set (W08 to W12 are within the 12 weeks shown).
        assert bars(html, "chart-posts", "fig-thread") == 6 and bars(html, "chart-posts", "fig-reply") == 6
        assert bars(html, "chart-members", "fig-joined") == 4 and bars(html, "chart-members", "fig-left") == 1
        assert bars(html, "chart-members", "fig-removed") == 1
        assert bars(html, "chart-replied", "fig-replied") == 4 and bars(html, "chart-replied", "fig-unreplied") == 2
        assert bars(html, "chart-wait", "fig-wait") == 15 * 24 + 2 + 4 + 0.5  # each week's median, in hours
        assert bars(html, "chart-active", "fig-active") == 1 + 3 + 3 + 3
        # The numbers as a table, a row per week with its header cell.
        assert f'<th scope="row">{week_label(W10)}' in html and "50 % <span" in html
        assert 'aria-current="page">Stats</a>' in html


async def test_the_console_refuses_a_bad_weeks_with_400(client, services):
    await build(services)
    assert (await sign_in(client, "olga", PASSWORD)).status_code == 303
    for bad in ("0", "53", "x", "²", "9" * 30, "9" * 5000):
        r = await client.get(STATS, params={"weeks": bad})
        assert r.status_code == 400 and "weeks must be a whole number from 1 to 52" in r.text
