"""Recurring threads: schedules, their occurrences across DST and month ends, and firing each once.

The pure parts (placeholders, recurrence, what is due) with a fixed clock; then, over the test
world (tests/fakes/world.py: bookclub, owner mod1, moderator mod2, alice and bob on their
signed fake servers), firing with ``now`` passed in (no sleeping, no patched clock), two
workers racing for one occurrence, downtime, and the ``kith group schedule`` commands. On
SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from server.errors import BadRequest, Forbidden
from server.groups.membership import get_group
from server.groups.routine import (
    Occurrence,
    Recurrence,
    ScheduleSpec,
    add_schedule,
    decide,
    describe_next,
    expand,
    fire_due,
    fire_one,
    list_schedules,
    next_full_hour,
    next_up,
    parse_start,
    placeholders_in,
    remove_schedule,
    zone_of,
)
from server.services import Services
from server.tables import mod_log, posts, schedules
from tests.fakes.world import GROUP, MODERATOR, NAME, OWNER
from tests.shell import run_kith


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --------------------------------------------------------------------------- placeholders


def test_placeholders_expand_in_local_time() -> None:
    local = datetime(2026, 12, 2, 9, 0)  # a Wednesday in ISO week 49
    got = expand("{weekday} {date} at {time}: week {week} of {year}, {month}, #{n} {{literal}}", local, 7)
    assert got == "Wednesday 2 December 2026 at 09:00: week 49 of 2026, December, #7 {literal}"
    assert expand("no placeholders", local, 1) == "no placeholders"
    assert placeholders_in("{date} and {n}") == ["date", "n"]


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("Week {wek}", "unknown placeholder {wek}"),
        ("{date:%Y}", "unknown placeholder {date:%Y}"),
        ("{date!r}", "unknown placeholder {date!r}"),
        ("{0}", "unknown placeholder {0}"),
        ("{}", "unknown placeholder {}"),
        ("{date.year}", "unknown placeholder"),
        ("open { brace", "bad placeholder"),
        ("close } brace", "bad placeholder"),
    ],
)
def test_unknown_placeholders_are_refused(template: str, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason.replace("{", r"\{").replace("}", r"\}")):
        placeholders_in(template)


# --------------------------------------------------------------------------- recurrence


def _series(rec: Recurrence, after: datetime, count: int) -> list[Occurrence]:
    out = [rec.first_after(after)]
    while len(out) < count:
        out.append(rec.following(out[-1]))
    return out


def test_weekly_in_berlin_stays_at_nine_on_the_wall_across_both_dst_changes() -> None:
    # Monday 22 March 2027, 09:00; the clocks go forward on 28 March and back on 31 October.
    rec = Recurrence("week", datetime(2027, 3, 22, 9, 0), "Europe/Berlin")
    first, second = _series(rec, utc(2027, 3, 1), 2)
    assert (first.n, first.at, second.n, second.at) == (1, utc(2027, 3, 22, 8), 2, utc(2027, 3, 29, 7))
    assert all(o.local.hour == 9 and o.local.weekday() == 0 for o in (first, second))
    before, after = _series(rec, utc(2027, 10, 24), 2)  # Monday 25 October, Monday 1 November
    assert (before.at, after.at) == (utc(2027, 10, 25, 7), utc(2027, 11, 1, 8))
    assert after.n - before.n == 1 and after.n == 33  # 22 March is 1; 1 November is 32 weeks later
    assert describe_next(after.local, "Europe/Berlin", "Reading") == "Monday 1 November, 09:00 CET: Reading"
    assert describe_next(before.local, "Europe/Berlin", "Reading") == "Monday 25 October, 09:00 CEST: Reading"


def test_daily_in_new_york_across_its_dst_changes() -> None:
    rec = Recurrence("day", datetime(2027, 3, 13, 9, 0), "America/New_York")  # DST from 14 March
    assert [o.at for o in _series(rec, utc(2027, 3, 13), 2)] == [utc(2027, 3, 13, 14), utc(2027, 3, 14, 13)]
    # DST ends 7 November: 09:00 EDT is 13:00 UTC, then 09:00 EST is 14:00 UTC.
    assert [o.at for o in _series(rec, utc(2027, 11, 6), 2)] == [utc(2027, 11, 6, 13), utc(2027, 11, 7, 14)]


def test_a_wall_time_in_the_spring_gap_comes_an_hour_later_and_an_ambiguous_one_first() -> None:
    rec = Recurrence("day", datetime(2027, 3, 27, 2, 30), "Europe/Berlin")
    a, b, c = _series(rec, utc(2027, 3, 27), 3)
    assert (a.at, b.at, c.at) == (utc(2027, 3, 27, 1, 30), utc(2027, 3, 28, 1, 30), utc(2027, 3, 29, 0, 30))
    # 02:30 on 31 October happens twice: its first (summer time) instance.
    rec = Recurrence("day", datetime(2027, 10, 30, 2, 30), "Europe/Berlin")
    assert [o.at for o in _series(rec, utc(2027, 10, 30), 3)] == [
        utc(2027, 10, 30, 0, 30),
        utc(2027, 10, 31, 0, 30),
        utc(2027, 11, 1, 1, 30),
    ]


def test_monthly_from_the_31st_falls_on_the_last_day_of_shorter_months() -> None:
    rec = Recurrence("month", datetime(2027, 1, 31, 19, 0), "UTC")
    days = [o.local.date().isoformat() for o in _series(rec, utc(2027, 1, 1), 5)]
    assert days == ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31"]
    rec = Recurrence("month", datetime(2028, 1, 30, 19, 0), "UTC")  # a leap year
    assert [o.local.day for o in _series(rec, utc(2028, 1, 1), 3)] == [30, 29, 30]
    rec = Recurrence("month", datetime(2027, 1, 15, 19, 0), "UTC")
    assert [o.local.day for o in _series(rec, utc(2027, 1, 1), 3)] == [15, 15, 15]


def test_what_is_due() -> None:
    rec = Recurrence("day", datetime(2027, 1, 1, 9, 0), "UTC")
    due = rec.first_after(utc(2027, 1, 5))  # 5 January 09:00, n = 5
    assert due.n == 5
    assert decide(rec, due, utc(2027, 1, 5, 8, 59)) is None
    on_time = decide(rec, due, due.at)
    assert on_time is not None and on_time.post == due and on_time.following.at == utc(2027, 1, 6, 9)
    late = decide(rec, due, utc(2027, 1, 6, 8, 59))  # 23h59 late: still posted, once
    assert late is not None and late.post == due and late.skipped == 0
    missed = decide(rec, due, utc(2027, 1, 8, 10))  # three days down: 5, 6, 7 and 8 January missed
    assert missed is not None and missed.post is None and missed.skipped == 4
    assert (missed.following.n, missed.following.at) == (9, utc(2027, 1, 9, 9))


def test_start_and_zone_parsing() -> None:
    assert parse_start("2026-12-07T09:00") == datetime(2026, 12, 7, 9, 0)
    assert parse_start("2026-12-07 09:00:59") == datetime(2026, 12, 7, 9, 0)
    for raw, reason in [("next monday", "bad start"), ("2026-13-01T09:00", "bad start"), ("9" * 100, "bad start")]:
        with pytest.raises(BadRequest, match=reason):
            parse_start(raw)
    with pytest.raises(BadRequest, match="without a UTC offset"):
        parse_start("2026-12-07T09:00+01:00")
    for zone in ("Mars/Olympus", "", "../../etc/passwd", "/etc/localtime", "x" * 300):
        with pytest.raises(BadRequest, match="unknown time zone"):
            zone_of(zone)
    assert next_full_hour(utc(2026, 12, 2, 20, 19), "Europe/Berlin") == datetime(2026, 12, 2, 22, 0)
    assert next_full_hour(utc(2026, 12, 2, 20, 0), "UTC") == datetime(2026, 12, 2, 21, 0)


# --------------------------------------------------------------------------- the world

NOW = utc(2026, 12, 2, 20, 19)


async def _add(services: Services, spec: ScheduleSpec, *, by: str = OWNER, now: datetime = NOW):
    async with services.db.transaction() as conn:
        return await add_schedule(conn, await get_group(conn, NAME), by, spec, now=now)


async def _reload(services: Services, schedule_id: int):
    async with services.db.read() as conn:
        [s] = [s for s in await list_schedules(conn, (await get_group(conn, NAME)).id) if s.id == schedule_id]
    return s


async def _group_posts(services: Services) -> list[sa.Row]:
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(posts).where(posts.c.author_uri == GROUP).order_by(posts.c.id))).all()


def _creates(world) -> list[dict]:
    return [r.activity for s in world.servers for r in s.received if r.activity.get("type") == "Create"]


async def test_an_occurrence_goes_out_once_as_the_groups_create(world, services):
    s = await _add(
        services,
        ScheduleSpec(
            title="Week {week}: what are you reading?",
            text="Thread {n}, opened {weekday} {date} at {time}.",
            every="week",
            start="2026-12-07T09:00",
            timezone="Europe/Berlin",
        ),
    )
    assert (s.next_at, s.next_n, s.created_by) == (utc(2026, 12, 7, 8), 1, OWNER)
    world.clear()
    assert await fire_due(services, now=utc(2026, 12, 7, 7, 59)) == []  # not yet
    [post_id] = await fire_due(services, now=utc(2026, 12, 7, 8, 0, 30))
    assert await fire_due(services, now=utc(2026, 12, 7, 8, 1)) == []  # once
    await world.worker.drain()

    for server in world.servers:
        [got] = server.received
        assert got.signer == GROUP and got.activity["type"] == "Create" and got.activity["actor"] == GROUP
        note = got.activity["object"]
        assert note["name"] == "Week 50: what are you reading?"
        assert "Thread 1, opened Monday 7 December 2026 at 09:00." in note["content"]
    [row] = await _group_posts(services)
    assert row.id == post_id and row.name == "Week 50: what are you reading?" and row.author_id is None
    after = await _reload(services, s.id)
    assert (after.next_at, after.next_n, after.posted, after.skipped) == (utc(2026, 12, 14, 8), 2, 1, 0)
    assert after.last_posted_at == utc(2026, 12, 7, 8, 0, 30)
    async with services.db.read() as conn:
        actions = (await conn.execute(sa.select(mod_log.c.action, mod_log.c.moderator))).all()
    assert ("post", "system") in actions and ("schedule_add", OWNER) in actions


async def test_the_local_hour_holds_across_the_dst_change_when_fired(world, services):
    s = await _add(
        services,
        ScheduleSpec(title="Monday {time}", text="x", every="week", start="2027-03-22T09:00", timezone="Europe/Berlin"),
        now=utc(2027, 3, 20),
    )
    assert s.next_at == utc(2027, 3, 22, 8)
    for now, expected_next in [(utc(2027, 3, 22, 8), utc(2027, 3, 29, 7)), (utc(2027, 3, 29, 7), utc(2027, 4, 5, 7))]:
        assert len(await fire_due(services, now=now)) == 1
        assert (await _reload(services, s.id)).next_at == expected_next
    assert [r.name for r in await _group_posts(services)] == ["Monday 09:00", "Monday 09:00"]


async def test_two_workers_post_a_due_occurrence_exactly_once(world, settings, network, services):
    s = await _add(services, ScheduleSpec(title="Daily {date}", text="x", every="day", start="2026-12-03T09:00"))
    other = await Services.open(settings, transport=network, migrate=False)
    try:
        due = utc(2026, 12, 3, 9)
        # Both hold the same stale row, then claim it at once: one conditional update wins.
        results = await asyncio.gather(fire_one(services, s, due), fire_one(other, s, due))
        assert sorted(r is not None for r in results) == [False, True]
        # And whole rounds racing on the next occurrence.
        rounds = await asyncio.gather(*(fire_due(svc, now=utc(2026, 12, 4, 9)) for svc in (services, other, services)))
        assert sum(len(r) for r in rounds) == 1
    finally:
        await other.close()
    assert [r.name for r in await _group_posts(services)] == ["Daily 3 December 2026", "Daily 4 December 2026"]
    after = await _reload(services, s.id)
    assert (after.posted, after.next_n, after.next_at) == (2, 3, utc(2026, 12, 5, 9))
    await world.worker.drain()
    assert len(_creates(world)) == 2 * len(world.servers)  # each occurrence once to each member server


async def test_downtime_shorter_than_a_period_posts_late_once(world, services):
    s = await _add(services, ScheduleSpec(title="Day {n}", text="x", every="day", start="2026-12-03T09:00"))
    late = utc(2026, 12, 4, 8, 0)  # down from before 09:00 on the 3rd until 08:00 on the 4th
    assert len(await fire_due(services, now=late)) == 1
    assert await fire_due(services, now=late + timedelta(minutes=1)) == []
    assert len(await fire_due(services, now=utc(2026, 12, 4, 9))) == 1  # the next one on time
    assert [r.name for r in await _group_posts(services)] == ["Day 1", "Day 2"]
    assert (await _reload(services, s.id)).skipped == 0


async def test_downtime_longer_than_a_period_skips_and_the_next_comes_on_time(world, services):
    s = await _add(services, ScheduleSpec(title="Day {n}", text="x", every="day", start="2026-12-03T09:00"))
    back = utc(2026, 12, 6, 10, 0)  # three days down: the 3rd, 4th, 5th and 6th missed
    assert await fire_due(services, now=back) == []
    assert await fire_due(services, now=back + timedelta(hours=1)) == []
    after = await _reload(services, s.id)
    assert (after.next_at, after.next_n, after.posted, after.skipped) == (utc(2026, 12, 7, 9), 5, 0, 4)
    async with services.db.read() as conn:
        [skip] = (await conn.execute(sa.select(mod_log).where(mod_log.c.action == "schedule_skip"))).all()
    assert skip.moderator == "system" and skip.target == str(s.id) and "4 missed" in skip.reason
    assert len(await fire_due(services, now=utc(2026, 12, 7, 9, 0, 5))) == 1
    assert [r.name for r in await _group_posts(services)] == ["Day 5"]


async def test_leaders_only_list_remove_and_the_next_up(world, services, client):
    with pytest.raises(Forbidden, match="not the owner or a moderator"):
        await _add(services, ScheduleSpec(title="t", text="x", every="day"), by="alice")
    for spec, reason in [
        (ScheduleSpec(title="  ", text="x", every="day"), "title is empty"),
        (ScheduleSpec(title="t", text="x", every="year"), "--every"),
        (ScheduleSpec(title="t {wek}", text="x", every="day"), "unknown placeholder"),
        (ScheduleSpec(title="t", text="{", every="day"), "bad placeholder"),
        (ScheduleSpec(title="t", text="x", every="day", timezone="Nowhere/Land"), "unknown time zone"),
        (ScheduleSpec(title="t", text="x", every="day", start="1999-01-01T00:00"), "year 2000"),
        (ScheduleSpec(title="t", text="{date}" * 500, every="day"), "at most 5000"),
    ]:
        with pytest.raises(BadRequest, match=reason):
            await _add(services, spec)
    weekly = await _add(
        services,
        ScheduleSpec(
            title="Reading {week}", text="x", every="week", start="2026-12-07T09:00", timezone="Europe/Berlin"
        ),
        by=MODERATOR,
    )
    default = await _add(services, ScheduleSpec(title="Hourly start", text="x", every="month"))
    assert (default.start_local, default.timezone, default.next_at) == (
        datetime(2026, 12, 2, 21, 0),
        "UTC",
        utc(2026, 12, 2, 21),
    )
    async with services.db.read() as conn:
        group = await get_group(conn, NAME)
        assert [s.id for s in await list_schedules(conn, group.id)] == [default.id, weekly.id]
        assert await next_up(conn, [group.id, 999]) == {group.id: "Wednesday 2 December, 21:00 UTC: Hourly start"}
    async with services.db.transaction() as conn:
        with pytest.raises(Forbidden):
            await remove_schedule(conn, group, default.id, "alice")
    async with services.db.transaction() as conn:
        assert (await remove_schedule(conn, group, default.id, OWNER)).title == "Hourly start"
    async with services.db.read() as conn:
        assert [s.id for s in await list_schedules(conn, group.id)] == [weekly.id]
        assert await next_up(conn, [group.id]) == {group.id: "Monday 7 December, 09:00 CET: Reading 50"}
    # The group page and the directory show it.
    page = (await client.get(GROUP, headers={"Accept": "text/html"})).text
    assert "Monday 7 December, 09:00 CET: Reading 50" in page
    home = (await client.get("/")).text
    assert "Monday 7 December, 09:00 CET: Reading 50" in home


async def test_kith_group_schedule_commands(world, settings, services):
    env = {**os.environ, "KITH_DOMAIN": settings.domain, "KITH_DATABASE_URL": settings.database_url}

    async def kith(*args: str):
        return await asyncio.to_thread(run_kith, ["group", "schedule", *args], env=env)

    r = await kith(
        "add", NAME, "--as", OWNER, "--title", "Book of the month: {month}", "--text", "Vote below.",
        "--every", "month", "--start", "2027-01-31T19:00", "--timezone", "America/New_York",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    added = json.loads(r.stdout)
    assert (added["every"], added["timezone"], added["start"]) == ("month", "America/New_York", "2027-01-31T19:00")
    assert added["next_at"] == "2027-02-01T00:00:00+00:00" and added["next_title"] == "Book of the month: January"
    r = await kith("list", NAME)
    assert r.returncode == 0 and [s["id"] for s in json.loads(r.stdout)] == [added["id"]]
    for args, message in [
        (("add", NAME, "--as", OWNER, "--title", "t", "--text", "x", "--every", "day", "--timezone", "Mars/Base"),
         "unknown time zone"),
        (("add", NAME, "--as", OWNER, "--title", "t", "--text", "x", "--every", "day", "--start", "soon"), "bad start"),
        (("add", NAME, "--as", "alice", "--title", "t", "--text", "x", "--every", "day"), "not the owner"),
        (("add", NAME, "--as", OWNER, "--title", " ", "--text", "x", "--every", "day"), "title is empty"),
        (("add", NAME, "--as", OWNER, "--title", "{nope}", "--text", "x", "--every", "day"), "unknown placeholder"),
        (("add", "nosuch", "--as", OWNER, "--title", "t", "--text", "x", "--every", "day"), "no group named"),
        (("remove", NAME, "999999"), "has no schedule"),
    ]:  # fmt: skip
        r = await kith(*args)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and message in r.stderr, (args, r.stderr)
    r = await kith("remove", NAME, "x1")
    assert r.returncode == 2 and "schedule's number" in r.stderr
    r = await kith("remove", NAME, str(added["id"]))
    assert r.returncode == 0 and json.loads(r.stdout)["removed"]["id"] == added["id"]
    r = await kith("list", NAME)
    assert json.loads(r.stdout) == []
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(schedules))).scalar_one() == 0


async def test_the_console_lists_adds_and_removes_schedules(client, services):
    from server.accounts import create_user
    from server.groups.membership import GroupSpec, create_group
    from tests.console_helpers import page_csrf, sign_in

    password, console = "correct horse battery", "/console/groups/readers"
    await create_user(services.db, "olga", password=password)
    await create_group(services.db, GroupSpec(name="readers", owner="olga"))
    assert (await sign_in(client, "olga", password)).status_code == 303
    assert "None yet." in (await client.get(console)).text

    async def act(**data: str):
        return await client.post(
            f"{console}/act", data={"csrf": await page_csrf(client, console), "back": "queue", **data}
        )

    form = {"title": "Week {week}", "text": "Hello", "every": "week", "start": "2027-01-04T09:00"}
    r = await act(action="add-schedule", timezone="Europe/Berlin", **form)
    assert r.status_code == 303, r.text[:300]
    page = (await client.get(r.headers["location"])).text
    assert "Recurring thread added." in page and "next: Monday 4 January, 09:00 CET: Week 1" in page
    assert 'value="remove-schedule">Remove</button>' in page
    r = await act(action="add-schedule", timezone="Mars/Base", **form)
    assert r.status_code == 400 and "unknown time zone" in r.text
    r = await client.post(f"{console}/act", data={"action": "remove-schedule", "target": "1", "back": "queue"})
    assert r.status_code in (400, 403)  # no CSRF token: refused
    async with services.db.read() as conn:
        [s] = await list_schedules(conn, (await get_group(conn, "readers")).id)
    r = await act(action="remove-schedule", target=str(s.id))
    assert r.status_code == 303 and "Recurring thread removed." in (await client.get(r.headers["location"])).text
    async with services.db.read() as conn:
        assert await list_schedules(conn, s.group_id) == []


async def test_the_workers_clock_fires_what_is_due(world, services):
    from server.groups.routine import Routine
    from server.jobs import build_worker
    from server.types import utcnow

    assert any(getattr(task, "__self__", None).__class__ is Routine for task in build_worker(services).periodic)
    s = await _add(services, ScheduleSpec(title="Now {n}", text="x", every="day"), now=utcnow())
    async with services.db.transaction() as conn:  # as if its hour had come a minute ago
        await conn.execute(
            sa.update(schedules).where(schedules.c.id == s.id).values(next_at=utcnow() - timedelta(minutes=1))
        )
    stop = asyncio.Event()
    task = asyncio.create_task(Routine(services, interval=timedelta(seconds=0.05)).run_forever(stop))
    try:
        for _ in range(100):
            if await _group_posts(services):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    [row] = await _group_posts(services)
    assert row.name == "Now 1"
