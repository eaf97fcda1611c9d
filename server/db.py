"""The only module that touches the database engine.

SQLAlchemy 2's own asyncio layer (AsyncEngine over asyncpg or aiosqlite) stands
where the design card named the ``databases`` package: that package has had no
release since March 2024 and its repository is archived, and it was a thin wrapper
over this same layer.

SQLite is the embedded default. It allows one writer at a time, so write
transactions start with ``BEGIN IMMEDIATE``: a writer waits for the lock up front
(``busy_timeout``) instead of failing half-way when a read lock cannot be upgraded.
Within one process the writers also queue on an ``asyncio.Lock`` before they begin:
SQLite's busy handler waits by sleeping (1, 2, 5 ... up to 100 ms between tries), so
writers of one process left to it slept through most of the time the lock was free
(the worker's batches on SQLite spent ~45 % of their wall time asleep). The busy
handler is left to what other processes hold.

On PostgreSQL the inbox's two hot statements (store an activity, look up a key on a
cache miss) may bypass SQLAlchemy through :meth:`Database.raw_pool`, a plain asyncpg
pool: around a single autocommit statement SQLAlchemy's checkout, reset, BEGIN/COMMIT
and statement caching cost several times the statement itself (see bench/README.md).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from server.errors import ConfigError
from server.group_commit import GroupCommit, Write
from server.settings import validate_database_url
from server.tables import metadata

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every Kith process.
_MIGRATION_LOCK = 7_114_851
_RAW_POOL_CLOSE_SECONDS = 10.0
# The connection of the batch (``Database.batch``) the running task works in, if any.
_BATCH: ContextVar[AsyncConnection | None] = ContextVar("kith_batch", default=None)
Item = TypeVar("Item")
Result = TypeVar("Result")


def driver_url(url: str) -> str:
    """Map the user-facing URL (``sqlite:///x.db``, ``postgresql://...``) to its async driver."""
    validate_database_url(url)
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    return url


SQLITE_WRITE_WAIT = 30.0  # seconds a writer waits for its turn, as long as ``busy_timeout`` below


class Database:
    """An engine plus the few ways Kith uses it: read, transaction, migrate, claim."""

    def __init__(self, url: str, *, pool_size: int = 20, raw_pool_size: int = 20, echo: bool = False) -> None:
        self.url = driver_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            path = parsed.database or ""
            if path and path != ":memory:":
                Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(
                self.url, echo=echo, connect_args={"timeout": 30}, pool_size=pool_size, max_overflow=0
            )
            _sqlite_pragmas(self.engine)
        else:
            self.engine = create_async_engine(
                self.url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False
            )
        self._read_engine = self.engine.execution_options(kith_read_only=True)
        # 20 as in the bare endpoint of bench.inbox: with 10, commits queued for a
        # connection and the inbox's p99 under 50 requests in flight was ~1.4 times worse.
        self._raw_pool_size = raw_pool_size
        self._raw_pool: asyncpg.Pool | None = None
        self._raw_pool_lock = asyncio.Lock()
        self._group_commits: dict[str, GroupCommit[AsyncConnection, Any, Any]] = {}
        # SQLite: this process's writers take turns here rather than in the busy handler's sleeps.
        self._writer = asyncio.Lock() if self.dialect == "sqlite" else None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    async def check(self) -> None:
        """Connect once, so a bad URL or a down server fails at start with a clear message."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            raise ConfigError(f"cannot connect to the database {self.safe_url}: {_first_line(exc)}") from None

    async def server_version(self) -> str:
        """The database software's version, as the admin dashboard shows it (``3.45.1``, ``16.4``)."""
        query = "SELECT sqlite_version()" if self.is_sqlite else "SHOW server_version"
        async with self.read() as conn:
            value = str((await conn.execute(sa.text(query))).scalar_one())
        return value.split()[0] if value else value

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on success, rolled back on any exception.

        Inside :meth:`batch` it is the batch's connection instead (see there).
        """
        shared = _BATCH.get()
        if shared is not None:
            yield shared
            return
        async with self._turn(), self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """On SQLite, this process's turn to write (see the module's docstring); at once elsewhere.

        Waits as long as ``busy_timeout`` would, then fails as SQLite would: a writer that
        never gets its turn is an error, not a hang.
        """
        if self._writer is None:
            yield
            return
        try:
            async with asyncio.timeout(SQLITE_WRITE_WAIT):
                await self._writer.acquire()
        except TimeoutError:
            raise sa.exc.OperationalError(
                "BEGIN IMMEDIATE", None, Exception(f"database is locked: no turn to write in {SQLITE_WRITE_WAIT:.0f} s")
            ) from None
        try:
            yield
        finally:
            self._writer.release()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only unit of work (on SQLite a deferred transaction, so readers never queue).

        Inside :meth:`batch` it is the batch's connection, which sees the batch's own writes.
        """
        shared = _BATCH.get()
        if shared is not None:
            yield shared
            return
        async with self._read_engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction that every :meth:`transaction` and :meth:`read` of this task joins.

        The worker runs several jobs in one (``server.worker``), each in a savepoint of its
        own (``conn.begin_nested()``), so many small units of work share one commit and one
        connection. The contract for code run inside: a failure must propagate out of the
        job (the job's savepoint is then rolled back whole; an inner ``transaction()`` has
        no savepoint of its own), and nothing may wait on the network while the
        transaction is open (``in_batch()`` tells; ``server.queue.Deferred`` leaves the batch).
        Tasks started inside inherit the batch: start none.
        """
        async with self._turn(), self.engine.begin() as conn:
            token = _BATCH.set(conn)
            try:
                yield conn
            finally:
                _BATCH.reset(token)

    async def raw_pool(self) -> asyncpg.Pool | None:
        """A plain asyncpg pool on the same database, for hot single statements; None on SQLite.

        Created on first use (most processes never need it). Each statement run on it
        is its own transaction (autocommit). Callers must leave no session state behind
        (no SET, LISTEN, advisory locks, cursors): released connections skip asyncpg's
        reset query (see ``_keep_session``). Everything else keeps to
        :meth:`transaction` and :meth:`read`.
        """
        if self.dialect != "postgresql":
            return None
        if self._raw_pool is None:
            async with self._raw_pool_lock:
                # Checked again: another task may have created it while this one waited.
                if self._raw_pool is None:
                    self._raw_pool = await asyncpg.create_pool(
                        self.libpq_url(), min_size=1, max_size=self._raw_pool_size, reset=_keep_session
                    )
        return self._raw_pool

    def group_commit(
        self, name: str, write: Write[AsyncConnection, Item, Result], *, max_batch: int = 200
    ) -> GroupCommit[AsyncConnection, Item, Result]:
        """This database's one group-commit writer called ``name``, made on first use.

        Each batch is one :meth:`transaction` (``BEGIN IMMEDIATE`` on SQLite); see
        ``server/group_commit.py``. Stopped by :meth:`dispose`, after what is queued commits.
        """
        committer = self._group_commits.get(name)
        if committer is None:
            committer = GroupCommit(self.transaction, write, max_batch=max_batch, name=name)
            self._group_commits[name] = committer
        return committer

    def libpq_url(self) -> str:
        """The URL as asyncpg reads it: ``postgresql://`` without SQLAlchemy's driver suffix."""
        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def dispose(self) -> None:
        """Close every connection: the group-commit writers (after their queues commit), the engine's pool
        and the raw pool, if one was made."""
        committers, self._group_commits = list(self._group_commits.values()), {}
        for committer in committers:
            await committer.close()
        pool, self._raw_pool = self._raw_pool, None
        if pool is not None:
            try:
                # close() waits for every borrowed connection to come back; a statement
                # stuck on a dead server must not hang shutdown (the engine does not wait).
                async with asyncio.timeout(_RAW_POOL_CLOSE_SECONDS):
                    await pool.close()
            except TimeoutError:
                pool.terminate()
        await self.engine.dispose()

    def insert_ignore(self, table: sa.Table, index_elements: Sequence[str]) -> Any:
        """``INSERT ... ON CONFLICT DO NOTHING`` for this dialect (idempotent stores)."""
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        return dialect_insert(table).on_conflict_do_nothing(index_elements=list(index_elements))

    async def claim_due(
        self, table: sa.Table, *, now: datetime, limit: int, lease: timedelta, where: Any = None
    ) -> list[sa.Row]:
        """Lease up to ``limit`` due rows of a queue table and return them.

        A row is due when queued, its ``next_attempt_at`` has passed and no live
        lease holds it. The lease makes a crash harmless: a worker killed mid-job
        simply lets the lease run out and another worker claims the row again. On
        PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets many workers claim side by side
        without ever taking the same row; on SQLite ``BEGIN IMMEDIATE`` serialises
        claims, which gives the same guarantee.
        """
        due = sa.and_(
            table.c.state == "queued",
            table.c.next_attempt_at <= now,
            sa.or_(table.c.lease_until.is_(None), table.c.lease_until < now),
        )
        if where is not None:
            due = sa.and_(due, where)
        ids = (
            sa.select(table.c.id)
            .where(due)
            .order_by(table.c.next_attempt_at, table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            sa.update(table)
            .where(table.c.id.in_(ids.scalar_subquery()))
            .values(lease_until=now + lease, attempts=table.c.attempts + 1)
            .returning(*table.c)
        )
        async with self.transaction() as conn:
            rows = (await conn.execute(stmt)).all()
        return sorted(rows, key=lambda r: (r.next_attempt_at, r.id))

    async def schema_revisions(self) -> tuple[str | None, str]:
        """(the database's Alembic revision, the code's head revision): equal when the schema is current."""
        from alembic.runtime.migration import MigrationContext

        def current(sync_conn: sa.Connection) -> str | None:
            return MigrationContext.configure(sync_conn).get_current_revision()

        async with self.engine.connect() as conn:
            return await conn.run_sync(current), head_revision()

    async def migrate(self) -> list[str]:
        """Apply Alembic migrations up to head; idempotent. Returns the revisions applied."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))

        def current(sync_conn: sa.Connection) -> str | None:
            return MigrationContext.configure(sync_conn).get_current_revision()

        def upgrade(sync_conn: sa.Connection) -> None:
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")

        async with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                # Several processes may start at once; one migrates, the others wait.
                await conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
                await conn.commit()
            try:
                before = await conn.run_sync(current)
                await conn.run_sync(upgrade)
                await conn.commit()
                after = await conn.run_sync(current)
            finally:
                if self.dialect == "postgresql":
                    # A failed migration leaves the transaction aborted: end it first, or the
                    # unlock fails too and hides the migration's own error.
                    await conn.rollback()
                    await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                    await conn.commit()
        return [] if before == after else [str(after)]


@functools.cache
def _scripts() -> Any:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg)


def head_revision() -> str:
    """The newest migration this code ships (read once from ``migrations/versions``)."""
    head = _scripts().get_current_head()
    assert head is not None
    return head


def known_revisions() -> frozenset[str]:
    """Every migration this code ships."""
    return frozenset(script.revision for script in _scripts().walk_revisions())


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The raw pool's reset on release: nothing beyond asyncpg's own cleanup.

    asyncpg always rolls back an open transaction and drops listeners first; its
    default reset then sends ``RESET ALL; UNLISTEN *; CLOSE ALL`` and an advisory unlock,
    a round trip per release that doubles the cost of the one-statement uses this pool
    is for, which change no session state.
    """
    return None


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the driver so "begin" below decides.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_WRITE_WAIT * 1000:.0f}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get("kith_read_only"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def in_batch() -> bool:
    """Whether the running task works inside a ``Database.batch`` (so must not wait on the network)."""
    return _BATCH.get() is not None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


__all__ = ["Database", "driver_url", "in_batch", "metadata"]


def upsert(
    dialect: str,
    table: sa.Table,
    index_elements: Sequence[str],
    values: dict[str, Any],
    update: dict[str, Any],
    *,
    where: sa.ColumnElement[bool] | None = None,
) -> Any:
    """``INSERT ... ON CONFLICT (...) DO UPDATE`` for either dialect; ``where``: update only the rows it holds for."""
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = dialect_insert(table).values(**values)
    return stmt.on_conflict_do_update(index_elements=list(index_elements), set_=update, where=where)
