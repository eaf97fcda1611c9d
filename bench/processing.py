"""Benchmark 2, processing: the worker turns stored Creates into posts plus queued Announces.

``python -m bench.processing [--activities 2000] [--servers 100] [--database postgres|sqlite]``

A group has one member on each of 100 servers; members' Creates (public Notes that
mention the group) already sit in ``inbox_items``, as the inbox stored them. Kith's own
worker (``server.jobs.build_worker``, inbox kind only: nothing is sent, in its own loop
as ``kith worker`` runs it) runs in ``--workers`` processes until every item is done.
The figure is activities per second; each one becomes a post, the group's two
Announces (the Create wrapped, and the plain object for Mastodon) and one fan-out row
that sends both to every member server later.

Bare cost: the same rows (post, two activities, the fan-out row) written with raw
asyncpg, one transaction per activity, as many at once as the worker runs jobs. For
comparison, the same with a delivery row per member server and Announce written up
front by COPY (the design before fan-out rows, at its floor). On SQLite the bare writes
go through one aiosqlite connection (SQLite's one writer), one transaction per activity,
with Kith's pragmas; the per-server rows by ``executemany``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import event

from bench import common
from bench.world import GROUP, actor_on, create_activity, insert_actors, insert_members, make_group

DB_NAME = "kith_bench_processing"
DOMAIN = "127.0.0.1:9"  # the group's own URLs; nothing is served or fetched there
TARGET_RATE = 500.0
DELIVERY_COLUMNS = ("activity_id", "inbox", "domain", "next_attempt_at", "state", "attempts", "created_at")


async def store_creates(conn: asyncpg.Connection, activities: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    await conn.copy_records_to_table(
        "inbox_items",
        records=[
            (a["id"], a["actor"], json.dumps(a, separators=(",", ":")), "queued", 0, now, now) for a in activities
        ],
        columns=["activity_uri", "actor_uri", "body", "state", "attempts", "next_attempt_at", "created_at"],
    )


async def bare_writes(
    url: str, group_id: int, activities: list[dict[str, Any]], inboxes: list[str], jobs: int, *, per_inbox: bool
) -> float:
    """Write what processing writes with raw asyncpg; returns activities per second.

    The post, both Announces in one INSERT and one fan-out row, as Kith writes them; with
    ``per_inbox``, a delivery row per inbox and Announce by COPY instead of the fan-out row.
    """
    post_sql = (
        "INSERT INTO bare_posts (uri, group_id, author_uri, type, content_html, raw, published, last_activity_at, "
        "created_at, state, sensitive, likes, dislikes, replies) "
        "VALUES ($1, $2, $3, 'Note', $4, $5, $6, $6, $6, 'visible', false, 0, 0, 0) RETURNING id"
    )
    activity_sql = (
        "INSERT INTO bare_outbound_activities (uri, actor_id, type, public, body, post_id, created_at) "
        "VALUES ($1, $2, 'Announce', true, $3, $4, $5), ($6, $2, 'Announce', true, $7, $4, $5) RETURNING id"
    )
    fanout_sql = (
        "INSERT INTO bare_fanouts (activity_id, activity_ids, group_id, state, attempts, sent, failed, "
        "next_attempt_at, created_at) VALUES ($1, $2, $3, 'queued', 0, 0, 0, $4, $4)"
    )
    domains = [i.split("/")[2] for i in inboxes]
    if url.startswith("sqlite:///"):
        statements = (post_sql, activity_sql, fanout_sql)
        return await _bare_writes_sqlite(
            url[len("sqlite:///") :], group_id, activities, inboxes, domains, statements, per_inbox
        )
    pool = await asyncpg.create_pool(url, min_size=jobs, max_size=jobs)
    queue = list(reversed(activities))

    async def one(activity: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        body = json.dumps(activity, separators=(",", ":"))
        async with pool.acquire() as conn, conn.transaction():
            post_id = await conn.fetchval(
                post_sql,
                activity["object"]["id"],
                group_id,
                activity["actor"],
                activity["object"]["content"],
                json.dumps(activity["object"]),
                now,
            )
            ids = [
                r[0]
                for r in await conn.fetch(
                    activity_sql, f"{activity['id']}#a", group_id, body, post_id, now, f"{activity['id']}#b", body
                )
            ]
            if not per_inbox:
                await conn.execute(fanout_sql, ids[0], json.dumps(ids), group_id, now)
                return
            for activity_id in ids:
                await conn.copy_records_to_table(
                    "bare_deliveries",
                    records=[
                        (activity_id, inbox, d, now, "queued", 0, now)
                        for inbox, d in zip(inboxes, domains, strict=True)
                    ],
                    columns=[*DELIVERY_COLUMNS],
                )

    async def lane() -> None:
        while queue:
            await one(queue.pop())

    started = time.perf_counter()
    try:
        await asyncio.gather(*(lane() for _ in range(jobs)))
    finally:
        await pool.close()
    return len(activities) / (time.perf_counter() - started)


async def _bare_writes_sqlite(
    path: str,
    group_id: int,
    activities: list[dict[str, Any]],
    inboxes: list[str],
    domains: list[str],
    statements: tuple[str, str, str],
    per_inbox: bool,
) -> float:
    """:func:`bare_writes` on SQLite: one aiosqlite connection, a transaction per activity."""
    import aiosqlite

    post_sql, activity_sql, fanout_sql = (re.sub(r"\$(\d+)", r"?\1", sql) for sql in statements)
    delivery_sql = f"INSERT INTO bare_deliveries ({', '.join(DELIVERY_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    conn = await aiosqlite.connect(path, timeout=30, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
        await conn.execute(f"PRAGMA {pragma}")
    started = time.perf_counter()
    try:
        for activity in activities:
            now = datetime.now(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
            body = json.dumps(activity, separators=(",", ":"))
            note = activity["object"]
            await conn.execute("BEGIN IMMEDIATE")
            post = (note["id"], group_id, activity["actor"], note["content"], json.dumps(note), now)
            async with conn.execute(post_sql, post) as cur:
                (post_id,) = await cur.fetchone()  # type: ignore[misc]
            announces = (f"{activity['id']}#a", group_id, body, post_id, now, f"{activity['id']}#b", body)
            async with conn.execute(activity_sql, announces) as cur:
                ids = [r[0] for r in await cur.fetchall()]
            if per_inbox:
                for activity_id in ids:
                    await conn.executemany(
                        delivery_sql,
                        [(activity_id, i, d, now, "queued", 0, now) for i, d in zip(inboxes, domains, strict=True)],
                    )
            else:
                await conn.execute(fanout_sql, (ids[0], json.dumps(ids), group_id, now))
            await conn.execute("COMMIT")
    finally:
        await conn.close()
    return len(activities) / (time.perf_counter() - started)


def skip_redistribution() -> None:
    """Diagnosis only: make the intake's redistribution a no-op, to cost the rest of the Create path alone."""
    from server.groups import intake

    async def nothing(*_args: Any, **_kwargs: Any) -> list[dict[str, Any]]:
        return []

    intake.redistribute = nothing  # type: ignore[assignment]


