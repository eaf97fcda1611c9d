"""The Mastodon admin reports API: entities, filters, pagination, actions, who may call; and Mastodon.py."""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from server.accounts import create_user
from server.groups.membership import GroupSpec, create_group
from server.jobs import build_worker
from server.moderation import reports
from server.oauth import create_user_token
from server.tables import remote_actors
from server.tables import reports as reports_table
from server.types import utcnow
from tests.test_mastodon_py import admin_client, live  # noqa: F401  (live is a fixture)

BASE = "/api/v1/admin/reports"
BOOKCLUB = "https://kith.test/groups/bookclub"
CHESS = "https://kith.test/groups/chess"
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
REPORT_KEYS = {
    "id",
    "action_taken",
    "action_taken_at",
    "category",
    "comment",
    "forwarded",
    "created_at",
    "updated_at",
    "account",
    "target_account",
    "assigned_account",
    "action_taken_by_account",
    "statuses",
    "rules",
}
ADMIN_ACCOUNT_KEYS = {
    "id",
    "username",
    "domain",
    "created_at",
    "email",
    "ip",
    "ips",
    "locale",
    "invite_request",
    "role",
    "confirmed",
    "approved",
    "disabled",
    "silenced",
    "sensitized",
    "suspended",
    "account",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def token(services, name: str, scopes: str = "admin:read admin:write") -> dict[str, str]:
    return bearer((await create_user_token(services.db, name, scopes)).token)


async def flag(client, worker, server, name, objects, comment="breaks rule 1"):
    activity = {
        "id": server.new_id(),
        "type": "Flag",
        "actor": server.actor_uri(name),
        "object": objects,
        "content": comment,
    }
    r = await server.post(client, name, "https://kith.test/inbox", activity)
    assert r.status_code == 202, r.text
    await worker.drain()


@pytest.fixture
async def flagged(world, services, mastodon):
    """The test world plus chess (owner chessmod), the admin ada and nobody; reports from mastodon.example's
    "reporter": about alice's post in bookclub, and about carol's in chess."""
    await create_user(services.db, "ada", admin=True)
    await create_user(services.db, "chessmod")
    await create_user(services.db, "nobody")
    await create_group(services.db, GroupSpec(name="chess", owner="chessmod"))
    mastodon.add_user("reporter")
    mastodon.add_user("carol")
    rude = await world.post(mastodon, "alice", "<p>rude words</p>", group=BOOKCLUB)
    await world.join(mastodon, "carol", CHESS)
    spam = await world.post(mastodon, "carol", "<p>spam</p>", group=CHESS)
    await flag(world.client, world.worker, mastodon, "reporter", [mastodon.actor_uri("alice"), rude["id"]])
    await flag(world.client, world.worker, mastodon, "reporter", [spam["id"]], "spam")
    async with services.db.read() as conn:
        ids = (await conn.execute(sa.select(reports_table.c.id).order_by(reports_table.c.id))).scalars().all()
    return {"rude": rude, "spam": spam, "bookclub_report": ids[0], "chess_report": ids[1]}


def links(response) -> dict[str, dict[str, list[str]]]:
    found = {}
    for part in response.headers.get("link", "").split(", "):
        match = re.fullmatch(r'<([^>]+)>; rel="(\w+)"', part)
        if match:
            found[match.group(2)] = parse_qs(urlsplit(match.group(1)).query)
    return found


# --------------------------------------------------------------------------- entities


async def test_admin_report_entity(client, services, mastodon, flagged):
    ada = await token(services, "ada")
    r = await client.get(BASE, headers=ada)
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()] == [str(flagged["chess_report"]), str(flagged["bookclub_report"])]
    report = r.json()[1]
    assert set(report) == REPORT_KEYS
    assert (report["action_taken"], report["action_taken_at"], report["category"]) == (False, None, "other")
    assert (report["comment"], report["forwarded"], report["rules"]) == ("breaks rule 1", False, [])
    assert TIME_RE.fullmatch(report["created_at"]) and TIME_RE.fullmatch(report["updated_at"])
    assert report["assigned_account"] is None and report["action_taken_by_account"] is None

    reporter = report["account"]
    assert set(reporter) == ADMIN_ACCOUNT_KEYS
    assert (reporter["username"], reporter["domain"], reporter["email"], reporter["role"]) == (
        "reporter",
        "mastodon.example",
        None,
        None,
    )
    assert int(reporter["id"]) >= 2**31  # remote accounts never share an id with a local one
    assert reporter["account"]["acct"] == "reporter@mastodon.example"
    assert reporter["account"]["uri"] == mastodon.actor_uri("reporter")
    assert reporter["account"]["display_name"] == "Reporter"
    target = report["target_account"]
    assert target["username"] == "alice" and target["account"]["url"] == mastodon.actor_uri("alice")
    (status,) = report["statuses"]
    assert (status["uri"], status["content"], status["visibility"]) == (
        flagged["rude"]["id"],
        "<p>rude words</p>",
        "public",
    )
    assert isinstance(status["id"], str) and status["account"]["id"] == target["id"]
    assert TIME_RE.fullmatch(status["created_at"])

    r = await client.get(f"{BASE}/{report['id']}", headers=ada)
    assert r.status_code == 200 and r.json() == report
    for bad in ("999999", "abc", "-1", "99999999999999999999"):
        r = await client.get(f"{BASE}/{bad}", headers=ada)
        assert r.status_code == 404 and r.json() == {"error": "Record not found"}, bad


