"""The home page as the directory of the instance's groups, on SQLite and PostgreSQL.

Four groups written with chosen creation times and last week's posts: garden (oldest,
one post this week), bookclub (four posts and replies this week, besides a held, a
deleted and an eight-day-old one that do not count), chess (newest, quiet) and a
group that is not discoverable (busiest of all, and never listed). Sorting by activity
gives bookclub, garden, chess; by age, chess, bookclub, garden.
"""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy import event

from server.accounts import create_user
from server.groups.media import save_media
from server.groups.membership import GroupSpec, create_group
from server.images import prepare
from server.tables import follows, local_actors, posts, remote_actors
from server.types import utcnow
from server.web.directory import purpose


def names(html: str) -> list[str]:
    """The groups listed, in order, by their headings' links."""
    return re.findall(r'<h2><a href="/groups/([a-z0-9_]+)">', html)


async def make_groups(services: Any) -> dict[str, Any]:
    now = utcnow()
    specs = {
        "garden": ("Community Garden", "Plots, seeds and swaps.\n\nMeet on Saturdays.", 30),
        "bookclub": ("Book Club", "One book a month, discussed slowly.", 20),
        "chess": ("Chess", "", 10),
        "secret": ("Secret Society", "Not for the directory.", 5),
    }
    groups = {}
    for name, (title, summary, _) in specs.items():
        groups[name] = await create_group(services.db, GroupSpec(name=name, title=title, summary=summary))
    await create_user(services.db, "olga")  # a person: never in the directory
    async with services.db.transaction() as conn:
        for name, (_, _, days_old) in specs.items():
            await conn.execute(
                sa.update(local_actors)
                .where(local_actors.c.id == groups[name].id)
                .values(created_at=now - timedelta(days=days_old), discoverable=name != "secret")
            )
        people = []
        for n in range(4):
            uri = f"https://one.example/users/p{n}"
            row = {"uri": uri, "domain": "one.example", "type": "Person", "inbox": uri + "/inbox", "raw": "{}"}
            inserted = await conn.execute(
                sa.insert(remote_actors).values(**row, fetched_at=now).returning(remote_actors.c.id)
            )
            people.append((inserted.scalar_one(), uri))

        def member(group: str, person: int, state: str = "accepted") -> dict[str, Any]:
            actor_id, uri = people[person]
            return {
                "group_id": groups[group].id,
                "actor_id": actor_id,
                "activity_uri": f"{uri}#follow-{group}",
                "activity_raw": "{}",
                "state": state,
                "created_at": now,
                "decided_at": now,
            }

        await conn.execute(
            sa.insert(follows),
            [
                member("garden", 0),
                member("garden", 1),
                member("garden", 2),
                member("bookclub", 0),
                member("bookclub", 3, "pending"),  # a request: no member yet
                member("secret", 1),
            ],
        )
        count = 0

        async def post(group: str, when: datetime, state: str = "visible", reply: bool = False) -> None:
            nonlocal count
            count += 1
            actor_id, uri = people[count % 4]
            row = {
                "uri": f"{uri}/statuses/{count}",
                "group_id": groups[group].id,
                "author_id": actor_id,
                "author_uri": uri,
                "type": "Note",
                "in_reply_to": f"{uri}/statuses/1" if reply else None,
                "state": state,
                "raw": "{}",
                "published": when,
                "last_activity_at": when,
                "created_at": when,
            }
            await conn.execute(sa.insert(posts).values(**row))

        day = timedelta(days=1)
        await post("garden", now - 2 * day)
        await post("bookclub", now - day)
        for _ in range(3):
            await post("bookclub", now - 3 * day, reply=True)
        await post("bookclub", now - day, state="held")  # not shown: does not count
        await post("bookclub", now - day, state="deleted")
        await post("bookclub", now - 8 * day)  # older than a week
        for _ in range(9):
            await post("secret", now - day)
    return groups