def count_statements(engine: Any) -> dict[str, int]:
    """Count the statements and transactions the engine runs from now on (a live dict), and the
    statements run on the raw asyncpg pool (``Database.raw_pool``: each its own transaction)."""
    counts = {"statements": 0, "begins": 0, "raw": 0}

    def counting(method: Any) -> Any:
        async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            counts["raw"] += 1
            return await method(self, *args, **kwargs)

        return counted

    # The class, not the pool (its instances have __slots__); only the worker's pool exists here.
    for name in ("execute", "fetch", "fetchrow", "fetchval", "executemany"):
        setattr(asyncpg.pool.Pool, name, counting(getattr(asyncpg.pool.Pool, name)))

    @event.listens_for(engine, "before_cursor_execute")
    def on_execute(*_args: Any) -> None:
        counts["statements"] += 1

    @event.listens_for(engine, "begin")
    def on_begin(*_args: Any) -> None:
        counts["begins"] += 1

    return counts


async def run(args: argparse.Namespace) -> bool:
    sqlite = args.database == "sqlite"
    common.print_header("Processing (bench.processing)", await common.database_version(args.database))
    print(
        f"scenario:   {args.activities} stored Creates from members of a group with {args.servers} member servers; "
        f"Kith's worker (inbox jobs only) in {args.workers} process(es) until all are done"
    )
    sys.stdout.flush()
    keys = common.rsa_keypairs(args.servers)
    url = await common.create_database(DB_NAME, kind=args.database)
    procs: list[Any] = []
    ok = True
    try:
        group_id = await make_group(url)
        actors = [
            actor_on(f"127.0.4.{1 + i % 250}:{10 + i // 250}", f"member{i}", keys[i]) for i in range(args.servers)
        ]
        group_uri = f"http://{DOMAIN}/groups/{GROUP}"
        activities = [
            create_activity(actors[i % len(actors)], group_uri, f"@{GROUP}@{DOMAIN}", i) for i in range(args.activities)
        ]
        bare_activities = [
            create_activity(actors[i % len(actors)], group_uri, f"@{GROUP}@{DOMAIN}", 10_000_000 + i)
            for i in range(args.activities)
        ]
        conn = await common.connect(url)
        try:
            await insert_members(conn, group_id, await insert_actors(conn, actors))
            for table in ("posts", "outbound_activities", "fanouts", "deliveries"):
                await common.copy_table(conn, table, f"bare_{table}")
            await store_creates(conn, activities)
            await conn.execute("ANALYZE")
        finally:
            await conn.close()

        shared = [a.shared_inbox for a in actors]
        half = len(bare_activities) // 2
        bare_rate = await bare_writes(url, group_id, bare_activities[:half], shared, args.jobs, per_inbox=False)
        per_inbox_rate = await bare_writes(url, group_id, bare_activities[half:], shared, args.jobs, per_inbox=True)

        flags = ["--without-redistribution"] if args.without_redistribution else []
        for _ in range(args.workers):
            procs.append(
                common.spawn("bench.processing", "--role", "worker", "--url", url, "--limit", str(args.limit), *flags)
            )
        for proc in procs:
            common.read_json(proc, 60)  # ready
        pg_cpu = common.cpu_seconds_of("postgres")
        started = time.monotonic()
        with common.Profiler(procs[0].pid, args.profile):
            for proc in procs:
                common.tell(proc, "go")
            reports = [common.read_json(proc, args.limit + 60) for proc in procs]
        elapsed = max(r["t_end"] for r in reports) - started
        pg_cpu = common.cpu_seconds_of("postgres") - pg_cpu
        cpu = sum(r["cpu"] for r in reports)
        counts = {k: sum(r[k] for r in reports) for k in ("statements", "begins", "raw")}

        conn = await common.connect(url)
        contains = (
            "EXISTS (SELECT 1 FROM json_each(f.activity_ids) WHERE value = a.id)"
            if sqlite
            else "f.activity_ids::jsonb @> to_jsonb(a.id)"
        )
        try:
            states = dict(await conn.fetch("SELECT state, count(*) FROM inbox_items GROUP BY state"))
            post_states = dict(await conn.fetch("SELECT state, count(*) FROM posts GROUP BY state"))
            announces = await conn.fetchval("SELECT count(*) FROM outbound_activities WHERE type = 'Announce'")
            queued = await conn.fetchval("SELECT count(*) FROM deliveries")
            # Each post's fan-out row carries both its Announces, to be sent to every member server.
            fanned = await conn.fetchval(
                "SELECT count(*) FROM fanouts f WHERE f.cursor IS NULL AND f.until IS NULL AND f.state = 'queued' "
                "AND (SELECT count(*) FROM outbound_activities a WHERE a.post_id IS NOT NULL "
                f"AND {contains}) = 2"
            )
            members = await conn.fetchval(
                "SELECT count(DISTINCT coalesce(r.shared_inbox, r.inbox)) FROM follows f "
                "JOIN remote_actors r ON r.id = f.actor_id WHERE f.state = 'accepted'"
            )
        finally:
            await conn.close()

        rate = states.get("done", 0) / elapsed
        print()
        print(
            f"bare writes    {bare_rate:>7.0f} activities/s "
            + ("(aiosqlite, one connection" if sqlite else f"(raw asyncpg, {args.jobs} at once")
            + "; post, Announces, fan-out row)"
        )
        print(
            f"               {per_inbox_rate:>7.0f} activities/s (the same with a delivery row per server and "
            "Announce by COPY instead: the design before fan-out rows)"
        )
        print(
            f"Kith worker    {rate:>7.0f} activities/s ({states.get('done', 0)} done in {elapsed:.2f} s by "
            f"{args.workers} process(es); worker CPU "
            f"{cpu / max(1, args.activities) * 1e3:.2f} ms"
            + (" (SQLite included)" if sqlite else f", PostgreSQL CPU {pg_cpu / max(1, args.activities) * 1e3:.2f} ms")
            + " per activity)"
        )
        per = max(1, args.activities)
        print(
            f"               {(counts['statements'] + counts['raw']) / per:.1f} SQL statements and "
            f"{(counts['begins'] + counts['raw']) / per:.2f} transactions per activity, of which "
            f"{counts['raw'] / per:.1f} autocommit on the raw asyncpg pool (the worker's claims and updates "
            "included; executemany counts once)"
        )
        print(f"ratio:      Kith / bare writes = {rate / bare_rate:.2f}")
        print(
            f"result:     inbox items {states}; posts {post_states}; {announces} Announces; {fanned} fan-outs of "
            f"both a post's Announces to the group's {members} member servers; {queued} delivery rows"
        )
        complete = (
            states.get("done", 0) == args.activities
            and announces == 2 * args.activities
            and fanned == args.activities
            and members == args.servers
            and queued == 0
        )
        print(
            f"targets:    rate >= {TARGET_RATE:.0f}/s: {'met' if rate >= TARGET_RATE else 'MISSED'}; "
            f"every Create became a post and two Announces to every server: {'yes' if complete else 'NO'}"
        )
        ok = rate >= TARGET_RATE and complete
    finally:
        for proc in procs:
            common.stop(proc)
        await common.drop_database(DB_NAME, args.database)
        common.print_footer()
    return ok