async def test_local_reporter_and_a_report_about_a_group(client, services, worker, mastodon, flagged):
    await reports.report_remote(services, "mod1", [flagged["rude"]["id"]], "see this")
    await flag(client, worker, mastodon, "reporter", [BOOKCLUB], "this whole group")
    ada = await token(services, "ada")
    about_group = (await client.get(BASE, headers=ada)).json()[0]
    assert about_group["comment"] == "this whole group" and about_group["statuses"] == []
    group = about_group["target_account"]
    assert (group["username"], group["domain"], group["account"]["group"]) == ("bookclub", None, True)
    assert group["account"]["url"] == BOOKCLUB

    # Our own report is sent and closed at once: it is listed among the resolved.
    (ours,) = [x for x in (await client.get(BASE, params={"resolved": "true"}, headers=ada)).json()]
    reporter = ours["account"]
    assert (reporter["username"], reporter["domain"], reporter["confirmed"]) == ("mod1", None, True)
    assert reporter["role"]["permissions"] == "65536"  # not an admin
    assert ours["forwarded"] is True and ours["action_taken"] is True


# --------------------------------------------------------------------------- actions and filters


async def test_actions(client, services, flagged):
    ada = await token(services, "ada")
    rid = flagged["bookclub_report"]

    r = await client.post(f"{BASE}/{rid}/assign_to_self", headers=ada)
    assert r.status_code == 200, r.text
    assigned = r.json()["assigned_account"]
    assert (assigned["username"], assigned["domain"], assigned["role"]["name"]) == ("ada", None, "Admin")
    assert r.json()["action_taken"] is False

    r = await client.post(f"{BASE}/{rid}/unassign", headers=ada)
    assert r.status_code == 200 and r.json()["assigned_account"] is None

    r = await client.post(f"{BASE}/{rid}/resolve", headers=ada)
    assert r.status_code == 200 and r.json()["action_taken"] is True
    assert TIME_RE.fullmatch(r.json()["action_taken_at"])
    async with services.db.read() as conn:
        row = await reports.get_report(conn, rid)
    assert (row.state, row.action_taken) == ("resolved", "none")

    # Closed: assigning or unassigning is refused until it is reopened.
    for action in ("assign_to_self", "unassign"):
        r = await client.post(f"{BASE}/{rid}/{action}", headers=ada)
        assert r.status_code == 422 and "reopen" in r.json()["error"]

    unresolved = [x["id"] for x in (await client.get(BASE, headers=ada)).json()]
    resolved = [x["id"] for x in (await client.get(BASE, params={"resolved": "1"}, headers=ada)).json()]
    both = [x["id"] for x in (await client.get(BASE, params={"resolved": "1", "unresolved": "1"}, headers=ada)).json()]
    assert (unresolved, resolved) == ([str(flagged["chess_report"])], [str(rid)])
    assert both == [str(flagged["chess_report"]), str(rid)]
    assert [x["id"] for x in (await client.get(BASE, params={"resolved": "false"}, headers=ada)).json()] == unresolved
    assert (await client.get(BASE, params={"resolved": "perhaps"}, headers=ada)).status_code == 422

    r = await client.post(f"{BASE}/{rid}/reopen", headers=ada)
    assert r.status_code == 200 and r.json()["action_taken"] is False and r.json()["action_taken_at"] is None
    r = await client.post(f"{BASE}/{rid}/reopen", headers=ada)  # already open: as it is
    assert r.status_code == 200 and r.json()["action_taken"] is False
    async with services.db.read() as conn:
        assert (await reports.get_report(conn, rid)).state == "open"
    for action in ("assign_to_self", "unassign", "resolve", "reopen"):
        assert (await client.post(f"{BASE}/999999/{action}", headers=ada)).status_code == 404
        assert (await client.get(f"{BASE}/{rid}/{action}", headers=ada)).status_code == 405


