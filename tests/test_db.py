import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from server.db import Database, driver_url
from server.errors import ConfigError
from server.instance import ensure_instance
from server.tables import inbox_items, local_actors, metadata
from server.types import utcnow


def test_driver_urls():
    assert driver_url("sqlite:///kith.db") == "sqlite+aiosqlite:///kith.db"
    assert driver_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert driver_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    with pytest.raises(ConfigError):
        driver_url("mysql://x")


async def test_migrated_schema_matches_tables(db):
    def diff(sync_conn):
        return compare_metadata(MigrationContext.configure(sync_conn), metadata)

    async with db.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []
    assert await db.migrate() == []  # idempotent


async def test_datetimes_come_back_aware_utc(db):
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with db.transaction() as conn:
        await conn.execute(
            sa.insert(inbox_items).values(
                activity_uri="https://a.example/1",
                actor_uri="https://a.example/u",
                body="{}",
                next_attempt_at=when,
                created_at=when,
            )
        )
    async with db.read() as conn:
        got = (await conn.execute(sa.select(inbox_items.c.next_attempt_at))).scalar_one()
    assert got == when and got.tzinfo is not None


async def _queue(db, n, now):
    async with db.transaction() as conn:
        for i in range(n):
            await conn.execute(
                sa.insert(inbox_items).values(
                    activity_uri=f"https://a.example/{i}",
                    actor_uri="https://a.example/u",
                    body="{}",
                    next_attempt_at=now - timedelta(seconds=n - i),
                    created_at=now,
                )
            )


async def test_claim_due_leases_and_releases(db):
    now = utcnow()
    await _queue(db, 5, now)
    first = await db.claim_due(inbox_items, now=now, limit=3, lease=timedelta(minutes=1))
    assert [r.activity_uri for r in first] == ["https://a.example/0", "https://a.example/1", "https://a.example/2"]
    assert all(r.attempts == 1 for r in first)
    second = await db.claim_due(inbox_items, now=now, limit=10, lease=timedelta(minutes=1))
    assert [r.activity_uri for r in second] == ["https://a.example/3", "https://a.example/4"]
    assert await db.claim_due(inbox_items, now=now, limit=10, lease=timedelta(minutes=1)) == []
    # A crashed worker's lease runs out and the rows come back, nothing lost.
    later = now + timedelta(minutes=2)
    again = await db.claim_due(inbox_items, now=later, limit=10, lease=timedelta(minutes=1))
    assert len(again) == 5 and all(r.attempts == 2 for r in again)


async def test_insert_ignore_is_idempotent(db):
    now = utcnow()
    stmt = db.insert_ignore(inbox_items, ["activity_uri"]).values(
        activity_uri="https://a.example/x", actor_uri="u", body="{}", next_attempt_at=now, created_at=now
    )
    async with db.transaction() as conn:
        first = await conn.execute(stmt)
        second = await conn.execute(stmt)
    assert (first.rowcount, second.rowcount) == (1, 0)


async def test_transaction_rolls_back_on_error(db):
    now = utcnow()
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute(
                sa.insert(inbox_items).values(
                    activity_uri="https://a.example/r", actor_uri="u", body="{}", next_attempt_at=now, created_at=now
                )
            )
            raise RuntimeError("boom")
    async with db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(inbox_items))).scalar_one() == 0