async def worker(url: str, limit: float, without_redistribution: bool) -> None:
    """Role: Kith's worker (inbox kind only: nothing is sent), started on "go", until no Create is left."""

    from server.jobs import build_worker
    from server.services import Services
    from server.settings import Settings

    settings = Settings(
        domain=DOMAIN, scheme="http", database_url=url, allow_private_addresses=True, secret_key=common.SECRET
    )
    services = await Services.open(settings, migrate=False)
    try:
        kith_worker = build_worker(services)
        kith_worker.kinds = [k for k in kith_worker.kinds if k.name == "inbox"]  # process only: send nothing
        counts = count_statements(services.db.engine.sync_engine)
        if without_redistribution:
            skip_redistribution()
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        cpu, t0 = common.cpu_seconds(os.getpid()), time.monotonic()
        stop = asyncio.Event()

        async def until_empty() -> None:
            # Kith's own loop (``kith worker`` runs the same), stopped once no Create is left.
            # Asked on a connection of its own, so the counts are the worker's statements only.
            # (On SQLite a plain sqlite3 connection, whose count blocks this loop: asked less often.)
            watcher = await common.connect(url)
            every = 0.1 if url.startswith("sqlite:") else 0.02
            try:
                while time.monotonic() - t0 < limit:
                    await asyncio.sleep(every)
                    if await watcher.fetchval("SELECT count(*) FROM inbox_items WHERE state = 'queued'") == 0:
                        break
            finally:
                await watcher.close()
            stop.set()

        await asyncio.gather(kith_worker.run_forever(stop), until_empty())
        report = {"t_end": time.monotonic(), "cpu": common.cpu_seconds(os.getpid()) - cpu, **counts}
        print(json.dumps(report), flush=True)
    finally:
        await services.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--activities", type=int, default=2000, help="stored Creates to process (default 2000)")
    parser.add_argument("--servers", type=int, default=100, help="member servers, one member each (default 100)")
    parser.add_argument("--jobs", type=int, default=20, help="bare writes at once (the worker runs 20 inbox jobs)")
    parser.add_argument("--limit", type=float, default=300.0, help="stop after this many seconds (default 300)")
    parser.add_argument("--profile", metavar="FILE", help="record the first worker with py-spy (raw stacks) to FILE")
    parser.add_argument(
        "--without-redistribution",
        action="store_true",
        help="diagnosis: skip the Announces and deliveries, to measure the rest of the Create path (fails the check)",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    common.add_database_argument(parser)
    parser.add_argument("--role", choices=["worker"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "worker":
        common.run(worker(args.url, args.limit, args.without_redistribution))
        return 0
    common.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