async def test_account_filters(client, services, mastodon, flagged):
    ada = await token(services, "ada")
    async with services.db.read() as conn:
        ids = dict((await conn.execute(sa.select(remote_actors.c.uri, remote_actors.c.id))).all())
    reporter = str(2**31 + ids[mastodon.actor_uri("reporter")])
    alice = str(2**31 + ids[mastodon.actor_uri("alice")])
    carol = str(2**31 + ids[mastodon.actor_uri("carol")])

    def listed(params):
        return client.get(BASE, params=params, headers=ada)

    assert len((await listed({"account_id": reporter})).json()) == 2
    assert [x["id"] for x in (await listed({"target_account_id": alice})).json()] == [str(flagged["bookclub_report"])]
    assert [x["id"] for x in (await listed({"target_account_id": carol})).json()] == [str(flagged["chess_report"])]
    assert (await listed({"account_id": alice})).json() == []
    for unknown in ("1", "abc", str(2**31 + 99999), str(2**62), "9" * 40):
        r = await listed({"account_id": unknown})
        assert r.status_code == 200 and r.json() == [], unknown
    # The filter is kept in the pagination links.
    r = await listed({"account_id": reporter, "limit": 1})
    assert links(r)["next"]["account_id"] == [reporter] and links(r)["next"]["limit"] == ["1"]


async def test_pagination(client, services, flagged):
    now = utcnow()
    async with services.db.transaction() as conn:
        await conn.execute(
            sa.insert(reports_table),
            [
                {
                    "reporter": f"https://mastodon.example/users/r{i}",
                    "target_posts": "[]",
                    "comment": f"old {i}",
                    "state": "resolved",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(5)
            ],
        )
        ids = (
            (
                await conn.execute(
                    sa.select(reports_table.c.id)
                    .where(reports_table.c.state == "resolved")
                    .order_by(reports_table.c.id)
                )
            )
            .scalars()
            .all()
        )
    ada = await token(services, "ada")
    r = await client.get(BASE, params={"resolved": "true", "limit": 2}, headers=ada)
    assert [int(x["id"]) for x in r.json()] == [ids[4], ids[3]]
    assert links(r) == {
        "next": {"resolved": ["true"], "limit": ["2"], "max_id": [str(ids[3])]},
        "prev": {"resolved": ["true"], "limit": ["2"], "min_id": [str(ids[4])]},
    }
    assert r.headers["link"].startswith(f"<https://kith.test{BASE}?")
    r = await client.get(BASE, params={"resolved": "true", "limit": 2, "max_id": ids[1]}, headers=ada)
    assert [int(x["id"]) for x in r.json()] == [ids[0]] and set(links(r)) == {"prev"}
    r = await client.get(BASE, params={"resolved": "true", "limit": 2, "min_id": ids[0]}, headers=ada)
    assert [int(x["id"]) for x in r.json()] == [ids[2], ids[1]]
    r = await client.get(BASE, params={"resolved": "true", "since_id": ids[2]}, headers=ada)
    assert [int(x["id"]) for x in r.json()] == [ids[4], ids[3]]
    # A reporter we hold no actor for still gets an account, built from the URI.
    assert r.json()[0]["account"]["username"] == "r4" and r.json()[0]["account"]["domain"] == "mastodon.example"
    for bad in ({"limit": "ten"}, {"max_id": "x"}, {"min_id": "-1"}):
        assert (await client.get(BASE, params=bad, headers=ada)).status_code == 400


# --------------------------------------------------------------------------- who may call


@pytest.mark.parametrize(
    ("scopes", "reads", "writes"),
    [
        ("read write follow push", 403, 403),  # plain read/write never reach admin
        ("admin:read", 200, 403),
        ("admin:write", 403, 200),
        ("admin:read:reports", 200, 403),
        ("admin:write:reports", 403, 200),
        ("admin:read:domain_blocks admin:write:domain_blocks", 403, 403),
    ],
)
async def test_scopes(client, services, flagged, scopes, reads, writes):
    headers = await token(services, "ada", scopes)
    rid = flagged["bookclub_report"]
    assert (await client.get(BASE, headers=headers)).status_code == reads
    assert (await client.get(f"{BASE}/{rid}", headers=headers)).status_code == reads
    r = await client.post(f"{BASE}/{rid}/assign_to_self", headers=headers)
    assert r.status_code == writes
    if writes == 403:
        assert r.json() == {"error": "This action is outside the authorized scopes"}


async def test_who_may_call(client, services, flagged):
    book, chess = flagged["bookclub_report"], flagged["chess_report"]
    for path in (BASE, f"{BASE}/{book}"):
        r = await client.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert (await client.post(f"{BASE}/{book}/resolve")).status_code == 401
    assert (await client.get(BASE, headers=bearer("forged"))).status_code == 401

    # A group's owner sees and handles that group's reports, and no others (Kith's deviation).
    mod1 = await token(services, "mod1")
    assert [x["id"] for x in (await client.get(BASE, headers=mod1)).json()] == [str(book)]
    assert (await client.get(f"{BASE}/{book}", headers=mod1)).status_code == 200
    assert (await client.get(f"{BASE}/{chess}", headers=mod1)).status_code == 403
    for action in ("assign_to_self", "unassign", "resolve", "reopen"):
        r = await client.post(f"{BASE}/{chess}/{action}", headers=mod1)
        assert r.status_code == 403, action
    r = await client.post(f"{BASE}/{book}/assign_to_self", headers=mod1)
    assert r.status_code == 200 and r.json()["assigned_account"]["username"] == "mod1"

    # Anyone else: 403, whatever the scopes say.
    nobody = await token(services, "nobody")
    assert (await client.get(BASE, headers=nobody)).status_code == 403
    assert (await client.get(f"{BASE}/{book}", headers=nobody)).status_code == 403
    assert (await client.post(f"{BASE}/{book}/resolve", headers=nobody)).status_code == 403

    # A client-credentials token acts for nobody.
    app = (
        await client.post(
            "/api/v1/apps",
            data={"client_name": "bot", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "scopes": "admin:read"},
        )
    ).json()
    r = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "admin:read",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
        },
    )
    assert (await client.get(BASE, headers=bearer(r.json()["access_token"]))).status_code == 403
    async with services.db.read() as conn:
        states = (await conn.execute(sa.select(reports_table.c.state).order_by(reports_table.c.id))).scalars().all()
    assert states == ["assigned", "open"]


