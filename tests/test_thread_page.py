"""A thread's HTML page: the whole reply tree, tombstones, what it hides, its errors and its cost."""

from __future__ import annotations

import json
from datetime import timedelta
from html import unescape
from html.parser import HTMLParser
from typing import Any

import sqlalchemy as sa

from server.groups.membership import GroupSpec, create_group
from server.tables import posts
from server.web.queries import REPLIES_PER_THREAD, REPLIES_PER_THREAD_PAGE
from server.web.views import MAX_DEPTH
from tests.test_group_page import HTML, T0, Seeder, count_checkouts, seeded


class Depths(HTMLParser):
    """How deep in nested ``<ol class="replies">`` each post (``<article id="pN">``) sits."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []  # one per open <ol>: is it a replies list
        self.depth: dict[int, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "ol":
            self.stack.append(values.get("class") == "replies")
        elif tag == "article" and (values.get("id") or "").startswith("p"):
            self.depth[int(values["id"][1:])] = sum(self.stack)

    def handle_endtag(self, tag: str) -> None:
        if tag == "ol":
            self.stack.pop()


def depths(html: str) -> dict[int, int]:
    parser = Depths()
    parser.feed(html)
    return parser.depth


async def thread(client: Any, post_id: int | str, group: str = "bookclub") -> str:
    r = await client.get(f"/groups/{group}/threads/{post_id}", headers=HTML)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    return r.text


async def refused(client: Any, path: str, status: int = 404) -> str:
    """The reason given, as JSON to a program; a browser gets a page saying the same."""
    r = await client.get(path, headers={"Accept": "application/json"})
    assert r.status_code == status, r.text
    reason = r.json()["error"]
    page = await client.get(path, headers=HTML)
    assert page.status_code == status and reason in unescape(page.text)
    return reason


async def test_the_whole_tree_past_the_group_page_preview(client, services):
    s = await seeded(services)
    root = await s.post("<p>Chapter one</p>", name="Dune, part 1", summary="Spoilers")
    first = await s.post("<p>reply 0</p>", parent=root)
    nested = await s.post("<p>nested</p>", parent=first, root_id=root)
    deeper = await s.post("<p>deeper</p>", parent=nested, root_id=root)
    deleted = await s.post("", parent=root, state="deleted")
    removed = await s.post("<p>spam</p>", parent=root, state="removed", removed_reason="ads")
    under_tombstone = await s.post("<p>answering the spam</p>", parent=removed, root_id=root)
    await s.post("<p>held for review</p>", parent=root, state="held")
    await s.post("<p>from a suspended server</p>", parent=first, root_id=root, state="suspended")
    rest = [await s.post(f"<p>late reply {i}</p>", parent=root) for i in range(REPLIES_PER_THREAD)]
    other = await s.post("<p>another thread</p>")

    html = await thread(client, root)
    shown = [first, nested, deeper, deleted, removed, under_tombstone, *rest]
    assert len(shown) > REPLIES_PER_THREAD + 1  # more than the group page previews
    # Every reply, oldest first, nested under its parent; tombstones keep their place.
    order = [p for p in depths(html) if p != root]
    assert order == shown
    assert depths(html) == {root: 0, first: 1, nested: 2, deeper: 3, deleted: 1, removed: 1, under_tombstone: 2} | {
        r: 1 for r in rest
    }
    assert "This post was deleted." in html and "Removed by the moderators: ads." in html
    assert "<p>spam</p>" not in html and "answering the spam" in html
    # Held and suspended replies are not shown at all; nor is another thread.
    assert "held for review" not in html and "suspended server" not in html and f'id="p{other}"' not in html
    # The root as on the group page: title (as the page's heading), content warning.
    assert '<h1 class="title"><a href="https://mastodon.example/users/alice/statuses/1"' in html
    assert '<details class="cw"><summary>Spoilers</summary><div class="content"><p>Chapter one</p></div>' in html
    assert "<title>Dune, part 1 · Book Club</title>" in html
    # The reply count (visible replies), the original, the way back to the group.
    assert f"{len([first, nested, deeper, under_tombstone, *rest])} replies" in html
    assert "the original on mastodon.example</a>" in html
    assert html.count('<a href="/groups/bookclub">') == 2 and "@bookclub@" in html
    assert "more than" not in html  # not truncated


async def test_poll_pin_and_lock_show_as_on_the_group_page(client, services):
    s = await seeded(services)
    poll = {"oneOf": [{"name": "Dune", "replies": {"totalItems": 3}}, {"name": "Emma", "replies": {"totalItems": 1}}]}
    root = await s.post("<p>Next book?</p>", type="Question", raw=json.dumps(poll), pinned_at=T0, locked=True, likes=2)
    html = await thread(client, root)
    assert '<span class="flag">Pinned</span><span class="flag">Locked</span>' in html
    assert 'style="width: 75%"></span><span class="option">Dune</span> <span class="votes">3</span>' in html
    assert "♥ 2" in html and "No replies yet" in html
    assert "<title>Post by Alice &lt;A&gt; · Book Club</title>" in html  # no title: named by its author


async def test_a_deep_back_and_forth_nests_only_so_far(client, services):
    s = await seeded(services)
    root = await s.post("<p>root</p>")
    chain = []
    parent = root
    for i in range(3 * MAX_DEPTH):
        parent = await s.post(f"<p>turn {i}</p>", parent=parent, root_id=root)
        chain.append(parent)

    html = await thread(client, root)
    depth = depths(html)
    assert [depth[p] for p in chain] == [*range(1, MAX_DEPTH), *[MAX_DEPTH] * (2 * MAX_DEPTH + 1)]
    # Below the last level the turns are listed in order, each saying whom it answers.
    assert [p for p in depth if p in chain] == chain
    assert f'in reply to <a href="#p{chain[MAX_DEPTH - 1]}">Alice &lt;A&gt;</a>' in html
    assert f'href="#p{chain[MAX_DEPTH - 2]}"' not in html  # the first at the last level nests as usual


async def test_a_huge_thread_shows_its_first_replies_and_says_so(client, services):
    s = await seeded(services)
    root = await s.post("<p>busy</p>")
    count = REPLIES_PER_THREAD_PAGE + 2
    rows = [
        {
            "uri": f"https://mastodon.example/users/alice/statuses/r{i}",
            "group_id": s.group_id,
            "author_id": s.author_id,
            "author_uri": "https://mastodon.example/users/alice",
            "type": "Note",
            "parent_id": root,
            "root_id": root,
            "content_html": f"<p>reply {i}</p>",
            "raw": "{}",
            "published": T0 + timedelta(hours=1, seconds=i),  # oldest first
            "last_activity_at": T0,
            "created_at": T0,
        }
        for i in range(count)
    ]
    async with services.db.transaction() as conn:
        await conn.execute(sa.insert(posts), rows)
        await conn.execute(sa.update(posts).where(posts.c.id == root).values(replies=count))

    html = await thread(client, root)
    assert "<p>reply 0</p>" in html and f"<p>reply {REPLIES_PER_THREAD_PAGE - 1}</p>" in html
    assert f"<p>reply {REPLIES_PER_THREAD_PAGE}</p>" not in html
    assert len(depths(html)) == REPLIES_PER_THREAD_PAGE + 1
    assert f"{count} replies" in html
    assert f"more than {REPLIES_PER_THREAD_PAGE} replies; the first {REPLIES_PER_THREAD_PAGE} are shown" in html


async def test_refusals_say_why(client, services):
    s = await seeded(services)
    root = await s.post("<p>root</p>")
    reply = await s.post("<p>reply</p>", parent=root)
    held_reply = await s.post("<p>held</p>", parent=root, state="held")
    films = await create_group(services.db, GroupSpec(name="films", title="Films"))
    film = Seeder(services, films.id, s.author_id)
    film.n = 1000  # its own statuses
    elsewhere = await film.post("<p>a film</p>")
    held = await s.post("<p>awaiting a moderator</p>", state="held")
    suspended = await s.post("<p>from a suspended server</p>", state="suspended")
    deleted = await s.post("", state="deleted")
    removed = await s.post("<p>spam</p>", state="removed", removed_reason="spam")

    unknown = await refused(client, "/groups/bookclub/threads/999999")
    assert unknown == "no post 999999 in group 'bookclub'"
    # Another group's post, and posts nobody may see, answer as an unknown id does.
    assert await refused(client, f"/groups/bookclub/threads/{elsewhere}") == f"no post {elsewhere} in group 'bookclub'"
    assert await thread(client, elsewhere, group="films")
    for hidden in (held, suspended, held_reply):
        assert await refused(client, f"/groups/bookclub/threads/{hidden}") == f"no post {hidden} in group 'bookclub'"
    # A reply points to its thread.
    assert f"is a reply, not the first post of a thread: see /groups/bookclub/threads/{root}" in await refused(
        client, f"/groups/bookclub/threads/{reply}"
    )
    # Deleted and removed threads are gone, as the group's Announces of them are.
    assert "deleted by its author" in await refused(client, f"/groups/bookclub/threads/{deleted}", 410)
    assert "removed by the group's moderators" in await refused(client, f"/groups/bookclub/threads/{removed}", 410)
    assert await refused(client, f"/groups/nobody/threads/{root}") == "no group named 'nobody'"
    for bad in ("abc", "-1", "1.5", "%C2%B2", "99999999999999999999"):
        assert "a thread is named by its first post's number" in await refused(
            client, f"/groups/bookclub/threads/{bad}"
        )


async def test_the_group_page_links_to_each_thread(client, services):
    s = await seeded(services)
    pinned = await s.post("<p>Welcome</p>", name="Rules", pinned_at=T0)
    await s.post("<p>Thanks</p>", parent=pinned)
    root = await s.post("<p>Chapter one</p>", name="Dune")
    for i in range(REPLIES_PER_THREAD + 1):
        await s.post(f"<p>reply {i}</p>", parent=root)

    r = await client.get("/groups/bookclub", headers=HTML)
    html = r.text
    page = f"/groups/bookclub/threads/{root}"
    assert f'<h3 class="title"><a href="{page}">Dune</a></h3>' in html
    assert f'<a href="{page}">{REPLIES_PER_THREAD + 1} replies</a> · <a href="{page}">the whole thread</a>' in html
    pinned_page = f"/groups/bookclub/threads/{pinned}"
    assert f'<h3 class="title"><a href="{pinned_page}">Rules</a></h3>' in html
    assert f'<p class="count"><a href="{pinned_page}">1 reply</a></p>' in html  # pinned threads too
    # The post's own link still goes to its origin.
    assert '<a class="when" href="https://mastodon.example/users/alice/statuses/3" rel="nofollow noopener">' in html
    # And the link leads to the page.
    assert "<p>reply 5</p>" not in html and "<p>reply 5</p>" in await thread(client, root)


async def test_everything_remote_is_escaped(client, services):
    group = await create_group(services.db, GroupSpec(name="evil", title="<b>Evil</b> & co"))
    s = await seeded(services)
    evil = Seeder(services, group.id, s.author_id)
    poll = {"oneOf": [{"name": "<i>opt</i> &lt;b&gt;", "replies": {"totalItems": 1}}]}
    root = await evil.post(
        "<p>fine</p>", name="<script>alert(1)</script>", summary="<img src=x>", type="Question", raw=json.dumps(poll)
    )
    await evil.post("<p>r</p>", parent=root)
    await evil.post("", parent=root, state="removed", removed_reason="<u>rude</u>")

    html = await thread(client, root, group="evil")
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<summary>&lt;img src=x&gt;</summary>" in html
    assert '<span class="option">opt &lt;b&gt;</span>' in html  # made plain text on reading, then escaped
    assert "Removed by the moderators: &lt;u&gt;rude&lt;/u&gt;." in html
    assert "&lt;b&gt;Evil&lt;/b&gt; &amp; co" in html and "<b>Evil</b>" not in html
    assert "Alice &lt;A&gt;" in html and "Alice <A>" not in html
    assert "<p>fine</p>" in html  # sanitised on arrival, placed as is


async def test_the_page_checks_out_one_connection(client, services, monkeypatch):
    s = await seeded(services)
    root = await s.post("<p>root</p>")
    reply = await s.post("<p>reply</p>", parent=root)
    checkouts = count_checkouts(services, monkeypatch)
    await thread(client, root)
    assert checkouts == [1]
    checkouts[0] = 0
    assert (await client.get(f"/groups/bookclub/threads/{reply}", headers=HTML)).status_code == 404
    assert checkouts == [1]


async def test_a_browser_gets_an_error_page_and_a_program_json(client):
    page = await client.get("/groups/nobody/threads/1", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "404 Not Found" in page.text and "<script" not in page.text
    program = await client.get("/groups/nobody/threads/1", headers={"Accept": "application/json"})
    assert program.status_code == 404 and program.json()["error"]
    assert (await client.get("/groups/nobody", headers={"Accept": "application/activity+json"})).json()["error"]
