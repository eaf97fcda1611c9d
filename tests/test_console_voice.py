""" "Post as the group" in the moderator's console (``/console/groups/NAME``), over HTTP against the
app, on SQLite and PostgreSQL.

The owner posts: the member server receives the group's signed ``Create``, the log has a
``post``. Without the CSRF token nothing is posted; someone who leads nothing gets 403; an
admin who does not lead the group sees no form and is refused; text the domain refuses is
shown again with its reason (400) and nothing is posted.
"""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from server.accounts import create_user
from server.groups.membership import GroupSpec, create_group
from server.tables import mod_log, posts
from tests.console_helpers import page_csrf, sign_in

GROUP = "https://kith.test/groups/bookclub"
CONSOLE = "/console/groups/bookclub"
PASSWORD = "correct horse battery"


@pytest.fixture
async def bookclub(client, services, worker, mastodon):
    """bookclub (owner olga), alice a member from the fake Mastodon; nina leads nothing; ada is an admin."""
    for name in ("olga", "nina"):
        await create_user(services.db, name, password=PASSWORD)
    await create_user(services.db, "ada", password=PASSWORD, admin=True)
    await create_group(services.db, GroupSpec(name="bookclub", owner="olga"))
    r = await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    assert r.status_code == 202
    await worker.drain()
    mastodon.received.clear()


async def send(client, **data) -> httpx.Response:
    token = await page_csrf(client, CONSOLE)
    return await client.post(f"{CONSOLE}/post", data={"csrf": token, **data})


async def stored(services) -> list:
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(posts.c.uri, posts.c.name, posts.c.pinned_at))).all()


async def test_the_owner_posts_as_the_group(client, services, worker, mastodon, bookclub):
    assert (await sign_in(client, "olga", PASSWORD)).status_code == 303
    page = (await client.get(CONSOLE)).text
    assert f'action="{CONSOLE}/post"' in page and '<button type="submit" class="primary">Post</button>' in page
    assert '<label for="speak-text">' in page and '<label for="speak-title">' in page

    r = await send(client, text="Welcome, all <3\n\nhttps://books.example", title="Hello", pin="on")
    assert r.status_code == 303 and r.headers["location"] == f"{CONSOLE}?done=post"
    assert "Posted as the group" in (await client.get(r.headers["location"])).text
    [(uri, name, pinned_at)] = await stored(services)
    assert name == "Hello" and pinned_at is not None
    await worker.drain()
    [create, add] = mastodon.received
    assert create.signer == GROUP and create.activity["type"] == "Create" and add.activity["type"] == "Add"
    assert create.activity["object"]["id"] == uri
    assert "Welcome, all &lt;3" in create.activity["object"]["content"]
    async with services.db.read() as conn:
        log = (await conn.execute(sa.select(mod_log.c.moderator, mod_log.c.action).order_by(mod_log.c.id))).all()
    assert [tuple(e) for e in log] == [("olga", "post"), ("olga", "pin")]


async def test_refusals_post_nothing(client, services, worker, mastodon, bookclub):
    assert (await sign_in(client, "olga", PASSWORD)).status_code == 303
    r = await client.post(f"{CONSOLE}/post", data={"text": "no token"})
    assert r.status_code == 403 and "CSRF" in r.text

    r = await send(client, text="x" * 5001, title="Kept")
    assert r.status_code == 400
    assert "Not posted: the post&#39;s text is 5001 characters; at most 5000" in r.text
    assert 'value="Kept"' in r.text  # the form as submitted
    r = await send(client, text="   ")
    assert r.status_code == 400 and "text is empty" in r.text

    await client.post("/logout", data={"csrf": await page_csrf(client)})
    assert (await sign_in(client, "nina", PASSWORD)).status_code == 303
    r = await client.post(f"{CONSOLE}/post", data={"csrf": await page_csrf(client), "text": "hi"})
    assert r.status_code == 403

    await client.post("/logout", data={"csrf": await page_csrf(client)})
    assert (await sign_in(client, "ada", PASSWORD)).status_code == 303
    page = (await client.get(CONSOLE)).text
    assert f'action="{CONSOLE}/post"' not in page and "Only the group's owner and its moderators" in page
    r = await client.post(f"{CONSOLE}/post", data={"csrf": await page_csrf(client), "text": "hi"})
    assert r.status_code == 403 and "not the owner or a moderator" in r.text

    assert await stored(services) == []
    await worker.drain()
    assert mastodon.received == []
