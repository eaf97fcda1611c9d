"""The group's HTML page: what it shows of threads, replies, pins and polls, and what it costs."""

from __future__ import annotations

import json
import re
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from server.groups.membership import GroupSpec, create_group
from server.groups.posts import delete_post, find_post_by_id
from server.tables import posts, remote_actors
from server.web.queries import REPLIES_PER_THREAD, THREADS_PER_PAGE
from server.web.views import poll_bars

HTML = {"Accept": "text/html"}
T0 = datetime(2026, 3, 1, tzinfo=UTC)


class Seeder:
    """Posts written straight into the tables, in the shape intake leaves them."""

    def __init__(self, services: Any, group_id: int, author_id: int) -> None:
        self.services, self.group_id, self.author_id = services, group_id, author_id
        self.n = 0

    async def post(self, content: str = "<p>hi</p>", *, parent: int | None = None, **values: Any) -> int:
        self.n += 1
        at = T0 + timedelta(minutes=self.n)
        row = {
            "uri": f"https://mastodon.example/users/alice/statuses/{self.n}",
            "group_id": self.group_id,
            "author_id": self.author_id,
            "author_uri": "https://mastodon.example/users/alice",
            "type": "Note",
            "parent_id": parent,
            "root_id": parent,  # one level deep unless told otherwise
            "content_html": content,
            "raw": "{}",
            "published": at,
            "last_activity_at": at,
            "created_at": at,
            **values,
        }
        async with self.services.db.transaction() as conn:
            post_id = (await conn.execute(sa.insert(posts).values(**row).returning(posts.c.id))).scalar_one()
            if row["root_id"] is not None and row.get("state", "visible") == "visible":
                await conn.execute(
                    sa.update(posts)
                    .where(posts.c.id == row["root_id"])
                    .values(replies=posts.c.replies + 1, last_activity_at=at)
                )
        return int(post_id)


async def seeded(services: Any) -> Seeder:
    group = await create_group(services.db, GroupSpec(name="bookclub", title="Book Club"))
    async with services.db.transaction() as conn:
        author_id = (
            await conn.execute(
                sa.insert(remote_actors)
                .values(
                    uri="https://mastodon.example/users/alice",
                    domain="mastodon.example",
                    type="Person",
                    preferred_username="alice",
                    name="Alice <A>",
                    inbox="https://mastodon.example/users/alice/inbox",
                    raw="{}",
                    fetched_at=T0,
                )
                .returning(remote_actors.c.id)
            )
        ).scalar_one()
    return Seeder(services, group.id, int(author_id))


async def page(client: Any, query: str = "") -> str:
    r = await client.get(f"/groups/bookclub{query}", headers=HTML)
    assert r.status_code == 200
    return r.text


async def test_page_shows_threads_replies_pins_and_polls(client, services):
    s = await seeded(services)
    pinned = await s.post("<p>Welcome</p>", name="Read <this>", pinned_at=T0, locked=True, likes=3)
    poll = {"oneOf": [{"name": "Dune", "replies": {"totalItems": 2}}, {"name": "Emma", "replies": {"totalItems": 1}}]}
    question = await s.post("<p>Next book?</p>", type="Question", raw=json.dumps(poll))
    root = await s.post("<p>Chapter one</p>", summary="Spoilers")
    first = await s.post("<p>Loved it</p>", parent=root, dislikes=1)
    await s.post("<p>Same here</p>", parent=first, root_id=root)
    await s.post("", parent=root, state="deleted")
    await s.post("<p>spam</p>", parent=root, state="removed", removed_reason="ads <b>")
    await s.post("<p>held for review</p>", parent=root, state="held")

    html = await page(client)
    pinned_section, threads_section = html.split('<section class="threads">')
    # The pinned thread shows once, under Pinned, with its flags; its title is escaped.
    assert f'id="p{pinned}"' in pinned_section and f'id="p{pinned}"' not in threads_section
    assert '<span class="flag">Pinned</span><span class="flag">Locked</span>' in pinned_section
    assert "Read &lt;this&gt;" in pinned_section and "♥ 3" in pinned_section
    # The poll, with each option's share of the votes.
    assert f'id="p{question}"' in threads_section
    assert 'style="width: 67%"></span><span class="option">Dune</span> <span class="votes">2</span>' in html
    # Replies nest, tombstones keep their place, held replies are not shown.
    assert '<details class="cw"><summary>Spoilers</summary><div class="content"><p>Chapter one</p></div>' in html
    assert '<ol class="replies">' in html and "<p>Same here</p>" in html and "▼ 1" in html
    assert "This post was deleted." in html and "Removed by the moderators: ads &lt;b&gt;." in html
    assert "held for review" not in html
    # Visible replies only, linking to the thread's own page.
    assert f'<p class="count"><a href="/groups/bookclub/threads/{root}">2 replies</a></p>' in html
    # Author names are escaped; the content, sanitised on arrival, is placed as is.
    assert "Alice &lt;A&gt;" in html and "@alice@mastodon.example" in html
    assert '<time datetime="2026-03-01T00:03:00+00:00">2026-03-01 00:03</time>' in html


