"""Taking a Create into a group: one transaction in the common case, the same rules on every path."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from server.groups import intake
from server.groups.intake import Budget, take_post
from server.groups.posts import record_tombstone
from server.moderation import actions
from server.moderation.authority import leader_name, moderator_column
from server.moderation.rulebook import save_guards
from server.tables import bans, posts, remote_actors, tombstones
from server.types import utcnow

GROUP = "https://kith.test/groups/bookclub"


async def take(services, server, name, content, **kw):
    """Run the intake on a member's Create directly; returns the outcome."""
    note = server.note(name, content, to_group=GROUP, **kw)
    return await take_post(services, note, activity=server.create(name, note), budget=Budget()), note


async def states(services):
    async with services.db.read() as conn:
        return dict((await conn.execute(sa.select(posts.c.uri, posts.c.state))).all())


async def test_a_known_members_post_is_one_transaction(services, world, mastodon, monkeypatch):
    """Seen before, which group, standing, guards (and crowd control's window), the insert, and
    crowd control's count: one transaction, four statements (on PostgreSQL the count commits at
    once on the raw pool, outside this transaction and SQLAlchemy: three here)."""
    counts = {"begin": 0, "statements": 0}
    outside = [True]  # False while redistribution runs: its statements are counted elsewhere

    def on_begin(*_):
        counts["begin"] += 1

    def on_execute(_conn, _cursor, statement, *_):
        if not statement.startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE is a statement of its own
            counts["statements"] += outside[0]

    real = intake.redistribute

    async def counted_redistribute(*args, **kwargs):
        outside[0] = False
        try:
            return await real(*args, **kwargs)
        finally:
            outside[0] = True

    monkeypatch.setattr(intake, "redistribute", counted_redistribute)
    engine = services.db.engine.sync_engine
    event.listen(engine, "begin", on_begin)
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        outcome, note = await take(services, mastodon, "alice", "<p>hello</p>")
    finally:
        event.remove(engine, "begin", on_begin)
        event.remove(engine, "before_cursor_execute", on_execute)
    assert outcome == "accepted"
    assert counts == {"begin": 1, "statements": 4 if services.db.is_sqlite else 3}
    assert await states(services) == {note["id"]: "visible"}
    # A second time: the same single look says duplicate.
    assert (await take_post(services, note, activity=mastodon.create("alice", note), budget=Budget())) == "duplicate"


async def test_a_posts_statements_are_compiled_once(services, world, mastodon):
    """From the second post on, every statement of intake comes from SQLAlchemy's compiled cache:
    one that cannot be cached is compiled again for every post (crowd control's multi-row
    upsert on SQLite was, at ~15 % of the worker's CPU)."""
    await take(services, mastodon, "alice", "<p>first</p>")
    seen: list[tuple[str, str]] = []

    def on_execute(_conn, _cursor, statement, _params, context, _many):
        if not statement.startswith("BEGIN"):
            seen.append((str(context.cache_hit), " ".join(statement.split())[:60]))

    engine = services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        outcome, _ = await take(services, mastodon, "alice", "<p>second</p>")
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    assert outcome == "accepted" and len(seen) >= 4
    assert [s for s in seen if not s[0].endswith("CACHE_HIT")] == []


async def test_stale_author_is_refetched_outside_the_transaction(services, world, mastodon):
    async with services.db.transaction() as conn:
        await conn.execute(
            sa.update(remote_actors)
            .where(remote_actors.c.uri == mastodon.actor_uri("alice"))
            .values(fetched_at=utcnow() - timedelta(days=3), name="old name")
        )
    outcome, _ = await take(services, mastodon, "alice", "<p>after a while</p>")
    assert outcome == "accepted"
    async with services.db.read() as conn:
        row = (
            await conn.execute(sa.select(remote_actors).where(remote_actors.c.uri == mastodon.actor_uri("alice")))
        ).one()
    assert utcnow() - row.fetched_at < timedelta(minutes=1) and row.name != "old name"


async def test_reply_to_an_unknown_parent_is_fetched_and_threaded(services, world, mastodon, social):
    parent = social.note("bob", "<p>the start</p>", to_group=GROUP)  # served by social.example, never sent to us
    outcome, reply = await take(services, mastodon, "alice", "<p>a reply</p>", in_reply_to=parent["id"])
    assert outcome == "accepted"
    async with services.db.read() as conn:
        rows = {r.uri: r for r in (await conn.execute(sa.select(posts))).all()}
    assert rows[reply["id"]].parent_id == rows[parent["id"]].id == rows[reply["id"]].root_id
    assert rows[parent["id"]].replies == 1


