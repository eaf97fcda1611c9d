"""Benchmark 4, reading: the group page and the outbox with 1,000,000 stored posts.

``python -m bench.reading [--posts 1000000] [--requests 500] [--database postgres|sqlite]``

A group holds 1,000,000 posts (threads of one post and three replies, from 1,000
authors) and one Announce in its outbox per post, loaded straight into PostgreSQL.
Kith runs as its own process (``python -m server serve --no-worker``); this process
asks for each page one request at a time and reports p50/p99. Pages with a target:
the group page (HTML), the outbox's first page and a deep outbox page (``max_id`` near
the oldest post). Reported beside them: a deep group page (``before`` cursor near the
oldest thread) and the outbox collection itself (its ``totalItems``: the total the worker
keeps, settled once after loading as the worker would, plus the rows after it; the bare
cost beside it is still the count of every row), then once more with every tenth Announce
tombstoned.

Bare cost: the queries each page cannot do without (for the group page: its threads,
their replies, the pinned threads), run directly with asyncpg (on SQLite: the same
queries on one aiosqlite connection, Kith's driver, with its pragmas).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench import common
from bench.common import LOOPBACK, ms
from bench.world import GROUP, actor_on, insert_actors, insert_members, make_group

DB_NAME = "kith_bench_reading"
TARGET_P99 = 0.025
AUTHORS = 1000
START = datetime(2026, 1, 1, tzinfo=UTC)

LOAD_POSTS = """
INSERT INTO posts (id, uri, group_id, author_id, author_uri, type, in_reply_to, parent_id, root_id, content_html,
                   raw, published, last_activity_at, created_at, replies, state)
SELECT i,
       $3 || (i % 1000) || '/statuses/' || i,
       $1,
       ($2::int[])[1 + i % 1000],
       $3 || (i % 1000),
       'Note',
       CASE WHEN i % 4 = 1 THEN NULL ELSE $3 || ((i - (i - 1) % 4) % 1000) || '/statuses/' || (i - (i - 1) % 4) END,
       CASE WHEN i % 4 = 1 THEN NULL ELSE i - (i - 1) % 4 END,
       CASE WHEN i % 4 = 1 THEN NULL ELSE i - (i - 1) % 4 END,
       '<p>Post number ' || i || ': ' || repeat('a few words of a reply or a thread, ', 8) || '</p>',
       '{"id":"' || $3 || (i % 1000) || '/statuses/' || i || '","type":"Note","content":"'
           || repeat('a few words of a reply or a thread, ', 12) || '"}',
       $4::timestamptz + i * interval '1 second',
       $4::timestamptz + (CASE WHEN i % 4 = 1 THEN i + 3 ELSE i END) * interval '1 second',
       $4::timestamptz + i * interval '1 second',
       CASE WHEN i % 4 = 1 THEN 3 ELSE 0 END,
       'visible'
FROM generate_series(1, $5::int) AS i
"""

LOAD_ANNOUNCES = """
INSERT INTO outbound_activities (id, uri, actor_id, type, public, body, post_id, created_at)
SELECT i, $2 || '/activities/' || i, $1, 'Announce', true,
       '{"@context":"https://www.w3.org/ns/activitystreams","id":"' || $2 || '/activities/' || i
           || '","type":"Announce","actor":"' || $2 || '/groups/bench","object":{"id":"' || $3 || (i % 1000)
           || '/statuses/' || i || '/activity","type":"Create","actor":"' || $3 || (i % 1000)
           || '","object":{"id":"' || $3 || (i % 1000) || '/statuses/' || i || '","type":"Note","content":"'
           || repeat('a few words of a reply or a thread, ', 8)
           || '"}},"to":["https://www.w3.org/ns/activitystreams#Public"],"cc":["' || $2
           || '/groups/bench/followers"]}',
       i, $4::timestamptz + i * interval '1 second'