async def test_a_busy_thread_shows_its_first_replies_and_links_to_the_rest(client, services):
    s = await seeded(services)
    busy = await s.post("<p>Busy</p>")
    replies = [await s.post(f"<p>reply {i}</p>", parent=busy) for i in range(REPLIES_PER_THREAD + 3)]
    quiet = await s.post("<p>Quiet</p>")
    quiet_replies = [await s.post(f"<p>quiet reply {i}</p>", parent=quiet) for i in range(REPLIES_PER_THREAD)]

    html = await page(client)
    shown = [r for r in replies if f'id="p{r}"' in html]
    assert shown == replies[:REPLIES_PER_THREAD]  # the first ones, oldest first
    thread = f"/groups/bookclub/threads/{busy}"
    assert f'<a href="{thread}">{len(replies)} replies</a> · <a href="{thread}">the whole thread</a>' in html
    assert html.count("the whole thread") == 1  # not for the quiet thread, whose replies all show
    assert all(f'id="p{r}"' in html for r in quiet_replies)


async def test_pages_follow_the_cursor_and_deep_pages_show_no_pins(client, services):
    s = await seeded(services)
    roots = [await s.post(f"<p>thread {i}</p>") for i in range(THREADS_PER_PAGE + 2)]
    await s.post("<p>pinned</p>", pinned_at=T0)  # the newest thread, shown only above

    html = await page(client)
    assert '<section class="pinned">' in html
    cursor = html.split('href="?before=')[1].split('"')[0]
    deep = await page(client, f"?before={cursor}")
    assert '<section class="pinned">' not in deep and "Older threads" not in deep
    # Newest activity first; every thread on exactly one of the two pages.
    on_first = [r for r in roots if f'id="p{r}"' in html]
    on_deep = [r for r in roots if f'id="p{r}"' in deep]
    assert len(on_first) == THREADS_PER_PAGE - 1  # the pinned thread took a slot
    assert sorted(on_first + on_deep) == roots
    bad = await client.get("/groups/bookclub?before=nonsense", headers=HTML)
    assert bad.status_code == 400


async def test_a_deleted_post_leaves_the_page_at_once(client, services):
    s = await seeded(services)
    post_id = await s.post("<p>soon gone</p>")
    assert "soon gone" in await page(client)
    async with services.db.transaction() as conn:
        await delete_post(conn, await find_post_by_id(conn, post_id))
    assert "soon gone" not in await page(client)


def count_checkouts(services: Any, monkeypatch: Any) -> list[int]:
    """Count ``services.db.read()`` checkouts from now on: the one-element list holds the count."""
    checkouts = [0]
    read = services.db.read

    @asynccontextmanager
    async def counting_read() -> Any:
        checkouts[0] += 1
        async with read() as conn:
            yield conn

    monkeypatch.setattr(services.db, "read", counting_read)
    return checkouts


async def test_the_page_checks_out_one_connection(client, services, monkeypatch):
    s = await seeded(services)
    root = await s.post("<p>root</p>")
    await s.post("<p>reply</p>", parent=root)
    checkouts = count_checkouts(services, monkeypatch)
    await page(client)
    assert checkouts == [1]
    checkouts[0] = 0
    r = await client.get("/groups/bookclub", headers={"Accept": "application/activity+json"})
    assert r.status_code == 200 and checkouts == [1]


async def test_missing_group_is_404(client, services):
    r = await client.get("/groups/nobody", headers=HTML)
    assert r.status_code == 404


def test_poll_bars_are_whole_percentages():
    assert poll_bars([("a", 2), ("b", 1)]) == [("a", 2, 67), ("b", 1, 33)]
    assert poll_bars([("a", 0), ("b", 0)]) == [("a", 0, 0), ("b", 0, 0)]
    assert poll_bars([]) == []


async def test_on_sqlite_the_page_looks_up_each_roots_replies_and_never_walks_every_reply(tmp_path):
    """SQLite's plan for the page's one statement (no ANALYZE, so the plan is the same at any size): with
    a join to the roots it ranked replies by walking ix_posts_root from end to end, every reply of
    every group (37 ms at 20,000 posts); looked up root by root it stays a few milliseconds."""
    from sqlalchemy.dialects import sqlite

    from server.db import Database
    from server.web import queries

    db = Database(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        await db.migrate()
        for statement in (queries._THREADS["sqlite"], queries._THREADS_BEFORE["sqlite"]):
            sql = re.sub(r"__\[POSTCOMPILE_\w+\]", "?", str(statement.compile(dialect=sqlite.dialect())))
            async with db.read() as conn:
                explained = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, (None,) * sql.count("?"))
                plan = [row[-1] for row in explained.all()]
            assert "SEARCH posts USING INDEX ix_posts_root (root_id=?)" in plan, plan
            assert not any(step.startswith("SCAN posts") for step in plan), plan
    finally:
        await db.dispose()
