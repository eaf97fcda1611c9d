"""Group commit: each caller hears its own result only after the transaction holding its item committed.

The generic writer (``server/group_commit.py``) runs on both databases; the inbox's
batched insert (``inbox/store.insert_batch``) is SQLite's path, PostgreSQL's inbox
keeps its one-statement raw insert (tested at the HTTP level on both).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from server.db import Database
from server.errors import ServiceUnavailable
from server.groups.membership import GroupSpec, create_group
from server.inbox.store import MAX_BATCH, insert_batch, store_activity
from server.tables import inbox_items
from server.types import utcnow

GROUP = "https://kith.test/groups/bookclub"
SHARED = "https://kith.test/inbox"


def _row(n: int | str, group_id: int | None = None) -> dict[str, Any]:
    now = utcnow()
    uri = f"https://mastodon.example/a/{n}"
    return {
        "activity_uri": uri,
        "actor_uri": "https://mastodon.example/users/alice",
        "group_id": group_id,
        "body": json.dumps({"id": uri, "type": "Like", "actor": "https://mastodon.example/users/alice"}),
        "next_attempt_at": now,
        "created_at": now,
    }


async def _core_write(conn: Any, rows: list[dict[str, Any]]) -> list[bool | BaseException]:
    """A dialect-neutral write for the generic tests: one INSERT per row, duplicates reported."""
    results: list[bool | BaseException] = []
    for row in rows:
        exists = (
            await conn.execute(sa.select(inbox_items.c.id).where(inbox_items.c.activity_uri == row["activity_uri"]))
        ).first()
        if exists:
            results.append(False)
        else:
            await conn.execute(sa.insert(inbox_items).values(**row))
            results.append(True)
    return results


async def _uris(url: str, reader: Database | None = None) -> list[str]:
    """The stored activity ids, read through an engine of its own (nothing shared with the writer)."""
    fresh = reader or Database(url, pool_size=2)
    try:
        async with fresh.read() as conn:
            return sorted((await conn.execute(sa.select(inbox_items.c.activity_uri))).scalars())
    finally:
        if reader is None:
            await fresh.dispose()


async def test_answer_comes_after_commit_and_a_fresh_connection_sees_the_row(db, settings):
    committed: list[str] = []

    @asynccontextmanager
    async def transaction():
        async with db.transaction() as conn:
            yield conn
        committed.append("commit returned")

    from server.group_commit import GroupCommit

    writer = GroupCommit(transaction, _core_write)
    seen_at_answer: list[tuple[list[str], list[str]]] = []

    async def one(n: int) -> None:
        assert await writer.submit(_row(n)) is True
        # The moment this caller hears "stored": committed, and visible to anyone.
        seen_at_answer.append((list(committed), await _uris(settings.database_url)))

    try:
        await asyncio.gather(*(one(n) for n in range(5)))
    finally:
        await writer.close()
    assert writer.batches == 1 and writer.largest == 5  # all five were waiting at once: one transaction
    for commits, uris in seen_at_answer:
        assert commits == ["commit returned"]
        assert uris == sorted(f"https://mastodon.example/a/{n}" for n in range(5))


async def test_a_failed_transaction_fails_every_caller_and_stores_none(db, settings):
    async def write_then_fail(conn: Any, rows: list[dict[str, Any]]) -> list[bool | BaseException]:
        await _core_write(conn, rows)
        raise RuntimeError("disk full")  # after the inserts: the whole batch must roll back

    writer = db.group_commit("failing", write_then_fail)
    results = await asyncio.gather(*(writer.submit(_row(n)) for n in range(4)), return_exceptions=True)
    assert all(isinstance(r, ServiceUnavailable) and r.status == 503 for r in results), results
    assert await _uris(settings.database_url) == []
    # The writer lives on: the next batch commits.
    healthy = db.group_commit("healthy", _core_write)
    assert await healthy.submit(_row("after")) is True
    assert await _uris(settings.database_url) == ["https://mastodon.example/a/after"]


async def test_close_commits_what_is_queued_then_refuses(db, settings):
    writer = db.group_commit("closing", _core_write)
    pending = [asyncio.create_task(writer.submit(_row(n))) for n in range(3)]
    await asyncio.sleep(0)
    await db.dispose()  # closes the writer: the queued three commit first
    assert [await p for p in pending] == [True, True, True]
    assert len(await _uris(settings.database_url)) == 3
    with pytest.raises(ServiceUnavailable):
        await writer.submit(_row("late"))


async def test_a_caller_that_goes_away_before_its_batch_is_skipped(db, settings):
    writer = db.group_commit("cancel", _core_write)
    gone = asyncio.create_task(writer.submit(_row("gone")))
    kept = asyncio.create_task(writer.submit(_row("kept")))
    await asyncio.sleep(0)  # both queued, the writer not yet run
    gone.cancel()
    assert await kept is True
    assert await _uris(settings.database_url) == ["https://mastodon.example/a/kept"]


# -- the inbox's batch on SQLite ------------------------------------------------------------


@pytest.fixture
def sqlite_db(db):
    if not db.is_sqlite:
        pytest.skip("the batched insert is SQLite's inbox path; PostgreSQL's is one raw statement")
    return db


async def test_a_duplicate_in_a_batch_is_answered_duplicate_and_the_rest_stored(sqlite_db, settings):
    await store_activity(
        sqlite_db, {"id": "https://mastodon.example/a/old"}, actor="https://mastodon.example/u/a", group_id=None
    )
    ids = ["new1", "old", "new2", "new1", "new3"]
    results = await asyncio.gather(
        *(
            store_activity(
                sqlite_db,
                {"id": f"https://mastodon.example/a/{i}"},
                actor="https://mastodon.example/u/a",
                group_id=None,
            )
            for i in ids
        )
    )
    assert results == [True, False, True, False, True]
    writer = sqlite_db.group_commit("inbox", insert_batch)
    assert writer.largest == len(ids)  # they shared one transaction
    assert await _uris(settings.database_url) == [
        f"https://mastodon.example/a/{i}" for i in ("new1", "new2", "new3", "old")
    ]


async def test_a_bad_row_fails_only_its_own_caller(sqlite_db, settings):
    group = await create_group(sqlite_db, GroupSpec(name="bookclub"))
    rows = [_row(1, group.id), _row(2, 999_999), _row(3), _row(1)]  # 999999: no such group (a foreign key)
    async with sqlite_db.transaction() as conn:
        results = await insert_batch(conn, rows)
    assert results[0] is True and results[2] is True and results[3] is False
    assert isinstance(results[1], ServiceUnavailable)
    assert await _uris(settings.database_url) == ["https://mastodon.example/a/1", "https://mastodon.example/a/3"]
    fresh = Database(settings.database_url)
    try:
        async with fresh.read() as conn:
            row = (await conn.execute(sa.select(inbox_items).where(inbox_items.c.activity_uri.endswith("/1")))).one()
    finally:
        await fresh.dispose()
    # Written as text by hand: read back as SQLAlchemy's own rows are.
    assert row.group_id == group.id and row.state == "queued" and row.attempts == 0
    assert row.created_at == rows[0]["created_at"] and row.next_attempt_at == rows[0]["created_at"]


async def test_a_commit_that_fails_fails_the_whole_batch(sqlite_db, settings):
    """A COMMIT refused by the database itself (a deferred foreign key): every caller 503, nothing stored."""

    async def deferred(conn: Any, rows: list[dict[str, Any]]) -> list[bool | BaseException]:
        await conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")  # checked at COMMIT, not per statement
        return await insert_batch(conn, rows)

    writer = sqlite_db.group_commit("deferred", deferred)
    results = await asyncio.gather(
        *(writer.submit(r) for r in [_row(1), _row(2, 999_999), _row(3)]), return_exceptions=True
    )
    assert all(isinstance(r, ServiceUnavailable) for r in results), results
    assert await _uris(settings.database_url) == []


async def test_batches_are_bounded(sqlite_db, settings):
    n = MAX_BATCH + 50
    results = await asyncio.gather(
        *(
            store_activity(
                sqlite_db,
                {"id": f"https://mastodon.example/a/{i}"},
                actor="https://mastodon.example/u/a",
                group_id=None,
            )
            for i in range(n)
        )
    )
    assert results == [True] * n
    writer = sqlite_db.group_commit("inbox", insert_batch)
    assert writer.largest == MAX_BATCH and writer.batches == 2
    assert len(await _uris(settings.database_url)) == n


# -- over HTTP, both databases ---------------------------------------------------------------


@pytest.fixture
async def group(services):
    return await create_group(services.db, GroupSpec(name="bookclub"))


async def test_concurrent_posts_are_each_stored_once_and_readable_at_their_202(
    client, services, settings, group, mastodon
):
    creates = [mastodon.create("alice", mastodon.note("alice", f"post {i}", to_group=GROUP)) for i in range(30)]
    sends = creates + creates[:10]  # ten delivered twice, at the same time, as retries arrive

    # One engine apart from the server's, of few connections: PostgreSQL's are shared with other tests.
    reader = Database(settings.database_url, pool_size=2)

    async def deliver(activity: dict[str, Any]) -> tuple[int, bool]:
        r = await mastodon.post(client, "alice", SHARED, activity)
        return r.status_code, activity["id"] in await _uris(settings.database_url, reader)

    try:
        answers = await asyncio.gather(*(deliver(a) for a in sends))
    finally:
        await reader.dispose()
    assert all(status == 202 and visible for status, visible in answers), answers
    async with services.db.read() as conn:
        uris = list((await conn.execute(sa.select(inbox_items.c.activity_uri))).scalars())
    assert sorted(uris) == sorted(a["id"] for a in creates)  # each exactly once


async def test_a_database_that_refuses_the_row_answers_503_and_stores_nothing(
    client, services, settings, group, mastodon
):
    sqlite = services.db.is_sqlite
    refuse, allow = (
        (
            "CREATE TRIGGER refuse BEFORE INSERT ON inbox_items BEGIN SELECT RAISE(ABORT, 'refused'); END",
            "DROP TRIGGER refuse",
        )
        if sqlite
        else (
            "ALTER TABLE inbox_items ADD CONSTRAINT refuse CHECK (false) NOT VALID",
            # The PostgreSQL test database outlives this test (its rows are emptied, not its schema).
            "ALTER TABLE inbox_items DROP CONSTRAINT refuse",
        )
    )
    async with services.db.transaction() as conn:
        await conn.exec_driver_sql(refuse)
    try:
        creates = [mastodon.create("alice", mastodon.note("alice", f"post {i}", to_group=GROUP)) for i in range(3)]
        answers = await asyncio.gather(*(mastodon.post(client, "alice", SHARED, a) for a in creates))
        assert [r.status_code for r in answers] == [503] * 3
        assert answers[0].headers["retry-after"] == "10" and "try again" in answers[0].json()["error"]
        assert await _uris(settings.database_url) == []
    finally:
        async with services.db.transaction() as conn:
            await conn.exec_driver_sql(allow)
    # Once the database takes rows again, the same activity is stored (a retry succeeds).
    assert (await mastodon.post(client, "alice", SHARED, creates[0])).status_code == 202
    assert await _uris(settings.database_url) == [creates[0]["id"]]