async def test_check_reports_unreachable_database():
    bad = Database("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ConfigError, match="cannot connect"):
        await bad.check()
    await bad.dispose()


async def test_raw_pool_is_postgresql_only_shared_and_closed_on_dispose(settings):
    import asyncio

    db = Database(settings.database_url)
    try:
        if db.dialect != "postgresql":
            assert await db.raw_pool() is None
            return
        # Concurrent first uses make one pool, not one each.
        pools = await asyncio.gather(*(db.raw_pool() for _ in range(5)))
        assert all(p is pools[0] for p in pools) and pools[0] is not None
        assert await pools[0].fetchval("SELECT 1") == 1
    finally:
        await db.dispose()
    assert pools[0].is_closing()
    # A disposed database makes a fresh pool if used again.
    again = await db.raw_pool()
    try:
        assert again is not pools[0] and await again.fetchval("SELECT 2") == 2
    finally:
        await db.dispose()


async def test_raw_pool_sees_what_sqlalchemy_wrote_and_the_other_way(db):
    pool = await db.raw_pool()
    if db.is_sqlite:  # SQLite has no raw pool: its callers keep to SQLAlchemy
        assert pool is None
        return
    assert pool is not None
    now = utcnow()
    async with db.transaction() as conn:
        await conn.execute(
            sa.insert(inbox_items).values(
                activity_uri="https://a.example/s", actor_uri="u", body="{}", next_attempt_at=now, created_at=now
            )
        )
    assert await pool.fetchval("SELECT count(*) FROM inbox_items") == 1
    await pool.execute(
        "INSERT INTO inbox_items (activity_uri, actor_uri, body, next_attempt_at, created_at)"
        " VALUES ($1, $2, $3, $4, $4)",
        "https://a.example/r",
        "u",
        "{}",
        now,
    )
    async with db.read() as conn:
        row = (
            await conn.execute(sa.select(inbox_items).where(inbox_items.c.activity_uri == "https://a.example/r"))
        ).one()
    assert row.state == "queued" and row.next_attempt_at == now


async def test_processes_starting_together_share_one_instance_actor(settings, db):
    """Workers started at once on a fresh database race to create the instance actor; all get the one."""
    others = [Database(settings.database_url) for _ in range(3)]
    try:
        found = await asyncio.gather(*(ensure_instance(d) for d in [db, *others]))
    finally:
        for other in others:
            await other.dispose()
    assert len({i.actor_id for i in found}) == 1 and len({i.secret_key for i in found}) == 1
    async with db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(local_actors))).scalar_one() == 1


def _no_busy_wait(db: Database) -> None:
    """Make SQLite answer "database is locked" at once instead of sleeping in its busy handler."""

    @sa.event.listens_for(db.engine.sync_engine, "connect")
    def impatient(dbapi_conn, _record):  # runs after Kith's own pragmas (registered later)
        dbapi_conn.execute("PRAGMA busy_timeout=0")


async def test_sqlite_writers_of_one_process_take_turns_without_the_busy_handler(tmp_path):
    """Twenty writers at once, SQLite's busy handler off: each still commits, because they queue
    in the process (without that turn, all but one failed with "database is locked")."""
    db = Database(f"sqlite:///{tmp_path}/turns.db")
    try:
        await db.migrate()
        _no_busy_wait(db)

        async def write(i: int) -> None:
            async with db.transaction() as conn:
                await conn.execute(sa.insert(local_actors).values(**_actor(f"writer{i}")))
                await asyncio.sleep(0.005)  # hold the write lock across an await, as real work does

        await asyncio.gather(*(write(i) for i in range(20)))
        async with db.read() as conn:
            names = (await conn.execute(sa.select(local_actors.c.name))).scalars().all()
        assert sorted(names) == sorted(f"writer{i}" for i in range(20))
    finally:
        await db.dispose()


async def test_a_sqlite_writer_that_never_gets_its_turn_fails_like_sqlite(tmp_path, monkeypatch):
    monkeypatch.setattr("server.db.SQLITE_WRITE_WAIT", 0.2)
    db = Database(f"sqlite:///{tmp_path}/turns.db")
    try:
        await db.migrate()
        async with db.transaction():
            with pytest.raises(sa.exc.OperationalError, match="database is locked"):
                async with db.transaction():
                    pass
        async with db.transaction() as conn:  # the turn came back: writing works again
            await conn.execute(sa.insert(local_actors).values(**_actor("after")))
    finally:
        await db.dispose()


def _actor(name: str) -> dict:
    return {"name": name, "kind": "group", "private_key_pem": "x", "public_key_pem": "y", "created_at": utcnow()}