async def test_expired_ban_no_longer_refuses(services, world, mastodon):
    async with services.db.transaction() as conn:
        await conn.execute(
            sa.insert(bans).values(
                group_id=world.group.id,
                actor_uri=mastodon.actor_uri("alice"),
                reason="spam",
                expires_at=utcnow() + timedelta(days=1),
                created_at=utcnow(),
            )
        )
    outcome, _ = await take(services, mastodon, "alice", "<p>still banned</p>")
    assert outcome == "refused: the author is banned from this group"
    async with services.db.transaction() as conn:
        await conn.execute(sa.update(bans).values(expires_at=utcnow() - timedelta(seconds=1)))
    outcome, _ = await take(services, mastodon, "alice", "<p>free again</p>")
    assert outcome == "accepted"


async def test_remote_moderator_passes_the_guards(services, world, mastodon, social):
    async with services.db.transaction() as conn:
        await save_guards(conn, services.db, world.group.id, {"keywords": ["casino"], "filter_action": "reject"})
    mod = (await actions.group_and_moderator(services, "bookclub", "mod1"))[1]
    await actions.set_moderator(services, world.group, social.actor_uri("bob"), True, by=mod)
    outcome, _ = await take(services, mastodon, "alice", "<p>casino</p>")
    assert outcome == "refused: contains a filtered word (casino)"
    outcome, _ = await take(services, social, "bob", "<p>casino, as an example of what not to post</p>")
    assert outcome == "accepted"


async def test_guard_counts_are_read_only_when_a_guard_uses_them(services, world, mastodon, monkeypatch):
    async def no_counts(*_args, **_kwargs):
        raise AssertionError("counts read with every guard off")

    monkeypatch.setattr(intake, "recent_counts", no_counts)
    monkeypatch.setattr(intake, "known_group_uris", no_counts)
    assert (await take(services, mastodon, "alice", "<p>no guards</p>"))[0] == "accepted"
    async with services.db.transaction() as conn:
        await save_guards(conn, services.db, world.group.id, {"member_posts_per_hour": 1})
    with pytest.raises(AssertionError):
        await take(services, mastodon, "alice", "<p>a guard on</p>")


async def test_moderator_column_local_leaders_and_remote_moderators(services, world, social):
    mod = (await actions.group_and_moderator(services, "bookclub", "mod1"))[1]
    await actions.set_moderator(services, world.group, social.actor_uri("bob"), True, by=mod)
    links = services.links

    async def is_mod(uri: str) -> bool:
        column = moderator_column(sa.literal(world.group.id), uri, leader_name(uri, links))
        async with services.db.read() as conn:
            return bool((await conn.execute(sa.select(column))).scalar_one())

    assert leader_name(links.actor("person", "mod1"), links) == "mod1"
    assert leader_name(social.actor_uri("bob"), links) is None
    assert await is_mod(links.actor("person", "mod1"))
    assert await is_mod(social.actor_uri("bob"))
    assert not await is_mod(links.actor("person", "nobody"))
    assert not await is_mod("https://elsewhere.example/users/mod1")


async def test_only_the_authors_own_create_is_taken(services, world, mastodon):
    """The intake keys membership and bans by the author, so it takes a Create only from the author."""
    mastodon.add_user("zed")
    note = mastodon.note("alice", "<p>claimed by zed's Create</p>", to_group=GROUP)
    forged = {**mastodon.create("alice", note), "actor": mastodon.actor_uri("zed")}
    assert await take_post(services, note, activity=forged, budget=Budget()) == "refused: the sender is not the author"
    assert await states(services) == {}
    assert await take_post(services, note, activity=mastodon.create("alice", note), budget=Budget()) == "accepted"


async def test_a_tombstone_binds_its_actor_and_an_old_one_everyone(services, world, mastodon):
    mastodon.add_user("zed")
    by_zed, by_alice, unknown = (mastodon.note("alice", f"<p>{i}</p>", to_group=GROUP) for i in range(3))
    async with services.db.transaction() as conn:
        await record_tombstone(conn, services.db, by_zed["id"], actor_uri=mastodon.actor_uri("zed"))
        await record_tombstone(conn, services.db, by_alice["id"], actor_uri=mastodon.actor_uri("alice"))
        # As recorded before tombstones kept their actor.
        await conn.execute(sa.insert(tombstones).values(uri=unknown["id"], deleted_at=utcnow()))
        # A later Delete does not take over a row whose actor is unknown.
        await record_tombstone(conn, services.db, unknown["id"], actor_uri=mastodon.actor_uri("zed"))
    outcomes = [
        await take_post(services, note, activity=mastodon.create("alice", note), budget=Budget())
        for note in (by_zed, by_alice, unknown)
    ]
    assert outcomes == ["accepted", "ignored: deleted", "ignored: deleted"]
