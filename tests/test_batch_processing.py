"""The worker runs many Creates in one transaction, each in a savepoint: one bad item fails alone.

The poison is a database trigger that refuses one post's Announces: it fires after that
Create's post row was written, so its savepoint must take the post back with it.
"""

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import event

from server.groups.membership import get_group
from server.inbox.store import store_activity
from server.jobs import build_worker
from server.tables import fanouts, inbox_items, outbound_activities, posts
from server.types import utcnow

GROUP = "https://kith.test/groups/bookclub"

_PG_POISON = [
    "CREATE FUNCTION kith_test_poison() RETURNS trigger AS $$ BEGIN "
    "IF NEW.body LIKE '%poisoned words%' THEN RAISE EXCEPTION 'poisoned Announce'; END IF; RETURN NEW; END $$ "
    "LANGUAGE plpgsql",
    "CREATE TRIGGER kith_test_poison BEFORE INSERT ON outbound_activities FOR EACH ROW "
    "EXECUTE FUNCTION kith_test_poison()",
]
_PG_CURE = [
    "DROP TRIGGER IF EXISTS kith_test_poison ON outbound_activities",
    "DROP FUNCTION IF EXISTS kith_test_poison",
]
_SQLITE_POISON = [
    "CREATE TRIGGER kith_test_poison BEFORE INSERT ON outbound_activities "
    "WHEN NEW.body LIKE '%poisoned words%' BEGIN SELECT RAISE(ABORT, 'poisoned Announce'); END"
]
_SQLITE_CURE = ["DROP TRIGGER IF EXISTS kith_test_poison"]


async def _run_sql(services, statements):
    async with services.db.transaction() as conn:
        for statement in statements:
            await conn.execute(sa.text(statement))


async def _queue(services, server, name, content, group_id, *, by_reference=False):
    note = server.note(name, content, to_group=GROUP)
    create = server.create(name, note)
    if by_reference:
        create["object"] = note["id"]  # the worker must fetch it: not inside a shared transaction
    assert await store_activity(services.db, create, actor=create["actor"], group_id=group_id)
    return note["id"]


async def _items(services):
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(inbox_items).order_by(inbox_items.c.id))).all()


async def _post_uris(services):
    async with services.db.read() as conn:
        return set((await conn.execute(sa.select(posts.c.uri))).scalars().all())


async def test_a_poisoned_create_fails_alone_and_nothing_is_lost(services, world, mastodon, social):
    sqlite = services.db.is_sqlite
    await _run_sql(services, _SQLITE_POISON if sqlite else _PG_POISON)
    try:
        async with services.db.read() as conn:
            group = await get_group(conn, "bookclub")
        good = [
            await _queue(services, mastodon, "alice", "<p>first</p>", group.id),
            await _queue(services, social, "bob", "<p>from bob</p>", group.id),
        ]
        bad = await _queue(services, mastodon, "alice", "<p>poisoned words</p>", group.id)
        good += [
            await _queue(services, mastodon, "alice", "<p>after the poison, same author</p>", group.id),
            await _queue(services, social, "bob", "<p>by reference</p>", group.id, by_reference=True),
        ]
        worker = build_worker(services)
        inbox = next(k for k in worker.kinds if k.name == "inbox")
        begins = [0]

        def on_begin(*_):
            begins[0] += 1

        engine = services.db.engine.sync_engine
        event.listen(engine, "begin", on_begin)
        try:
            assert await worker.run_batch(inbox) == 5
        finally:
            event.remove(engine, "begin", on_begin)
        # The claim; the four embedded Creates in one shared transaction, which the poison
        # rolls back, then again with a savepoint each; the by-reference one on its own
        # (its fetch outside any transaction, then its own); the outcomes. One at a time: 8.
        assert begins[0] <= 6
        assert await _post_uris(services) == set(good)
        items = {i.activity_uri: i for i in await _items(services)}
        assert {uri: items[f"{uri}/activity"].state for uri in [*good, bad]} == {
            uri: ("queued" if uri == bad else "done") for uri in [*good, bad]
        }
        poisoned = items[f"{bad}/activity"]
        assert poisoned.attempts == 1 and "poisoned Announce" in poisoned.last_error
        async with services.db.read() as conn:
            # Nothing of the poisoned Create stayed: its post row went with its savepoint.
            assert (await conn.execute(sa.select(sa.func.count()).select_from(fanouts))).scalar_one() == 4
            assert (await conn.execute(sa.select(sa.func.count()).select_from(outbound_activities))).scalar_one() >= 8
    finally:
        await _run_sql(services, _SQLITE_CURE if sqlite else _PG_CURE)
    # Retried when due, as any failed item is: nothing was lost.
    async with services.db.transaction() as conn:
        await conn.execute(sa.update(inbox_items).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    await build_worker(services).run_batch(inbox)
    assert await _post_uris(services) == {*good, bad}
    assert {i.state for i in await _items(services)} == {"done"}
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(fanouts))).scalar_one() == 5


async def test_a_create_that_keeps_failing_dies_as_before(services, world, mastodon):
    sqlite = services.db.is_sqlite
    await _run_sql(services, _SQLITE_POISON if sqlite else _PG_POISON)
    try:
        async with services.db.read() as conn:
            group = await get_group(conn, "bookclub")
        bad = await _queue(services, mastodon, "alice", "<p>poisoned words</p>", group.id)
        ok = await _queue(services, mastodon, "alice", "<p>fine</p>", group.id)
        async with services.db.transaction() as conn:
            await conn.execute(sa.update(inbox_items).values(attempts=7))  # the last of its 8 tries
        worker = build_worker(services)
        await worker.run_batch(next(k for k in worker.kinds if k.name == "inbox"))
    finally:
        await _run_sql(services, _SQLITE_CURE if sqlite else _PG_CURE)
    items = {i.activity_uri: i for i in await _items(services)}
    assert items[f"{bad}/activity"].state == "dead" and items[f"{ok}/activity"].state == "done"
    assert await _post_uris(services) == {ok}