async def test_the_directory_lists_discoverable_groups_sorted_by_activity(client, services):
    await make_groups(services)
    r = await client.get("/")
    assert r.status_code == 200
    assert names(r.text) == ["bookclub", "garden", "chess"]  # by activity: the default
    html = r.text
    assert "Secret Society" not in html and "@secret@" not in html and "olga" not in html
    assert "<h1>Communities on kith.test</h1>" in html and "3 communities." in html
    garden = html[html.index('href="/groups/garden"') :]
    garden = garden[: garden.index("</li>")]
    assert "@garden@kith.test" in garden and "3 members" in garden and "1 post or reply in the last 7 days" in garden
    assert "Plots, seeds and swaps." in garden and "Meet on Saturdays" not in garden  # the first paragraph only
    book = html[html.index('href="/groups/bookclub"') :]
    book = book[: book.index("</li>")]
    assert "1 member<" in book and "4 posts and replies in the last 7 days" in book
    assert 'class="next-up"' not in html  # nothing comes next until recurring threads fill the slot
    assert (await client.get("/?sort=active")).text.count('<li class="community">') == 3
    assert names((await client.get("/about")).text) == ["bookclub", "garden", "chess"]


async def test_newest_first(client, services):
    await make_groups(services)
    r = await client.get("/?sort=new")
    assert r.status_code == 200 and names(r.text) == ["chess", "bookclub", "garden"]
    assert '<a href="/?sort=new" aria-current="page">Newest</a>' in r.text


async def test_bad_sort_or_page_is_a_400(client, services):
    await make_groups(services)
    huge = ("page=" + "9" * 40, "page=" + "9" * 5000)  # int() refuses 5,000 digits: checked before it
    for query in ("sort=popular", "page=0", "page=abc", "page=1001", "page=²", *huge):
        r = await client.get("/?" + query)
        assert r.status_code == 400, query
        assert "must be" in r.text
    r = await client.get("/?page=2")
    assert r.status_code == 200 and "No communities on this page" in r.text


async def test_pages_of_fifty_in_one_statement_whatever_the_number_of_groups(client, services):
    for n in range(53):
        await create_group(services.db, GroupSpec(name=f"g{n:02d}", title=f"Group {n}"))
    engine = services.db.engine.sync_engine
    statements: list[str] = []

    def on_execute(_conn, _cursor, statement, *_):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        first = await client.get("/?sort=new")
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    shown = names(first.text)
    assert len(shown) == 50 and shown[0] == "g52" and shown[-1] == "g03"
    # The page's groups, their members and their week: one SELECT; the total: one more; and what
    # comes next in the page's groups (their recurring threads): one for all fifty.
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 3, selects
    assert "FROM schedules" in selects[2] and selects[2].count("schedules.group_id IN") == 1
    assert 'href="/?sort=new&amp;page=2" rel="next">Next page</a>' in first.text
    second = await client.get("/?sort=new&page=2")
    assert names(second.text) == ["g02", "g01", "g00"] and 'rel="prev">Previous page</a>' in second.text
    assert 'rel="next"' not in second.text


async def test_a_groups_own_avatar_is_shown_and_the_others_get_their_initial(client, services):
    groups = await make_groups(services)
    out = io.BytesIO()
    Image.new("RGB", (500, 300), (200, 40, 40)).save(out, "PNG")
    async with services.db.transaction() as conn:
        ref = await save_media(conn, groups["garden"].id, prepare(out.getvalue(), "icon"))
    r = await client.get("/")
    src = services.links.group_media("garden", ref.file_name)
    assert f'<img class="avatar" src="{src}" alt=""' in r.text
    assert r.text.count('<img class="avatar"') == 1  # bookclub and chess get their initial instead
    # Served by this instance: the page's CSP needs no other image origin.
    assert "img-src 'self' data:;" in r.headers["content-security-policy"]
    served = await client.get(src)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"


def test_pure_helpers():
    assert purpose("  First.\n\nSecond.") == "First."
    long = "word " * 100
    assert len(purpose(long)) == 280 and purpose(long).endswith("…")


@pytest.mark.parametrize("path", ["/", "/?sort=new"])
async def test_an_empty_instance(client, path):
    r = await client.get(path)
    assert r.status_code == 200 and "No communities yet." in r.text and "0 communities." in r.text
