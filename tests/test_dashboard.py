"""Mastodon's admin measures, dimensions and retention, and the public peers and activity, for a group server.

A small world is written straight into the tables with chosen times (the dashboard
counts by day, so the days must be known); every expected count below is worked out
by hand from it. The period asked about is 1 to 3 March 2026; the one before it, 26 to
28 February.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from server.accounts import create_user
from server.api.dashboard import Period, cohorts
from server.groups.membership import GroupSpec, create_group
from server.moderation.blocklist import store
from server.moderation.blocklist.store import BlockSpec
from server.oauth import create_user_token
from server.tables import follows, posts, reactions, remote_actors, reports
from server.types import utcnow

MEASURES = "/api/v1/admin/measures"
DIMENSIONS = "/api/v1/admin/dimensions"
RETENTION = "/api/v1/admin/retention"
PERIOD = {"start_at": "2026-03-01T00:00:00Z", "end_at": "2026-03-03T00:00:00Z"}
DAYS = ["2026-03-01T00:00:00.000+00:00", "2026-03-02T00:00:00.000+00:00", "2026-03-03T00:00:00.000+00:00"]


def at(day: int, hour: int = 12, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


PEOPLE = {  # name: domain
    "alice": "one.example",
    "bob": "one.example",
    "carol": "sub.one.example",
    "dave": "two.example",
    "frank": "two.example",
    "erin": "three.example",
}


def uri(name: str) -> str:
    return f"https://{PEOPLE[name]}/users/{name}"


async def build_world(services: Any) -> dict[str, int]:
    """Two groups, six people on four servers, memberships, posts, reactions and reports at known times."""
    books = await create_group(services.db, GroupSpec(name="books", title="Book Club"))
    chess = await create_group(services.db, GroupSpec(name="chess", title="Chess"))
    ids: dict[str, int] = {}
    async with services.db.transaction() as conn:
        for name, domain in PEOPLE.items():
            ids[name] = (
                await conn.execute(
                    sa.insert(remote_actors)
                    .values(
                        uri=uri(name),
                        domain=domain,
                        type="Person",
                        preferred_username=name,
                        inbox=uri(name) + "/inbox",
                        raw="{}",
                        fetched_at=at(1),
                    )
                    .returning(remote_actors.c.id)
                )
            ).scalar_one()

        def follow(name: str, group: Any, created: datetime, decided: datetime | None, state: str = "accepted"):
            return {
                "group_id": group.id,
                "actor_id": ids[name],
                "activity_uri": f"{uri(name)}#follows/{group.name}",
                "activity_raw": "{}",
                "state": state,
                "created_at": created,
                "decided_at": decided,
            }

        await conn.execute(
            sa.insert(follows),
            [
                follow("alice", books, at(1, 10), at(1, 10)),
                follow("alice", chess, at(2, 23, 59), at(2, 23, 59)),
                follow("bob", books, at(27, month=2), at(27, month=2)),
                follow("carol", books, at(3, 0), at(3, 0)),
                follow("dave", chess, at(1, 9), None, state="pending"),  # a request, no membership
                follow("dave", books, at(20, month=2), at(2, 8)),  # approved on 2 March
                follow("frank", books, at(1, 15), at(1, 15)),
            ],
        )

        async def post(n: int, name: str, group: Any, when: datetime, reply: bool = False, state: str = "visible"):
            row = {
                "uri": f"{uri(name)}/statuses/{n}",
                "group_id": group.id,
                "author_id": ids[name],
                "author_uri": uri(name),
                "type": "Note",
                "in_reply_to": f"{uri('alice')}/statuses/1" if reply else None,
                "state": state,
                "raw": "{}",
                "published": when,
                "last_activity_at": when,
                "created_at": when,
            }
            return (await conn.execute(sa.insert(posts).values(**row).returning(posts.c.id))).scalar_one()

        p1 = await post(1, "alice", books, at(1, 10, 5))
        await post(2, "bob", books, at(1, 11), reply=True)
        await post(3, "alice", books, at(2, 12), reply=True)
        p4 = await post(4, "dave", chess, at(3, 1))
        await post(5, "alice", books, at(2, 13), state="deleted")  # deleted: counts nowhere
        p6 = await post(6, "bob", books, at(28, month=2))
        await post(7, "carol", books, at(3, 5), state="removed")  # removed by a moderator: still taken

        def reaction(name: str, post_id: int, when: datetime, kind: str = "Like") -> dict[str, Any]:
            return {
                "post_id": post_id,
                "actor_uri": uri(name),
                "kind": kind,
                "activity_uri": f"{uri(name)}#likes/{post_id}",
                "created_at": when,
            }

        await conn.execute(
            sa.insert(reactions),
            [
                reaction("erin", p1, at(1, 12)),
                reaction("dave", p1, at(2, 9)),
                reaction("alice", p4, at(3, 2), kind="EmojiReact"),
                reaction("bob", p6, at(28, 13, month=2)),
            ],
        )

        def report(target: str, created: datetime, state: str, updated: datetime | None = None) -> dict[str, Any]:
            return {
                "reporter": "https://elsewhere.example/users/x",
                "target_account": target,
                "state": state,
                "created_at": created,
                "updated_at": updated or created,
            }

        await conn.execute(
            sa.insert(reports),
            [
                report(uri("alice"), at(1), "open"),
                report(uri("dave"), at(2), "resolved", at(3)),
                report(uri("bob"), at(27, month=2), "rejected", at(1, 8)),
                report("https://gone.example/users/x", at(3), "open"),
            ],
        )
    return ids


@pytest.fixture
async def admin(services) -> dict[str, str]:
    await create_user(services.db, "ada", admin=True)
    token = (await create_user_token(services.db, "ada", "admin:read")).token
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def world(services) -> dict[str, int]:
    return await build_world(services)


async def measures(client, admin, **params: Any) -> dict[str, dict[str, Any]]:
    r = await client.post(MEASURES, json={**PERIOD, **params}, headers=admin)
    assert r.status_code == 200, r.text
    return {m["key"]: m for m in r.json()}


def values(measure: dict[str, Any]) -> list[str]:
    assert [d["date"] for d in measure["data"]] == DAYS
    return [d["value"] for d in measure["data"]]


async def test_in_period_measures(client, admin, world):
    keys = ["active_users", "new_users", "interactions", "opened_reports", "resolved_reports"]
    got = await measures(client, admin, keys=keys)
    assert list(got) == keys
    for m in got.values():
        assert set(m) == {"key", "unit", "total", "previous_total", "data"} and m["unit"] is None
    # Active: D1 alice, bob, erin; D2 alice, dave (alice's deleted post does not count her twice); D3 dave,
    # carol, alice. Over the period: five people. Before it: bob (a post and a like).
    assert (got["active_users"]["total"], got["active_users"]["previous_total"]) == ("5", "1")
    assert values(got["active_users"]) == ["3", "2", "3"]
    # New members (by their first membership): alice and frank, dave (approved on the 2nd), carol; bob before.
    assert (got["new_users"]["total"], got["new_users"]["previous_total"]) == ("4", "1")
    assert values(got["new_users"]) == ["2", "1", "1"]
    # Interactions: reactions and replies. D1 erin's like and bob's reply; D2 dave's like and alice's reply;
    # D3 alice's emoji. Before: bob's like.
    assert (got["interactions"]["total"], got["interactions"]["previous_total"]) == ("5", "1")
    assert values(got["interactions"]) == ["2", "2", "1"]
    assert (got["opened_reports"]["total"], got["opened_reports"]["previous_total"]) == ("3", "1")
    assert values(got["opened_reports"]) == ["1", "1", "1"]
    # Closed: the one resolved on the 3rd and the one rejected on the 1st.
    assert (got["resolved_reports"]["total"], got["resolved_reports"]["previous_total"]) == ("2", "0")
    assert values(got["resolved_reports"]) == ["1", "0", "1"]


async def test_per_server_measures(client, admin, world):
    keys = ["instance_accounts", "instance_follows", "instance_followers", "instance_statuses", "instance_reports"]
    one = await measures(client, admin, keys=keys, **{k: {"domain": "one.example"} for k in keys})
    for m in one.values():
        assert "previous_total" not in m  # totals are of all time, as Mastodon's
    assert (one["instance_accounts"]["total"], values(one["instance_accounts"])) == ("2", ["1", "0", "0"])
    for key in ("instance_follows", "instance_followers"):  # memberships: alice's two, bob's one
        assert (one[key]["total"], values(one[key])) == ("3", ["1", "1", "0"])
    assert (one["instance_statuses"]["total"], values(one["instance_statuses"])) == ("4", ["2", "1", "0"])
    assert (one["instance_reports"]["total"], values(one["instance_reports"])) == ("2", ["1", "0", "0"])

    subs = {k: {"domain": "one.example", "include_subdomains": True} for k in keys}
    wide = await measures(client, admin, keys=keys, **subs)
    assert (wide["instance_follows"]["total"], values(wide["instance_follows"])) == ("4", ["1", "1", "1"])
    assert (wide["instance_statuses"]["total"], values(wide["instance_statuses"])) == ("5", ["2", "1", "1"])

    # A pending request is no membership; dave's approval on the 2nd is when his began.
    two = await measures(client, admin, keys=["instance_follows"], instance_follows={"domain": "Two.Example"})
    assert (two["instance_follows"]["total"], values(two["instance_follows"])) == ("2", ["1", "1", "0"])
    none = await measures(client, admin, keys=["instance_follows"], instance_follows={"domain": "nowhere.example"})
    assert none["instance_follows"]["total"] == "0"

    media = await measures(
        client, admin, keys=["instance_media_attachments"], **{"instance_media_attachments[domain]": "one.example"}
    )
    m = media["instance_media_attachments"]
    assert (m["unit"], m["total"], m["human_value"], values(m)) == ("bytes", "0", "0 Bytes", ["0", "0", "0"])


async def test_measures_as_fediblockhole_asks(client, admin, world):
    """No dates at all (fediblockhole sends none): all-time totals and no data."""
    r = await client.post(
        MEASURES, json={"keys": ["instance_follows"], "instance_follows": {"domain": "one.example"}}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json() == [{"key": "instance_follows", "unit": None, "total": "3", "data": []}]


async def test_form_parameters(client, admin, world):
    body = [("keys[]", "new_users"), ("keys[]", "instance_accounts"), ("instance_accounts[domain]", "two.example")]
    form = urlencode(body + list(PERIOD.items()))
    headers = {**admin, "Content-Type": "application/x-www-form-urlencoded"}
    r = await client.post(MEASURES, content=form, headers=headers)
    assert r.status_code == 200, r.text
    got = {m["key"]: m for m in r.json()}
    assert got["new_users"]["total"] == "4" and got["instance_accounts"]["total"] == "2"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, "keys[] is required"),
        ({"keys": ["nonsense"]}, "unknown key 'nonsense'"),
        ({"keys": ["tag_uses"]}, "tag_uses is not counted here"),
        ({"keys": ["instance_follows"]}, "instance_follows[domain] is required"),
        ({"keys": ["instance_follows"], "instance_follows": {"domain": "not a domain"}}, "instance_follows[domain]"),
        ({"keys": ["new_users"], "start_at": "yesterday", "end_at": "2026-03-01"}, "start_at must be an ISO 8601"),
        ({"keys": ["new_users"], "start_at": "2026-03-01"}, "end_at must be an ISO 8601"),
        ({"keys": ["new_users"], "start_at": "2026-03-02", "end_at": "2026-03-01"}, "end_at is before start_at"),
        ({"keys": ["new_users"], "start_at": "2025-01-01", "end_at": "2026-03-01"}, "at most 366"),
        ({"keys": ["new_users"], "start_at": "0001-01-01", "end_at": "0001-01-02"}, "must fall between 1970-01-01"),
        ({"keys": ["new_users"], "start_at": "9999-12-30", "end_at": "9999-12-31"}, "must fall between 1970-01-01"),
        ({"keys": ["new_users"], "start_at": 20260301, "end_at": "2026-03-01"}, "start_at must be an ISO 8601"),
        ({"keys": "new_users", "start_at": "2026-03-01", "end_at": "+99999-01-01"}, "end_at must be an ISO 8601"),
        ({"keys": [{"a": 1}]}, "keys[] is required"),
    ],
)
async def test_bad_measure_requests_are_400_with_a_reason(client, admin, body, reason):
    r = await client.post(MEASURES, json=body, headers=admin)
    assert r.status_code == 400, r.text
    assert reason in r.text


async def test_admins_only_with_admin_read(client, services, world):
    r = await client.post(MEASURES, json={"keys": ["new_users"], **PERIOD})
    assert r.status_code == 401
    await create_user(services.db, "moira", admin=False)
    mod = (await create_user_token(services.db, "moira", "admin:read")).token
    await create_user(services.db, "rita", admin=True)
    reader = (await create_user_token(services.db, "rita", "read write")).token
    for token in (mod, reader):
        for path in (MEASURES, DIMENSIONS, RETENTION):
            r = await client.post(
                path, json={"keys": ["new_users"], **PERIOD}, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 403, (path, r.text)


async def test_dimensions(client, admin, world, services):
    keys = ["servers", "sources", "instance_accounts", "software_versions"]
    r = await client.post(
        DIMENSIONS, json={**PERIOD, "keys": keys, "instance_accounts": {"domain": "one.example"}}, headers=admin
    )
    assert r.status_code == 200, r.text
    got = {d["key"]: d["data"] for d in r.json()}
    assert list(got) == keys
    # Posts taken in the period by server (deleted ones aside, removed ones in), most first.
    assert got["servers"] == [
        {"key": "one.example", "human_key": "one.example", "value": "3"},
        {"key": "sub.one.example", "human_key": "sub.one.example", "value": "1"},
        {"key": "two.example", "human_key": "two.example", "value": "1"},
    ]
    # Where new members came in: Book Club took alice, frank, dave and carol; Chess alice.
    assert got["sources"] == [
        {"key": "books", "human_key": "Book Club", "value": "4"},
        {"key": "chess", "human_key": "Chess", "value": "1"},
    ]
    assert got["instance_accounts"] == [
        {"key": "alice", "human_key": "alice", "value": "2"},
        {"key": "bob", "human_key": "bob", "value": "1"},
    ]
    software = {d["key"]: d for d in got["software_versions"]}
    assert set(software) == {"kith", "python", "sqlite" if services.db.is_sqlite else "postgresql"}
    assert all(d["value"] and d["value"] == d["human_value"] for d in software.values())

    r = await client.post(DIMENSIONS, json={**PERIOD, "keys": ["servers"], "limit": 1}, headers=admin)
    assert [d["key"] for d in r.json()[0]["data"]] == ["one.example"]
    for body, reason in [
        ({**PERIOD, "keys": ["space_usage"]}, "space_usage is not counted here"),
        ({**PERIOD, "keys": ["servers"], "limit": "x"}, "limit must be a number"),
        ({"keys": ["servers"]}, "start_at must be"),
    ]:
        r = await client.post(DIMENSIONS, json=body, headers=admin)
        assert r.status_code == 400 and reason in r.text, r.text


async def test_retention(client, admin, world):
    r = await client.post(RETENTION, data={**PERIOD, "frequency": "day"}, headers=admin)
    assert r.status_code == 200, r.text
    got = r.json()
    assert [c["period"] for c in got] == DAYS and {c["frequency"] for c in got} == {"day"}
    # 1 March: alice (last seen on the 3rd) and frank (never posted: seen only joining).
    assert got[0]["data"] == [
        {"date": DAYS[0], "rate": 1.0, "value": "2"},
        {"date": DAYS[1], "rate": 0.5, "value": "1"},
        {"date": DAYS[2], "rate": 0.5, "value": "1"},
    ]
    # 2 March: dave, who posted on the 3rd; 3 March: carol.
    assert got[1]["data"] == [
        {"date": DAYS[1], "rate": 1.0, "value": "1"},
        {"date": DAYS[2], "rate": 1.0, "value": "1"},
    ]
    assert got[2]["data"] == [{"date": DAYS[2], "rate": 1.0, "value": "1"}]

    r = await client.post(RETENTION, data={**PERIOD, "frequency": "month"}, headers=admin)
    month = r.json()
    assert [c["period"] for c in month] == ["2026-03-01T00:00:00.000+00:00"]
    assert month[0]["data"] == [{"date": "2026-03-01T00:00:00.000+00:00", "rate": 1.0, "value": "4"}]
    r = await client.post(RETENTION, data={**PERIOD, "frequency": "week"}, headers=admin)
    assert r.status_code == 400 and "frequency must be day or month" in r.text


def test_cohorts_are_empty_for_quiet_periods():
    period = Period(datetime(2026, 1, 30).date(), datetime(2026, 2, 2).date())
    got = cohorts(period, "month", [])
    assert [c["period"][:10] for c in got] == ["2026-01-01", "2026-02-01"]
    assert got[0]["data"] == [
        {"date": "2026-01-01T00:00:00.000+00:00", "rate": 0.0, "value": "0"},
        {"date": "2026-02-01T00:00:00.000+00:00", "rate": 0.0, "value": "0"},
    ]


async def test_peers_leave_out_blocked_domains(client, services, world):
    r = await client.get("/api/v1/instance/peers")
    assert r.status_code == 200
    assert r.json() == ["one.example", "sub.one.example", "three.example", "two.example"]
    await store.create(services.db, store.BLOCKS, BlockSpec("two.example", severity="suspend"), actor="cli")
    await store.create(
        services.db, store.BLOCKS, BlockSpec("one.example", severity="silence", obfuscate=True), actor="cli"
    )
    r = await client.get("/api/v1/instance/peers")
    assert r.json() == ["three.example"]  # a block covers the domains beneath it too

    await store.set_federation_mode(services.db, "allowlist", actor="cli")
    assert (await client.get("/api/v1/instance/peers")).status_code == 404
    assert (await client.get("/api/v1/instance/activity")).status_code == 404


async def test_activity_counts_twelve_weeks(client, services):
    books = await create_group(services.db, GroupSpec(name="books"))
    now = utcnow()
    async with services.db.transaction() as conn:
        alice = (
            await conn.execute(
                sa.insert(remote_actors)
                .values(
                    uri="https://one.example/users/alice",
                    domain="one.example",
                    type="Person",
                    inbox="https://one.example/inbox",
                    raw="{}",
                    fetched_at=now,
                )
                .returning(remote_actors.c.id)
            )
        ).scalar_one()
        week_ago = now - timedelta(days=7)
        await conn.execute(
            sa.insert(follows).values(
                group_id=books.id,
                actor_id=alice,
                activity_uri="https://one.example/f/1",
                activity_raw="{}",
                state="accepted",
                created_at=week_ago,
                decided_at=week_ago,
            )
        )
        for n, when in enumerate([now, now, week_ago]):
            await conn.execute(
                sa.insert(posts).values(
                    uri=f"https://one.example/p/{n}",
                    group_id=books.id,
                    author_id=alice,
                    author_uri="https://one.example/users/alice",
                    type="Note",
                    raw="{}",
                    published=when,
                    last_activity_at=when,
                    created_at=when,
                )
            )
    r = await client.get("/api/v1/instance/activity")
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    weeks = r.json()
    assert len(weeks) == 12 and all(set(w) == {"week", "statuses", "logins", "registrations"} for w in weeks)
    assert all(isinstance(v, str) for w in weeks for v in w.values())
    assert abs(int(weeks[0]["week"]) - now.timestamp()) < 60
    assert int(weeks[0]["week"]) - int(weeks[1]["week"]) == 7 * 86400
    assert (weeks[0]["statuses"], weeks[0]["logins"], weeks[0]["registrations"]) == ("2", "1", "0")
    assert (weeks[1]["statuses"], weeks[1]["logins"], weeks[1]["registrations"]) == ("1", "1", "1")
    assert all(w["statuses"] == "0" for w in weeks[2:])


async def test_measures_follow_real_traffic(client, services, worker, mastodon, admin):
    """A fake Mastodon's signed Follow and Create through the inbox show up in today's measures; an Undo ends it."""
    await create_group(services.db, GroupSpec(name="bookclub"))
    group = "https://kith.test/groups/bookclub"
    domain = mastodon.host
    today = utcnow().date()  # to tomorrow: a test that runs over midnight UTC still finds its day
    ask = {
        "keys": ["instance_follows", "instance_accounts", "instance_statuses", "active_users", "new_users"],
        "start_at": today.isoformat(),
        "end_at": (today + timedelta(days=1)).isoformat(),
        **{k: {"domain": domain} for k in ("instance_follows", "instance_accounts", "instance_statuses")},
    }

    async def today_counts() -> dict[str, tuple[str, str]]:
        r = await client.post(MEASURES, json=ask, headers=admin)
        assert r.status_code == 200, r.text
        return {m["key"]: (m["total"], str(sum(int(d["value"]) for d in m["data"]))) for m in r.json()}

    assert set((await today_counts()).values()) == {("0", "0")}
    follow = mastodon.follow("alice", group)
    assert (await mastodon.post(client, "alice", f"{group}/inbox", follow)).status_code == 202
    note = mastodon.note("alice", "<p>hello</p>", to_group=group)
    assert (await mastodon.post(client, "alice", f"{group}/inbox", mastodon.create("alice", note))).status_code == 202
    await worker.drain()
    got = await today_counts()
    assert got["instance_follows"] == got["instance_accounts"] == got["instance_statuses"] == ("1", "1")
    assert got["active_users"] == got["new_users"] == ("1", "1")

    undo = mastodon.undo("alice", follow)
    assert (await mastodon.post(client, "alice", f"{group}/inbox", undo)).status_code == 202
    await worker.drain()
    got = await today_counts()
    assert got["instance_follows"] == got["instance_accounts"] == ("0", "0")  # no longer a member
    assert got["instance_statuses"] == ("1", "1")  # what she posted stays
