"""The group profile form in the moderator's console (``/console/groups/NAME/settings``), over HTTP
against the app, on SQLite and PostgreSQL.

A moderator saves the form: the group's actor document shows it, the member server receives
a signed ``Update(Group)``, the log has an ``edit``. A POST without the CSRF token changes
nothing, a non-moderator gets 403, and a value the domain refuses is shown with its reason
(400) and changes nothing.
"""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from server.accounts import create_user
from server.groups.membership import GroupSpec, create_group
from server.tables import mod_log
from tests.console_helpers import page_csrf, sign_in

GROUP = "https://kith.test/groups/bookclub"
CONSOLE = "/console/groups/bookclub"
PASSWORD = "correct horse battery"

FORM = {
    "title": "Book Club",
    "summary": "We read one novel a month.\n\nMore on the page.",
    "benefits": "Company, and a reason to finish.",
    "objectives": "Twelve books this year.",
    "rules": "  Be kind.\n\nNo spoilers without a warning.  \n",
    "welcome": "Hello, and welcome!",
    "approval": "manual",
    "posting": "anyone",
}


@pytest.fixture
async def bookclub(client, services, worker, mastodon):
    """bookclub (owner olga), alice a member from the fake Mastodon; olga signed in; nina leads nothing."""
    for name in ("olga", "nina"):
        await create_user(services.db, name, password=PASSWORD)
    await create_group(services.db, GroupSpec(name="bookclub", owner="olga", summary="Old purpose."))
    r = await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    assert r.status_code == 202
    await worker.drain()
    mastodon.received.clear()
    assert (await sign_in(client, "olga", PASSWORD)).status_code == 303


async def actor_doc(client) -> dict:
    r = await client.get(GROUP, headers={"Accept": "application/activity+json"})
    assert r.status_code == 200
    return r.json()


async def edits(services) -> list[tuple[str, str]]:
    async with services.db.read() as conn:
        rows = await conn.execute(sa.select(mod_log.c.moderator, mod_log.c.reason).where(mod_log.c.action == "edit"))
        return [tuple(r) for r in rows]


async def save(client, **data) -> httpx.Response:
    token = await page_csrf(client, f"{CONSOLE}/settings")
    return await client.post(f"{CONSOLE}/profile", data={"csrf": token, **data})


async def test_the_form_shows_the_profile_with_a_label_for_every_field(client, bookclub):
    page = (await client.get(f"{CONSOLE}/settings")).text
    assert f'action="{CONSOLE}/profile"' in page and 'name="csrf"' in page
    for name in ("title", "summary", "benefits", "objectives", "rules", "welcome", "approval", "posting"):
        field_id = f"p-{name}"
        assert f'<label for="{field_id}">' in page, field_id
    box = '<label class="check"><input type="checkbox" id="p-welcome-on" name="welcome_enabled" value="on" checked>'
    assert box in page
    assert ">Old purpose.</textarea>" in page


async def test_a_moderator_saves_and_members_servers_get_a_signed_update(client, services, worker, mastodon, bookclub):
    r = await save(client, **FORM, welcome_enabled="on")
    assert r.status_code == 303 and r.headers["location"] == f"{CONSOLE}/settings?done=profile"
    page = (await client.get(r.headers["location"])).text
    assert "Profile saved." in page
    assert ">Be kind.\nNo spoilers without a warning.</textarea>" in page  # one rule a line, blank lines gone
    assert 'value="manual" selected' in page and 'value="anyone" selected' in page

    doc = await actor_doc(client)
    assert doc["name"] == "Book Club" and doc["manuallyApprovesFollowers"] is True
    assert "We read one novel a month." in doc["summary"] and "No spoilers without a warning." in doc["summary"]
    fields = {f["name"]: f["value"] for f in doc["attachment"]}
    assert fields["Purpose"] == "Twelve books this year."
    assert fields["Posting"] == "Anyone who mentions the group" and fields["Joining"] == "Approved by moderators"

    await worker.drain()
    [update] = mastodon.of_type("Update")
    assert update.signer == GROUP  # the fake Mastodon verified the group's signature
    assert update.activity["object"]["type"] == "Group"
    assert {k: v for k, v in doc.items() if k != "@context"} == update.activity["object"]
    assert await edits(services) == [
        ("olga", "changed approval, benefits, objectives, posting, rules, summary, title, welcome")
    ]

    # The box unticked turns the welcome off; nothing else changes.
    r = await save(client, **FORM)
    assert r.status_code == 303
    assert (await edits(services))[-1] == ("olga", "changed welcome_enabled")
    assert ' name="welcome_enabled" value="on">' in (await client.get(f"{CONSOLE}/settings")).text


async def test_a_post_without_csrf_changes_nothing(client, services, worker, mastodon, bookclub):
    before = await actor_doc(client)
    for extra in ({}, {"csrf": "forged"}):
        r = await client.post(f"{CONSOLE}/profile", data={**FORM, **extra})
        assert r.status_code == 403 and "CSRF" in r.text
    assert await actor_doc(client) == before
    assert await edits(services) == []
    await worker.drain()
    assert mastodon.of_type("Update") == []
    assert (await client.get(f"{CONSOLE}/profile")).status_code == 405


async def test_a_non_moderator_gets_403(app, client, services, bookclub):
    before = await actor_doc(client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://kith.test") as nina:
        await sign_in(nina, "nina", PASSWORD)
        assert (await nina.get(f"{CONSOLE}/settings")).status_code == 403
        token = await page_csrf(nina)  # her own valid token, from /console
        r = await nina.post(f"{CONSOLE}/profile", data={"csrf": token, **FORM})
        assert r.status_code == 403 and "not a moderator of bookclub" in r.text
    assert await actor_doc(client) == before
    assert await edits(services) == []


async def test_an_over_long_text_shows_the_reason_and_changes_nothing(client, services, worker, mastodon, bookclub):
    before = await actor_doc(client)
    r = await save(client, **{**FORM, "benefits": "x" * 2001})
    assert r.status_code == 400
    assert "Not saved: the benefits must be at most 2000 characters" in r.text
    assert 'role="alert"' in r.text
    assert ">Book Club<" not in r.text.split("<h1>")[1].split("</h1>")[0]  # the page still shows the group as it is
    assert 'value="Book Club"' in r.text and "x" * 2001 + "</textarea>" in r.text  # what was typed is kept
    assert await actor_doc(client) == before
    assert await edits(services) == []
    await worker.drain()
    assert mastodon.of_type("Update") == []
    r = await save(client, **{**FORM, "posting": "everyone"})
    assert r.status_code == 400 and "posting must be one of members, anyone, moderators" in r.text
