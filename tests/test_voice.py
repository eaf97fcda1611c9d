"""The group speaks: a leader posts as the group, every member server gets the group's own Create.

Over the test world (tests/fakes/world.py): bookclub, owner mod1, moderator mod2, alice on
mastodon.example and bob on social.example, whose inboxes verify the group's signature with
bovine. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from server.accounts import create_user
from server.errors import BadRequest, Forbidden, NotFound
from server.federation import activities
from server.federation.serialize import text_to_html
from server.federation.vocab import AS_PUBLIC
from server.groups.posts import find_post
from server.groups.voice import MAX_TEXT, check_text, post_as_group, speak
from server.tables import deliveries, mod_log, outbound_activities, posts
from tests.fakes.world import GROUP, MODERATOR, NAME, OWNER

FOLLOWERS = f"{GROUP}/followers"
AS_JSON = {"Accept": "application/activity+json"}


# --------------------------------------------------------------------------- pure parts


def test_plain_text_becomes_safe_html_with_links() -> None:
    html = text_to_html(
        "Hi <b>all</b> & co.\nSee https://books.example/a?x=1&y=2.\n\n(https://w.example/p_(1))", links=True
    )
    assert html == (
        "<p>Hi &lt;b&gt;all&lt;/b&gt; &amp; co.<br>See "
        '<a href="https://books.example/a?x=1&amp;y=2" rel="nofollow noopener noreferrer">'
        "https://books.example/a?x=1&amp;y=2</a>.</p>"
        '<p>(<a href="https://w.example/p_(1)" rel="nofollow noopener noreferrer">https://w.example/p_(1)</a>)</p>'
    )
    # A quote ends a URL: no attribute can be broken out of.
    assert text_to_html('https://x.example/"onmouseover=alert(1)', links=True) == (
        '<p><a href="https://x.example/" rel="nofollow noopener noreferrer">https://x.example/</a>'
        "&quot;onmouseover=alert(1)</p>"
    )
    assert text_to_html("javascript:alert(1) https://", links=True) == "<p>javascript:alert(1) https://</p>"
    assert text_to_html("no <a> links here") == "<p>no &lt;a&gt; links here</p>"  # the default is unchanged


def test_text_checks() -> None:
    assert check_text("  Hello \n", "  Monthly\n  thread ") == ("Hello", "Monthly thread")
    assert check_text("x" * MAX_TEXT, None) == ("x" * MAX_TEXT, None)
    for text, title, reason in [
        ("   ", None, "empty"),
        ("x" * (MAX_TEXT + 1), None, "at most 5000"),
        ("ok", "t" * 201, "at most 200"),
        ("a\x00b", None, "NUL"),
    ]:
        with pytest.raises(BadRequest, match=reason):
            check_text(text, title)


def test_public_post_keeps_its_own_addressing() -> None:
    with pytest.raises(ValueError, match="sets"):
        activities.public_post(
            "https://k.test", actor=GROUP, kind="Note", content_html="", published=_now(), extra={"to": []}
        )
    with pytest.raises(ValueError, match="not a post type"):
        activities.public_post("https://k.test", actor=GROUP, kind="Person", content_html="", published=_now())


def _now():
    from server.types import utcnow

    return utcnow()


# --------------------------------------------------------------------------- the world


async def _rows(services, table, *where):
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(table).where(*where))).all()


async def test_a_moderator_posts_and_each_member_server_gets_one_signed_public_create(world, client, services):
    world.mastodon.add_user("carol")  # a second member on alice's server: still one delivery there
    await world.join(world.mastodon, "carol")
    world.clear()

    post = await post_as_group(
        services, NAME, MODERATOR, text="Chapter 3 this week.\n\nSee https://books.example/3", title="Week 3"
    )
    await world.worker.drain()

    assert (post.author_uri, post.author_id, post.root_id, post.name) == (GROUP, None, None, "Week 3")
    assert post.url == f"{GROUP}/threads/{post.id}"
    for server in world.servers:
        [got] = server.received  # one request per member server, to its shared inbox
        assert got.path == "/inbox" and got.signer == GROUP  # bovine verified the group's key
        create = got.activity
        assert create["type"] == "Create" and create["actor"] == GROUP
        assert create["to"] == [AS_PUBLIC] and create["cc"] == [FOLLOWERS]
        note = create["object"]
        assert note["id"] == post.uri and note["type"] == "Note" and note["attributedTo"] == GROUP
        assert note["to"] == [AS_PUBLIC] and note["cc"] == [FOLLOWERS] and note["audience"] == GROUP
        assert note["name"] == "Week 3" and note["url"] == post.url
        assert note["content"].startswith("<p><strong>Week 3</strong></p><p>Chapter 3 this week.</p>")
        assert '<a href="https://books.example/3" rel="nofollow noopener noreferrer">' in note["content"]

    # The Note and the Create dereference at their ids, unsigned and signed alike.
    served = (await client.get(note["id"], headers=AS_JSON)).json()
    assert {k: v for k, v in served.items() if k != "@context"} == note
    signed = await world.mastodon.signed_get(client, "alice", note["id"])
    assert signed.status_code == 200 and signed.json() == served
    assert (await client.get(create["id"], headers=AS_JSON)).json() == create
    # It is listed in the group's outbox, and shown on the group page and in the API.
    outbox = (await client.get(f"{GROUP}/outbox?page=true", headers=AS_JSON)).json()
    assert create in outbox["orderedItems"]
    page = (await client.get(GROUP, headers={"Accept": "text/html"})).text
    assert "Chapter 3 this week." in page and "Week 3" in page
    api = (await client.get(f"/api/kith/v1/groups/{NAME}/threads")).json()
    [thread] = api["threads"]
    assert (thread["id"], thread["url"], thread["title"], thread["author"]["id"]) == (
        post.uri,
        post.url,
        "Week 3",
        GROUP,
    )
    # The group is named as its author, by its title and handle, never by its URI.
    handle, title = f"@{NAME}@kith.test", world.group.title
    assert (thread["author"]["handle"], thread["author"]["name"]) == (handle, title)
    author = f'<a class="author" href="{GROUP}" rel="nofollow noopener">{title}</a>'
    byline = f'{author}\n    <span class="handle">{handle}</span>'
    assert byline in page and f">{GROUP}<" not in page
    thread_page = (await client.get(post.url, headers={"Accept": "text/html"})).text
    assert byline in thread_page and f">{GROUP}<" not in thread_page
    assert "the original" not in thread_page  # this page is the original

    [entry] = await _rows(services, mod_log, mod_log.c.action == "post")
    assert (entry.moderator, entry.target, entry.reason) == (MODERATOR, post.uri, "Week 3")
    assert await _rows(services, deliveries, deliveries.c.state != "done") == []  # every server took it


async def test_a_reply_threads_under_the_groups_post_and_is_redistributed(world, services):
    post = await post_as_group(services, NAME, OWNER, text="What are you reading?")
    await world.worker.drain()
    world.clear()

    reply = await world.reply(world.mastodon, "alice", post.uri, "Middlemarch.")
    async with services.db.read() as conn:
        stored = await find_post(conn, reply["id"])
        root = await find_post(conn, post.uri)
    assert stored is not None and (stored.parent_id, stored.root_id, stored.state) == (post.id, post.id, "visible")
    assert root is not None and root.replies == 1
    [announce] = [a for a in world.social.of_type("Announce") if isinstance(a.activity["object"], dict)]
    assert announce.signer == GROUP and announce.activity["object"]["object"]["inReplyTo"] == post.uri


async def test_pin_adds_it_to_featured_after_the_create(world, client, services):
    post = await post_as_group(services, NAME, OWNER, text="House rules, read first.", pin=True)
    await world.worker.drain()
    assert post.pinned_at is not None
    featured = (await client.get(f"{GROUP}/featured", headers=AS_JSON)).json()
    assert featured["orderedItems"] == [post.uri]
    for server in world.servers:
        assert [r.activity["type"] for r in server.received] == ["Create", "Add"]
        add = server.received[1].activity
        assert (add["actor"], add["object"], add["target"]) == (GROUP, post.uri, f"{GROUP}/featured")
        assert server.received[1].signer == GROUP
    actions = sorted(e.action for e in await _rows(services, mod_log))
    assert actions == ["pin", "post"]


async def test_only_leaders_post_and_a_refusal_sends_nothing(world, services):
    await create_user(services.db, "stranger")
    await create_user(services.db, "ada", admin=True)
    for who in ("stranger", "ada", "nobody"):  # not leading it: an admin neither; an unknown name neither
        with pytest.raises(Forbidden, match="not the owner or a moderator"):
            await post_as_group(services, NAME, who, text="Hello from me")
    with pytest.raises(BadRequest, match="empty"):
        await post_as_group(services, NAME, OWNER, text=" \n ")
    with pytest.raises(BadRequest, match="at most 5000"):
        await post_as_group(services, NAME, OWNER, text="x" * 5001)
    with pytest.raises(NotFound):
        await post_as_group(services, "nosuchgroup", OWNER, text="Hello")
    await world.worker.drain()
    assert [r.activity for s in world.servers for r in s.received] == []
    assert await _rows(services, posts) == []
    assert await _rows(services, outbound_activities, outbound_activities.c.type != "Accept") == []  # the joins
    assert await _rows(services, mod_log) == []


async def test_html_in_the_text_is_escaped_everywhere(world, client, services):
    post = await post_as_group(
        services, NAME, OWNER, text="<script>alert(1)</script> <img src=x onerror=alert(2)>", title="<b>T</b>"
    )
    await world.worker.drain()
    note = world.mastodon.received[0].activity["object"]
    assert "<script" not in note["content"] and "<img" not in note["content"] and "<b>" not in note["content"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in note["content"]
    assert "<p><strong>&lt;b&gt;T&lt;/b&gt;</strong></p>" in note["content"]
    page = (await client.get(GROUP, headers={"Accept": "text/html"})).text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert post.content_html == "<p>&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(2)&gt;</p>"


async def test_the_group_itself_speaks_a_poll(world, services):
    """What the later features need: no human behind it (a schedule), another type with fields of its own."""
    options = [{"type": "Note", "name": n, "replies": {"type": "Collection", "totalItems": 0}} for n in ("Yes", "No")]
    async with services.db.transaction() as conn:
        group = world.group
        assert group is not None
        post = await speak(
            conn, services, group, None, text="Meet in June?", kind="Question",
            extra={"oneOf": options, "endTime": "2030-01-01T00:00:00Z", "votersCount": 0},
        )  # fmt: skip
    await world.worker.drain()
    assert post.type == "Question"
    question = world.social.received[0].activity["object"]
    assert question["type"] == "Question" and question["oneOf"] == options and question["votersCount"] == 0
    [entry] = await _rows(services, mod_log)
    assert (entry.moderator, entry.action) == ("system", "post")
    assert json.loads(post.raw)["oneOf"] == options


async def test_kith_group_post_from_a_shell(world, settings, services):
    env = {**os.environ, "KITH_DOMAIN": settings.domain, "KITH_DATABASE_URL": settings.database_url}
    base = [sys.executable, "-m", "server", "group", "post"]

    async def kith(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run, [*base, *args], env=env, capture_output=True, text=True, timeout=60
        )

    r = await kith(NAME, "--as", OWNER, "--text", "From the shell.", "--title", "Shell", "--pin")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["uri"].startswith(f"{GROUP.rsplit('/groups', 1)[0]}/activities/") and shown["pinned"] is True
    async with services.db.read() as conn:
        stored = await find_post(conn, shown["uri"])
    assert stored is not None and stored.author_uri == GROUP and stored.name == "Shell"
    for args, message in [
        (("nosuch", "--as", OWNER, "--text", "x"), "no group named"),
        ((NAME, "--as", "alice", "--text", "x"), "not the owner or a moderator"),
        ((NAME, "--as", OWNER, "--text", "  "), "empty"),
        ((NAME, "--as", OWNER, "--text", "y" * 5001), "at most 5000"),
    ]:
        r = await kith(*args)
        assert r.returncode == 1 and r.stdout == "", r.stdout
        [line] = r.stderr.strip().splitlines()
        assert line.startswith("kith: error:") and message in line.lower(), line


async def test_a_removed_group_post_is_deleted_by_the_group_and_answers_410(world, client, services):
    from server.moderation.actions import group_and_moderator, remove_post

    post = await post_as_group(services, NAME, OWNER, text="Wrong date, sorry.")
    await world.worker.drain()
    world.clear()
    group, by = await group_and_moderator(services, NAME, MODERATOR)
    await remove_post(services, group, post.uri, by=by, reason="mistake")
    await world.worker.drain()
    for server in world.servers:
        [got] = server.received
        delete = got.activity
        assert got.signer == GROUP and delete["type"] == "Delete" and delete["actor"] == GROUP
        assert delete["object"]["id"] == post.uri and delete["object"]["type"] == "Tombstone"
    assert (await client.get(post.uri, headers=AS_JSON)).status_code == 410


def test_credit_group_names_the_group_in_its_posts_replies_and_in_reply_to_labels():
    from markupsafe import Markup

    from server.web.views import PostView, credit_group

    def view(pid: int, author: str, **extra) -> PostView:
        return PostView(
            id=pid, state="visible", removed_reason=None, author_uri=author, author_label=author, handle=author,
            link=author, published_iso="", published_text="", title=None, summary=None, content=Markup(""), poll=[],
            likes=0, dislikes=0, pinned=False, locked=False, reply_count=0, **extra,
        )  # fmt: skip

    alice = "https://mastodon.example/users/alice"
    reply = view(3, alice, reply_to=(GROUP, 2))
    nested = view(2, GROUP, children=[reply])
    root = view(1, alice, children=[nested])
    credit_group([root], uri=GROUP, label="Book Club", handle=f"@{NAME}@kith.test")
    assert (nested.author_label, nested.handle) == ("Book Club", f"@{NAME}@kith.test")
    assert reply.reply_to == ("Book Club", 2)
    assert (root.author_label, reply.author_label) == (alice, alice)  # others keep their names