# --------------------------------------------------------------------------- Mastodon.py


async def test_mastodon_py_admin_reports(live, network, mastodon):  # noqa: F811
    """Mastodon.py's admin report calls against uvicorn, with reports that came in over HTTP."""
    services = live.services
    group = f"{live.base}/groups/bookclub"
    await create_user(services.db, "mod1")
    await create_group(services.db, GroupSpec(name="bookclub", owner="mod1"))
    mastodon.add_user("reporter")
    note = mastodon.note("alice", "<p>rude words</p>", to_group=group)
    worker = build_worker(services)
    async with httpx.AsyncClient() as http:
        for activity in (mastodon.follow("alice", group), mastodon.create("alice", note)):
            r = await mastodon.post(http, "alice", f"{group}/inbox", activity)
            assert r.status_code == 202, r.text
        await worker.drain()
        flag_activity = {
            "id": mastodon.new_id(),
            "type": "Flag",
            "actor": mastodon.actor_uri("reporter"),
            "object": [mastodon.actor_uri("alice"), note["id"]],
            "content": "rule 1",
        }
        r = await mastodon.post(http, "reporter", f"{live.base}/inbox", flag_activity)
        assert r.status_code == 202
        await worker.drain()

    api = await admin_client(live)
    (listed,) = await asyncio.to_thread(api.admin_reports)
    assert listed.comment == "rule 1" and listed.action_taken is False
    assert listed.account.username == "reporter" and listed.account.domain == "mastodon.example"
    assert listed.target_account.account.acct == "alice@mastodon.example"
    assert listed.statuses[0].uri == note["id"] and listed.statuses[0].content == "<p>rude words</p>"
    assert listed.created_at.year >= 2024  # parsed as a datetime

    report = await asyncio.to_thread(api.admin_report, listed.id)
    assert str(report.id) == str(listed.id) and report.category == "other"
    assigned = await asyncio.to_thread(api.admin_report_assign, report)
    assert assigned.assigned_account.username == "ada"
    unassigned = await asyncio.to_thread(api.admin_report_unassign, report)
    assert unassigned.assigned_account is None
    resolved = await asyncio.to_thread(api.admin_report_resolve, report)
    assert resolved.action_taken is True and resolved.action_taken_at is not None
    assert await asyncio.to_thread(api.admin_reports) == []
    assert [str(x.id) for x in await asyncio.to_thread(api.admin_reports, resolved=True)] == [str(report.id)]
    async with services.db.read() as conn:
        assert (await reports.get_report(conn, int(report.id))).state == "resolved"
    reopened = await asyncio.to_thread(api.admin_report_reopen, report)
    assert reopened.action_taken is False
    assert [str(x.id) for x in await asyncio.to_thread(api.admin_reports)] == [str(report.id)]
    async with services.db.read() as conn:
        row = await reports.get_report(conn, int(report.id))
    assert (row.state, json.loads(row.target_posts)) == ("open", [note["id"]])