FROM generate_series(1, $5::int) AS i
"""

BARE_THREADS = """
SELECT posts.*, ra.preferred_username, ra.domain AS author_domain, ra.name AS author_name
FROM posts LEFT OUTER JOIN remote_actors ra ON ra.id = posts.author_id
WHERE posts.group_id = $1 AND posts.root_id IS NULL AND posts.state = 'visible'
  AND (posts.last_activity_at, posts.id) < ($2, $3)
ORDER BY posts.last_activity_at DESC, posts.id DESC LIMIT 21
"""
BARE_REPLIES = """
SELECT posts.*, ra.preferred_username, ra.domain AS author_domain, ra.name AS author_name
FROM posts LEFT OUTER JOIN remote_actors ra ON ra.id = posts.author_id
WHERE posts.root_id = ANY($1::int[]) ORDER BY posts.published, posts.id
"""
BARE_PINNED = """
SELECT posts.*, ra.preferred_username, ra.domain AS author_domain, ra.name AS author_name
FROM posts LEFT OUTER JOIN remote_actors ra ON ra.id = posts.author_id
WHERE posts.group_id = $1 AND posts.pinned_at IS NOT NULL AND posts.state = 'visible' ORDER BY posts.pinned_at DESC
"""
BARE_OUTBOX = """
SELECT id, body FROM outbound_activities
WHERE actor_id = $1 AND type = 'Announce' AND public = true AND deleted_at IS NULL AND id < $2
ORDER BY id DESC LIMIT 21
"""
BARE_COUNT = """
SELECT count(*) FROM outbound_activities
WHERE actor_id = $1 AND type IN ('Announce', 'Create') AND public = true AND deleted_at IS NULL AND hidden = false
"""


# The same rows for SQLite: a recursive count for generate_series, text times as SQLAlchemy
# stores them (naive UTC, six decimals), and hex(zeroblob(n)) with replace for repeat().
SQLITE_SERIES = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?5) "
SQLITE_AT = "strftime('%Y-%m-%d %H:%M:%S', ?4, '+' || ({}) || ' seconds') || '.000000'"
SQLITE_WORDS = "replace(hex(zeroblob({})), '00', 'a few words of a reply or a thread, ')"
SQLITE_LOAD_POSTS = (
    SQLITE_SERIES
    + """
INSERT INTO posts (id, uri, group_id, author_id, author_uri, type, in_reply_to, parent_id, root_id, content_html,
                   raw, published, last_activity_at, created_at, replies, state, sensitive, likes, dislikes, locked)
SELECT i,
       ?3 || (i % 1000) || '/statuses/' || i,
       ?1,
       json_extract(?2, '$[' || (i % 1000) || ']'),
       ?3 || (i % 1000),
       'Note',
       CASE WHEN i % 4 = 1 THEN NULL ELSE ?3 || ((i - (i - 1) % 4) % 1000) || '/statuses/' || (i - (i - 1) % 4) END,
       CASE WHEN i % 4 = 1 THEN NULL ELSE i - (i - 1) % 4 END,
       CASE WHEN i % 4 = 1 THEN NULL ELSE i - (i - 1) % 4 END,
       '<p>Post number ' || i || ': ' || """
    + SQLITE_WORDS.format(8)
    + """ || '</p>',
       '{"id":"' || ?3 || (i % 1000) || '/statuses/' || i || '","type":"Note","content":"' || """
    + SQLITE_WORDS.format(12)
    + """ || '"}',
       """
    + SQLITE_AT.format("i")
    + ", "
    + SQLITE_AT.format("CASE WHEN i % 4 = 1 THEN i + 3 ELSE i END")
    + ", "
    + SQLITE_AT.format("i")
    + """,
       CASE WHEN i % 4 = 1 THEN 3 ELSE 0 END,
       'visible', 0, 0, 0, 0
FROM s
"""
)
SQLITE_LOAD_ANNOUNCES = (
    SQLITE_SERIES
    + """
