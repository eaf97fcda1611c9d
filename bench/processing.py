"""Benchmark 2, processing: the worker turns stored Creates into posts plus queued Announces.

``python -m bench.processing [--activities 2000] [--servers 100]``

A group has one member on each of 100 servers; members' Creates (public Notes that
mention the group) already sit in ``inbox_items``, as the inbox stored them. Kith's own
worker (``server.jobs.build_worker``, inbox kind only: nothing is sent) runs in this
process until every item is done. The figure is activities per second; each one becomes
a post, the group's two Announces (the Create wrapped, and the plain object for
Mastodon) and one delivery row per member server for each.

Bare cost: the same rows (post, two activities, their delivery rows) written with raw
asyncpg, one transaction per activity, as many at once as the worker runs jobs; the
delivery rows by COPY (the floor) and, for comparison, by executemany.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg

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
    url: str, group_id: int, activities: list[dict[str, Any]], inboxes: list[str], jobs: int, *, copy: bool
) -> float:
    """Write what processing writes with raw asyncpg; returns activities per second.

    Delivery rows go in with ``executemany`` (as Kith's ``enqueue`` does, through SQLAlchemy)
    or, with ``copy``, with ``COPY`` (the cheapest way PostgreSQL takes many rows).
    """
    post_sql = (
        "INSERT INTO bare_posts (uri, group_id, author_uri, type, content_html, raw, published, last_activity_at, "
        "created_at, state, sensitive, likes, dislikes, replies) "
        "VALUES ($1, $2, $3, 'Note', $4, $5, $6, $6, $6, 'visible', false, 0, 0, 0) RETURNING id"
    )
    activity_sql = (
        "INSERT INTO bare_outbound_activities (uri, actor_id, type, public, body, post_id, created_at) "
        "VALUES ($1, $2, 'Announce', true, $3, $4, $5) RETURNING id"
    )
    delivery_sql = (
        "INSERT INTO bare_deliveries (activity_id, inbox, domain, state, attempts, next_attempt_at, created_at) "
        "VALUES ($1, $2, $3, 'queued', 0, $4, $4) ON CONFLICT DO NOTHING"
    )
    domains = [i.split("/")[2] for i in inboxes]
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
            for suffix in ("a", "b"):
                activity_id = await conn.fetchval(
                    activity_sql, f"{activity['id']}#{suffix}", group_id, body, post_id, now
                )
                rows = [(activity_id, inbox, d, now) for inbox, d in zip(inboxes, domains, strict=True)]
                if copy:
                    await conn.copy_records_to_table(
                        "bare_deliveries",
                        records=[(*r, "queued", 0, now) for r in rows],
                        columns=[*DELIVERY_COLUMNS],
                    )
                else:
                    await conn.executemany(delivery_sql, rows)

    async def lane() -> None:
        while queue:
            await one(queue.pop())

    started = time.perf_counter()
    try:
        await asyncio.gather(*(lane() for _ in range(jobs)))
    finally:
        await pool.close()
    return len(activities) / (time.perf_counter() - started)


async def run(args: argparse.Namespace) -> bool:
    common.print_header("Processing (bench.processing)", await common.postgres_version())
    print(
        f"scenario:   {args.activities} stored Creates from members of a group with {args.servers} member servers; "
        "Kith's worker (inbox jobs only, in this process) until all are done"
    )
    sys.stdout.flush()
    keys = common.rsa_keypairs(args.servers)
    url = await common.create_database(DB_NAME)
    services = None
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
        conn = await asyncpg.connect(url)
        try:
            await insert_members(conn, group_id, await insert_actors(conn, actors))
            for table in ("posts", "outbound_activities", "deliveries"):
                await conn.execute(f"CREATE TABLE bare_{table} (LIKE {table} INCLUDING ALL)")
            await store_creates(conn, activities)
            await conn.execute("ANALYZE")
        finally:
            await conn.close()

        shared = [a.shared_inbox for a in actors]
        half = len(bare_activities) // 2
        many_rate = await bare_writes(url, group_id, bare_activities[:half], shared, args.jobs, copy=False)
        bare_rate = await bare_writes(url, group_id, bare_activities[half:], shared, args.jobs, copy=True)

        from server.jobs import build_worker
        from server.services import Services
        from server.settings import Settings

        settings = Settings(
            domain=DOMAIN, scheme="http", database_url=url, allow_private_addresses=True, secret_key=common.SECRET
        )
        services = await Services.open(settings, migrate=False)
        worker = build_worker(services)
        worker.kinds = [k for k in worker.kinds if k.name == "inbox"]  # process only: send nothing
        cpu = common.cpu_seconds(os.getpid())
        pg_cpu = common.cpu_seconds_of("postgres")
        started = time.perf_counter()
        done = 0
        with common.Profiler(os.getpid(), args.profile):
            while done < args.activities and time.perf_counter() - started < args.limit:
                done += await worker.run_once()
        elapsed = time.perf_counter() - started
        cpu = common.cpu_seconds(os.getpid()) - cpu
        pg_cpu = common.cpu_seconds_of("postgres") - pg_cpu
        await services.close()
        services = None

        conn = await asyncpg.connect(url)
        try:
            states = dict(await conn.fetch("SELECT state, count(*) FROM inbox_items GROUP BY state"))
            post_states = dict(await conn.fetch("SELECT state, count(*) FROM posts GROUP BY state"))
            announces = await conn.fetchval("SELECT count(*) FROM outbound_activities WHERE type = 'Announce'")
            queued = await conn.fetchval("SELECT count(*) FROM deliveries WHERE state = 'queued'")
            per_server = await conn.fetchval(
                "SELECT count(*) FROM (SELECT activity_id FROM deliveries GROUP BY activity_id "
                "HAVING count(*) = $1 AND count(DISTINCT domain) = $1) x",
                args.servers,
            )
        finally:
            await conn.close()

        rate = states.get("done", 0) / elapsed
        print()
        print(f"bare writes    {bare_rate:>7.0f} activities/s (raw asyncpg, {args.jobs} at once, deliveries by COPY)")
        print(f"               {many_rate:>7.0f} activities/s (the same, delivery rows by executemany)")
        print(
            f"Kith worker    {rate:>7.0f} activities/s ({states.get('done', 0)} done in {elapsed:.2f} s; worker CPU "
            f"{cpu / max(1, args.activities) * 1e3:.2f} ms, PostgreSQL CPU {pg_cpu / max(1, args.activities) * 1e3:.2f}"
            " ms per activity)"
        )
        print(f"ratio:      Kith / bare writes = {rate / bare_rate:.2f}")
        print(
            f"result:     inbox items {states}; posts {post_states}; {announces} Announces, "
            f"{per_server} of them queued once to each of the {args.servers} servers; {queued} deliveries queued"
        )
        complete = states.get("done", 0) == args.activities and announces == 2 * args.activities == per_server
        print(
            f"targets:    rate >= {TARGET_RATE:.0f}/s: {'met' if rate >= TARGET_RATE else 'MISSED'}; "
            f"every Create became a post and two Announces to every server: {'yes' if complete else 'NO'}"
        )
        ok = rate >= TARGET_RATE and complete
    finally:
        if services is not None:
            await services.close()
        await common.drop_database(DB_NAME)
        common.print_footer()
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--activities", type=int, default=2000, help="stored Creates to process (default 2000)")
    parser.add_argument("--servers", type=int, default=100, help="member servers, one member each (default 100)")
    parser.add_argument("--jobs", type=int, default=20, help="bare writes at once (the worker runs 20 inbox jobs)")
    parser.add_argument("--limit", type=float, default=300.0, help="stop after this many seconds (default 300)")
    parser.add_argument("--profile", metavar="FILE", help="record this process with py-spy (raw stacks) to FILE")
    args = parser.parse_args(argv)
    common.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
