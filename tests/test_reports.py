"""Reports: the Mastodon, Lemmy and Mbin Flag shapes in, the lifecycle, forwarding without the reporter."""

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from server.accounts import create_user
from server.errors import Forbidden
from server.moderation import reports
from server.moderation.blocklist.store import BLOCKS, BlockSpec, create
from server.tables import posts
from server.tables import reports as reports_table

FIXTURES = Path(__file__).parent / "fixtures" / "payloads"
GROUP = "https://kith.test/groups/bookclub"


def fixture(name: str, replacements: dict[str, str]) -> dict:
    text = (FIXTURES / f"{name}.json").read_text()
    for old, new in replacements.items():
        text = text.replace(old, new)
    return json.loads(text)


@pytest.fixture
async def reported(world, services, mastodon):
    """The test world, an admin and a stranger, a reporter on mastodon.example, and alice's rude post."""
    await create_user(services.db, "root_admin", admin=True)
    await create_user(services.db, "stranger")
    mastodon.add_user("reporter")
    note = await world.post(mastodon, "alice", "<p>rude words</p>")
    world.clear()
    return note


async def deliver(client, worker, mastodon, name, flag):
    r = await mastodon.post(client, name, "https://kith.test/inbox", flag)
    assert r.status_code == 202, r.text
    await worker.drain()


async def all_reports(services):
    async with services.db.read() as conn:
        return list((await conn.execute(sa.select(reports_table).order_by(reports_table.c.id))).all())


async def test_three_shapes_of_flag(client, services, worker, mastodon, reported):
    note = reported
    alice = mastodon.actor_uri("alice")
    # Mastodon: from an actor, object = [account, statuses...], content = the comment.
    m = fixture(
        "mastodon_flag",
        {
            "https://example.com/users/1": alice,
            "https://example.com/posts/380590": note["id"],
            "https://mastodon.example/ccb4f39a": "https://mastodon.example/flags/1",
            "https://mastodon.example/actor": mastodon.actor_uri("reporter"),
        },
    )
    # Lemmy: object = the post, summary = the comment, to = the community.
    lemmy = fixture(
        "lemmy_report_page",
        {
            "http://enterprise.lemmy.ml/post/7": note["id"],
            "http://enterprise.lemmy.ml/c/main": GROUP,
            "http://ds9.lemmy.ml/u/lemmy_alpha": mastodon.actor_uri("reporter"),
            "http://ds9.lemmy.ml/activities/flag": "https://mastodon.example/lf",
        },
    )
    # Mbin: object = [post, user], audience and to = the magazine.
    mbin = fixture(
        "mbin_flag",
        {
            "https://lemmy-test/post/4": note["id"],
            "https://lemmy-test/u/BentiGorlich": alice,
            "https://lemmy-test/c/test_mag": GROUP,
            "https://mbin-test1/u/BentiGorlich": mastodon.actor_uri("reporter"),
            "https://mbin-test1/reports": "https://mastodon.example/reports",
        },
    )
    for flag in (m, lemmy, mbin):
        await deliver(client, worker, mastodon, "reporter", flag)
    rows = await all_reports(services)
    assert len(rows) == 3
    for row in rows:
        assert row.group_id is not None and row.state == "open"
        assert json.loads(row.target_posts) == [note["id"]] and row.target_account == alice
        assert row.reporter == mastodon.actor_uri("reporter")
    assert [r.comment for r in rows] == [m["content"], lemmy["summary"], mbin["content"]]
    # A repeated Flag is one report.
    await deliver(client, worker, mastodon, "reporter", m)
    assert len(await all_reports(services)) == 3


async def test_long_comment_is_cut(client, services, worker, mastodon, reported):
    flag = {
        "id": mastodon.new_id(),
        "type": "Flag",
        "actor": mastodon.actor_uri("reporter"),
        "object": [reported["id"]],
        "content": "x" * 5000,
    }
    await deliver(client, worker, mastodon, "reporter", flag)
    (row,) = await all_reports(services)
    assert len(row.comment) == reports.MAX_COMMENT


async def test_reject_reports_domain_is_ignored(client, services, worker, mastodon, reported):
    await create(services.db, BLOCKS, BlockSpec("mastodon.example", "noop", reject_reports=True), actor="a")
    await services.blocklist.reload()
    reporter = mastodon.actor_uri("reporter")
    flag = {"id": mastodon.new_id(), "type": "Flag", "actor": reporter, "object": [reported["id"]]}
    await deliver(client, worker, mastodon, "reporter", flag)
    assert await all_reports(services) == []


async def test_lifecycle_resolve_by_removing_and_forward_hides_reporter(client, services, worker, mastodon, reported):
    flag = {
        "id": mastodon.new_id(),
        "type": "Flag",
        "actor": mastodon.actor_uri("reporter"),
        "object": [reported["id"]],
        "content": "breaks rule 1",
    }
    await deliver(client, worker, mastodon, "reporter", flag)
    (row,) = await all_reports(services)
    async with services.db.read() as conn:
        assert [r.id for r in await reports.list_reports(conn, user_name="mod1")] == [row.id]
        assert await reports.list_reports(conn, user_name="stranger") == []
    with pytest.raises(Forbidden):
        await reports.set_state(services, row.id, "stranger", "assigned")
    assigned = await reports.set_state(services, row.id, "mod1", "assigned")
    assert assigned.state == "assigned" and assigned.assigned_to is not None

    inboxes = await reports.forward(services, row.id, "mod1")
    await worker.drain()
    assert inboxes == ["https://mastodon.example/inbox"]
    (sent,) = mastodon.of_type("Flag")
    assert sent.signer == "https://kith.test/actor"  # from the instance actor
    assert sent.activity["object"] == [mastodon.actor_uri("alice"), reported["id"]]
    assert "reporter" not in json.dumps(sent.activity)  # the reporter is never named

    resolved = await reports.resolve(services, row.id, "mod1", action="remove", reason="rule 1")
    await worker.drain()
    assert resolved.state == "resolved" and resolved.action_taken == "remove"
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(posts.c.state))).scalar_one() == "removed"
    reopened = await reports.set_state(services, row.id, "root_admin", "open")
    assert reopened.state == "open" and reopened.action_taken == ""


async def test_local_report_of_a_remote_post(client, services, worker, mastodon, reported):
    row = await reports.report_remote(services, "mod1", [reported["id"]], "please look at this")
    await worker.drain()
    (sent,) = mastodon.of_type("Flag")
    assert sent.activity["content"] == "please look at this" and "mod1" not in json.dumps(sent.activity)
    assert row.outgoing and row.forwarded
    with pytest.raises(Forbidden):
        await reports.report_remote(services, "stranger", [reported["id"]], "x")