INSERT INTO outbound_activities (id, uri, actor_id, type, public, body, post_id, created_at, hidden)
SELECT i, ?2 || '/activities/' || i, ?1, 'Announce', 1,
       '{"@context":"https://www.w3.org/ns/activitystreams","id":"' || ?2 || '/activities/' || i
           || '","type":"Announce","actor":"' || ?2 || '/groups/bench","object":{"id":"' || ?3 || (i % 1000)
           || '/statuses/' || i || '/activity","type":"Create","actor":"' || ?3 || (i % 1000)
           || '","object":{"id":"' || ?3 || (i % 1000) || '/statuses/' || i || '","type":"Note","content":"'
           || """
    + SQLITE_WORDS.format(8)
    + """
           || '"}},"to":["https://www.w3.org/ns/activitystreams#Public"],"cc":["' || ?2
           || '/groups/bench/followers"]}',
       i, """
    + SQLITE_AT.format("i")
    + """, 0
FROM s
"""
)


async def load(url: str, group_id: int, domain: str, posts: int) -> float:
    """Fill the group with ``posts`` posts and Announces; returns seconds taken."""
    started = time.perf_counter()
    actors = [actor_on(f"127.0.5.{1 + i % 250}:10", f"user{i}", ("", "")) for i in range(AUTHORS)]
    author_base = "http://127.0.5.1:10/users/user"  # one prefix keeps the SQL simple; ids still differ
    conn = await common.connect(url)
    try:
        ids = await insert_actors(conn, actors)
        await insert_members(conn, group_id, ids)
        if isinstance(conn, common.SqliteConn):
            raw = conn.conn
            raw.execute("PRAGMA foreign_keys=OFF")  # no per-row foreign key checks while loading
            raw.execute("BEGIN")
            at = START.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S")
            raw.execute(SQLITE_LOAD_POSTS, (group_id, json.dumps(ids), author_base, at, posts))
            raw.execute(SQLITE_LOAD_ANNOUNCES, (group_id, f"http://{domain}", author_base, at, posts))
            raw.execute("COMMIT")
            # No ANALYZE: Kith never runs it on SQLite, and with its statistics SQLite reads every
            # thread root by ix_posts_root and sorts them (40 ms at 20,000 posts) instead of
            # walking ix_posts_threads (0.3 ms); without them it picks the right index.
            return time.perf_counter() - started
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET session_replication_role = replica")  # no per-row FK triggers while loading
        await conn.execute(LOAD_POSTS, group_id, ids, author_base, START, posts)
        await conn.execute(LOAD_ANNOUNCES, group_id, f"http://{domain}", author_base, START, posts)
        await conn.execute("SET session_replication_role = origin")
        for table in ("posts", "outbound_activities"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), $1)", posts)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def settle(url: str) -> tuple[int, float]:
    """The worker's first round of ``outbox_totals.settle_all`` on the loaded rows: (rows, seconds).

    The rows are dated from ``START`` (in the past), so all of them are settled: the outbox
    collection then reads the kept total and counts only the rows after it."""
    from server.db import Database
    from server.federation.outbox_totals import settle_all

    db = Database(url)
    try:
        started = time.perf_counter()
        settled = await settle_all(db)
        return settled, time.perf_counter() - started
    finally:
        await db.dispose()


async def delete_a_tenth(url: str) -> None:
    """Tombstone every tenth Announce (as a Delete would), then let PostgreSQL vacuum as autovacuum would."""
    conn = await common.connect(url)
    try:
        await conn.execute("UPDATE outbound_activities SET deleted_at = created_at WHERE id % 10 = 0")
        if not isinstance(conn, common.SqliteConn):
            await conn.execute("VACUUM ANALYZE outbound_activities")
    finally:
        await conn.close()


BUDGET = 30.0  # seconds per page (and per bare query), warm-up included; slow pages still get MIN_SAMPLES
MIN_SAMPLES = 10


async def time_page(port: int, domain: str, path: str, accept: str, n: int) -> tuple[dict[str, Any], bytes]:
    """Up to ``n`` requests, one at a time, within ``BUDGET`` seconds; the last warm-up body too."""
    request = common.http_request("GET", path, domain, {"Accept": accept})
    started = time.monotonic()
    warm: list[common.Result] = []
    while len(warm) < max(20, n // 10) and (time.monotonic() - started < BUDGET / 3 or not warm):
        warm += (await common.run_load(LOOPBACK, port, [request] * 5, concurrency=1, keep_bodies=True))[0]
    results: list[common.Result] = []
    wall = 0.0
    while len(results) < n and (time.monotonic() - started < BUDGET or len(results) < MIN_SAMPLES):
        chunk, seconds = await common.run_load(LOOPBACK, port, [request] * 10, concurrency=1)
        results += chunk
        wall += seconds
    return common.summarize(results, wall), warm[-1].body


class _SqliteStatement:
    """asyncpg's prepared statement, as far as :func:`time_query` uses it, on aiosqlite."""

    def __init__(self, conn: Any, sql: str) -> None:
        self.conn = conn
        self.sql = common.SqliteConn._sql(sql)

    async def fetch(self, *args: Any) -> list[Any]:
        async with self.conn.execute(self.sql, [common.SqliteConn._value(a) for a in args]) as cursor:
            return list(await cursor.fetchall())


