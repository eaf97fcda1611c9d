"""A group's profile: purpose, benefits, objectives, rules and joining as Mastodon shows them, edited by its leaders."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from server.accounts import create_user
from server.errors import BadRequest, Forbidden
from server.federation.serialize import actor_document, profile_fields
from server.groups.membership import GroupSpec, create_group
from server.links import Links
from server.local_actors import LocalActor
from server.moderation.actions import group_and_moderator
from server.moderation.profiles import ProfileEdit, edit_profile
from server.tables import mod_log

GROUP = "https://kith.test/groups/readers"


def actor(**fields: object) -> LocalActor:
    base: dict[str, object] = dict(
        id=1, name="readers", kind="group", title="Readers", summary="", public_key_pem="PEM",
        approval="auto", posting="members", discoverable=True, rules="", created_at=datetime(2026, 1, 1, tzinfo=UTC),
        benefits="", objectives="", welcome="", welcome_enabled=True,
    )  # fmt: skip
    base.update(fields)
    return LocalActor(**base)  # type: ignore[arg-type]


def test_profile_fields_as_mastodon_shows_them() -> None:
    fields = profile_fields(actor(summary="One book a month.\n\nMore below.", rules="Be kind.\nNo spoilers."), GROUP)
    assert [f["name"] for f in fields] == ["Purpose", "Rules", "Posting", "Joining"]
    assert all(f["type"] == "PropertyValue" for f in fields)
    assert fields[0]["value"] == "One book a month."
    assert fields[1]["value"] == f'<a href="{GROUP}#rules" rel="nofollow noopener">2 rules</a>'
    assert (fields[2]["value"], fields[3]["value"]) == ("Members", "Open to anyone")


def test_purpose_prefers_objectives_and_is_escaped_and_capped() -> None:
    fields = profile_fields(actor(summary="bio", objectives="<b>Read</b> " + "x" * 400, approval="manual"), GROUP)
    purpose = fields[0]["value"]
    assert purpose.startswith("&lt;b&gt;Read&lt;/b&gt;") and len(purpose) < 300 and purpose.endswith("…")
    assert [f["name"] for f in fields] == ["Purpose", "Posting", "Joining"]  # no rules, no Rules field
    assert fields[-1]["value"] == "Approved by moderators"


@pytest.fixture
async def readers(client, services, worker, mastodon):
    await create_user(services.db, "owner")
    await create_user(services.db, "stranger")
    await create_group(services.db, GroupSpec(name="readers", owner="owner", summary="We read.", rules="Be kind."))
    assert (await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))).status_code == 202
    await worker.drain()
    mastodon.received.clear()


async def test_leaders_edit_and_members_servers_get_a_signed_update(client, services, worker, mastodon, readers):
    group, by = await group_and_moderator(services, "readers", "owner")
    edit = ProfileEdit(objectives="Finish twelve books.", benefits="<script>x</script> Company.", posting="anyone")
    updated = await edit_profile(services, group, edit, by=by)
    assert (updated.objectives, updated.posting) == ("Finish twelve books.", "anyone")
    await worker.drain()

    [update] = mastodon.of_type("Update")
    assert update.signer == GROUP  # bovine verified the group's signature
    doc = update.activity["object"]
    assert doc["id"] == GROUP and doc["type"] == "Group"
    assert {f["name"]: f["value"] for f in doc["attachment"]}["Purpose"] == "Finish twelve books."
    assert {f["name"]: f["value"] for f in doc["attachment"]}["Posting"] == "Anyone who mentions the group"
    served = (await client.get(GROUP, headers={"Accept": "application/activity+json"})).json()
    assert {k: v for k, v in served.items() if k != "@context"} == doc  # the Update carries what the id serves
    assert update.activity["cc"] == [f"{GROUP}/followers"]

    page = (await client.get(GROUP, headers={"Accept": "text/html"})).text
    assert "Finish twelve books." in page and "&lt;script&gt;x&lt;/script&gt; Company." in page
    assert 'id="rules"' in page
    async with services.db.read() as conn:
        entry = (await conn.execute(sa.select(mod_log).where(mod_log.c.action == "edit"))).one()
    assert entry.moderator == "owner" and entry.reason == "changed benefits, objectives, posting"

    # Nothing changed, nothing sent.
    assert await edit_profile(services, updated, edit, by=by) == updated
    mastodon.received.clear()
    await worker.drain()
    assert mastodon.received == []


async def test_only_leaders_edit_and_bad_values_are_refused(services, readers):
    with pytest.raises(Forbidden):
        await group_and_moderator(services, "readers", "stranger")
    group, by = await group_and_moderator(services, "readers", "owner")
    for edit, reason in [
        (ProfileEdit(benefits="x" * 2001), "at most 2000"),
        (ProfileEdit(posting="everyone"), "posting must be one of"),
        (ProfileEdit(welcome="hi\x00"), "NUL"),
    ]:
        with pytest.raises(BadRequest, match=reason):
            await edit_profile(services, group, edit, by=by)


async def test_kith_group_edit_from_a_shell(settings, services, readers):
    env = {**os.environ, "KITH_DOMAIN": settings.domain, "KITH_DATABASE_URL": settings.database_url}
    cmd = [sys.executable, "-m", "server", "group", "edit", "readers", "--as", "owner"]
    args = ["--objectives", "Read together.", "--rule", "Be kind.", "--rule", "Cite pages.", "--welcome-off"]
    r = await asyncio.to_thread(subprocess.run, cmd + args, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["objectives"] == "Read together." and shown["rules"] == ["Be kind.", "Cite pages."]
    assert shown["welcome"] is None  # turned off
    r = await asyncio.to_thread(
        subprocess.run, [*cmd[:-1], "stranger", "--title", "Mine"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1 and "not a moderator" in r.stderr
    doc = actor_document(
        (await group_and_moderator(services, "readers", "owner"))[0], Links(settings.base_url), host=settings.host
    )
    assert {f["name"]: f["value"] for f in doc["attachment"]}["Rules"].endswith(">2 rules</a>")