class _SqlitePool:
    """One aiosqlite connection (Kith's driver and pragmas) behind the bits of asyncpg's pool used here."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return await _SqliteStatement(self.conn, sql).fetch(*args)

    async def prepare(self, sql: str) -> _SqliteStatement:
        return _SqliteStatement(self.conn, sql)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[_SqlitePool]:
        yield self

    async def close(self) -> None:
        await self.conn.close()


async def _sqlite_pool(url: str) -> _SqlitePool:
    import aiosqlite

    conn = await aiosqlite.connect(url[len("sqlite:///") :], timeout=30, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
        await conn.execute(f"PRAGMA {pragma}")
    return _SqlitePool(conn)


async def time_query(pool: asyncpg.Pool, n: int, *queries: tuple[str, tuple[Any, ...]]) -> dict[str, float]:
    """p50/p99 of the queries run back to back, up to ``n`` times within ``BUDGET`` seconds."""
    latencies: list[float] = []
    warmup = max(20, n // 10)
    begun = time.monotonic()
    async with pool.acquire() as conn:
        statements = [(await conn.prepare(sql), args) for sql, args in queries]
        for i in range(n + warmup):
            elapsed = time.monotonic() - begun
            if elapsed > BUDGET and len(latencies) >= MIN_SAMPLES:
                break
            started = time.perf_counter()
            for statement, args in statements:
                await statement.fetch(*args)
            if i >= warmup or elapsed > BUDGET / 3:
                latencies.append(time.perf_counter() - started)
    return {"p50": common.percentile(latencies, 50), "p99": common.percentile(latencies, 99), "n": len(latencies)}


async def run(args: argparse.Namespace) -> bool:
    common.print_header("Reading (bench.reading)", await common.database_version(args.database))
    print(
        f"scenario:   a group with {args.posts:,} posts ({args.posts // 4:,} threads of 4) and "
        f"{args.posts:,} Announces; "
        f"{args.requests} requests per page, one at a time, after {max(20, args.requests // 10)} warm-up requests "
        f"(at most {BUDGET:.0f} s per page)"
    )
    sys.stdout.flush()
    url = await common.create_database(DB_NAME, kind=args.database)
    server = None
    ok = True
    try:
        port = common.free_port()
        domain = f"{LOOPBACK}:{port}"
        group_id = await make_group(url)
        print(f"loaded:     in {await load(url, group_id, domain, args.posts):.0f} s")
        settled, seconds = await settle(url)
        print(f"settled:    the outbox total kept, as the worker does each minute: {settled:,} rows in {seconds:.2f} s")
        sys.stdout.flush()

        from server.groups.threads import Cursor

        deep_root = 1 + 4 * 250  # the 250th oldest thread
        deep_at = START + timedelta(seconds=deep_root + 3)
        cursor = Cursor(deep_at, deep_root).encode()
        deep_max_id = 1000
        html, ajson = "text/html", "application/activity+json"
        pages = [
            ("group page", f"/groups/{GROUP}", html, True),
            ("outbox first page", f"/groups/{GROUP}/outbox?page=true", ajson, True),
            ("outbox deep page", f"/groups/{GROUP}/outbox?page=true&max_id={deep_max_id}", ajson, True),
            ("group page, deep", f"/groups/{GROUP}?before={cursor}", html, False),
            ("outbox collection", f"/groups/{GROUP}/outbox", ajson, False),
        ]
        far = START + timedelta(days=3650)
        pool = await (
            _sqlite_pool(url) if args.database == "sqlite" else asyncpg.create_pool(url, min_size=1, max_size=1)
        )
        try:
            first_roots = [r["id"] for r in await pool.fetch(BARE_THREADS, group_id, far, 2**31 - 1)][:20]
            deep_roots = [r["id"] for r in await pool.fetch(BARE_THREADS, group_id, deep_at, deep_root)][:20]
            bare = {
                "group page": await time_query(
                    pool,
                    args.requests,
                    (BARE_THREADS, (group_id, far, 2**31 - 1)),
                    (BARE_REPLIES, (first_roots,)),
                    (BARE_PINNED, (group_id,)),
                ),
                "outbox first page": await time_query(pool, args.requests, (BARE_OUTBOX, (group_id, 2**31 - 1))),
                "outbox deep page": await time_query(pool, args.requests, (BARE_OUTBOX, (group_id, deep_max_id))),
                "group page, deep": await time_query(
                    pool, args.requests, (BARE_THREADS, (group_id, deep_at, deep_root)), (BARE_REPLIES, (deep_roots,))
                ),
                "outbox collection": await time_query(pool, max(20, args.requests // 10), (BARE_COUNT, (group_id,))),
            }
        finally:
            await pool.close()

        server = common.kith_server(url, port).start()
        print()
        print(f"{'page':<19} {'p50':>9} {'p99':>9}   {'bare p50':>9} {'bare p99':>9}   ratio p50  status")
        checks = []
        for label, path, accept, targeted in pages:
            n = args.requests if targeted or "collection" not in label else max(20, args.requests // 10)
            with common.Profiler(server.pid, args.profile if label == "group page" else None):
                summary, body = await time_page(port, domain, path, accept, n)
            b = bare[label]
            size = f"{len(body) / 1024:.0f} KiB"
            note = "" if targeted else " (no target)"
            print(
                f"{label:<19} {ms(summary['p50']):>9} {ms(summary['p99']):>9}   {ms(b['p50']):>9} {ms(b['p99']):>9}"
                f"   {summary['p50'] / b['p50']:>8.1f}x  {summary['statuses']} {size}{note}"
            )
            if targeted:
                checks.append((label, summary["p99"] < TARGET_P99 and set(summary["statuses"]) == {200}))
        # The outbox collection again with a tenth of the Announces deleted: the kept count
        # then subtracts those through their partial index (ix_outbound_activities_gone).
        await delete_a_tenth(url)
        summary, _body = await time_page(port, domain, f"/groups/{GROUP}/outbox", ajson, max(20, args.requests // 10))
        print(
            f"{'outbox, 1/10 gone':<19} {ms(summary['p50']):>9} {ms(summary['p99']):>9}"
            f"   {'':>9} {'':>9}   {'':>9}  {summary['statuses']} (no target; every tenth Announce tombstoned)"
        )
        print(
            f"targets:    p99 < {TARGET_P99 * 1000:.0f} ms: "
            + "; ".join(f"{name}: {'met' if met else 'MISSED'}" for name, met in checks)
        )
        ok = all(met for _, met in checks)
    finally:
        if server is not None:
            server.stop()
        await common.drop_database(DB_NAME, args.database)
        common.print_footer()
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1_000_000, help="stored posts (default 1000000)")
    parser.add_argument("--requests", type=int, default=500, help="timed requests per page (default 500)")
    parser.add_argument("--profile", metavar="FILE", help="record the server with py-spy during the group page")
    common.add_database_argument(parser)
    args = parser.parse_args(argv)
    common.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
