"""Benchmark 1, inbox acceptance: signed Creates from 1,000 remote actors to the shared inbox.

``python -m bench.inbox [--requests 6000] [--concurrency 50] [--database postgres|sqlite]``

Kith runs as its own process (``python -m server serve --no-worker``) on a scratch
PostgreSQL database (or SQLite file); this process is the load generator. Every actor's key is in
Kith's cache before the run and every request is signed before the clock starts
(signing is the sender's cost). The figures: accepted activities per second, p50/p99
latency, and a check that every activity answered 202 is stored exactly once (a
sample is sent a second time on purpose and must not be stored again).

The same requests then go to the bare endpoint (``bench.bare_inbox``: parse JSON,
insert one row, same HTTP server and database), the rate Kith cannot beat; the
ratio of the two is comparable across machines. On SQLite the bare endpoint is one
aiosqlite connection committing each insert on its own (see ``bench.bare_inbox``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench import common
from bench.common import LOOPBACK, ServerProcess, ms
from bench.world import GROUP, actor_on, create_activity, insert_actors, make_group

DB_NAME = "kith_bench_inbox"
TARGET_RATE = 1500.0
TARGET_RATE_SQLITE = 1000.0  # issue #17: the embedded default, one file, one writer at a time
TARGET_P99 = 0.100
TARGET_RATIO = 0.5


def _sign_batch(batch: list[tuple[str, str, str, bytes]]) -> list[dict[str, str]]:
    """Sign (key id, private PEM, url, body) requests in a worker process."""
    from server.federation.httpsig import sign_request

    return [
        sign_request(
            "POST",
            url,
            {"Content-Type": "application/activity+json"},
            body,
            key_id=key_id,
            private_key=common.private_key(pem),
        )
        for key_id, pem, url, body in batch
    ]


def build_requests(actors: list[Any], domain: str, total: int, start: int) -> tuple[list[bytes], list[str]]:
    """``total`` signed POSTs to ``/inbox`` spread round-robin over the actors, and their activity ids."""
    group_uri = f"http://{domain}/groups/{GROUP}"
    handle = f"@{GROUP}@{domain}"
    url = f"http://{domain}/inbox"
    items = []
    for i in range(total):
        actor = actors[i % len(actors)]
        activity = create_activity(actor, group_uri, handle, start + i)
        items.append((actor, activity, json.dumps(activity, separators=(",", ":")).encode()))
    jobs = [(a.key_id, a.private_pem, url, body) for a, _, body in items]
    chunk = max(1, len(jobs) // ((os.cpu_count() or 2) * 4))
    batches = [jobs[i : i + chunk] for i in range(0, len(jobs), chunk)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        signed = [h for hs in pool.map(_sign_batch, batches) for h in hs]
    requests = []
    for (_, _, body), headers in zip(items, signed, strict=True):
        headers = {**headers, "Content-Type": "application/activity+json"}
        requests.append(common.http_request("POST", "/inbox", domain, headers, body))
    return requests, [activity["id"] for _, activity, _ in items]


async def measure(
    server: ServerProcess, warmup: list[bytes], requests: list[bytes], concurrency: int, profile: str | None = None
) -> tuple[dict[str, Any], list[common.Result]]:
    """Warm the server up, then time ``requests``; CPU of the server and of PostgreSQL alongside."""
    await common.run_load(LOOPBACK, server.port, warmup, concurrency=concurrency)
    server_cpu = common.tree_cpu_seconds(server.pid)
    pg_cpu = common.cpu_seconds_of("postgres")
    own_cpu = common.cpu_seconds(os.getpid())
    with common.Profiler(server.pid, profile):
        results, wall = await common.run_load(LOOPBACK, server.port, requests, concurrency=concurrency)
    summary = common.summarize(results, wall)
    summary["accepted"] = sum(1 for r in results if r.status == 202)
    summary["accepted_rate"] = summary["accepted"] / wall
    summary["server_cpu"] = common.tree_cpu_seconds(server.pid) - server_cpu
    summary["pg_cpu"] = common.cpu_seconds_of("postgres") - pg_cpu  # ~0 on SQLite: it runs in the server
    summary["loadgen_cpu"] = common.cpu_seconds(os.getpid()) - own_cpu
    return summary, results


def _print_run(label: str, s: dict[str, Any], sqlite: bool = False) -> None:
    n = s["n"]
    print(
        f"{label:<14} {s['accepted_rate']:>7.0f} accepted/s  p50 {ms(s['p50']):>9}  p99 {ms(s['p99']):>9}  "
        f"statuses {s['statuses']}"
    )
    print(
        f"{'':<14} CPU per request: server {s['server_cpu'] / n * 1e6:.0f} µs"
        + (" (SQLite included)" if sqlite else f", PostgreSQL {s['pg_cpu'] / n * 1e6:.0f} µs")
        + f", load generator {s['loadgen_cpu'] / n * 1e6:.0f} µs  ({n} requests in {s['wall']:.2f} s)"
    )


async def run(args: argparse.Namespace) -> bool:
    sqlite = args.database == "sqlite"
    common.print_header("Inbox acceptance (bench.inbox)", await common.database_version(args.database))
    print(
        f"scenario:   {args.requests} signed Creates from {args.actors} remote actors (keys cached) to the shared "
        f"inbox, {args.concurrency} in flight over loopback keep-alive connections; "
        f"{args.warmup} warm-up requests first; {args.web_workers} web process(es)"
        + (", the worker in the same process, processing them" if args.with_worker else ", --no-worker")
    )
    sys.stdout.flush()
    keys = common.rsa_keypairs(args.actors)
    url = await common.create_database(DB_NAME, kind=args.database)
    kith: ServerProcess | None = None
    bare: ServerProcess | None = None
    ok = True
    try:
        await make_group(url)
        actors = [actor_on(f"127.0.3.{1 + i % 200}:{10 + i // 200}", f"user{i}", keys[i]) for i in range(args.actors)]
        conn = await common.connect(url)
        try:
            await insert_actors(conn, actors)
            await common.copy_table(conn, "inbox_items", "bench_bare_inbox")
            await conn.execute("ANALYZE")
        finally:
            await conn.close()

        port = common.free_port()
        domain = f"{LOOPBACK}:{port}"
        warmup, _ = build_requests(actors, domain, args.warmup, 0)
        requests, ids = build_requests(actors, domain, args.requests, args.warmup)
        print(f"signed:     {len(warmup) + len(requests)} requests before the clock started")

        bare_port = common.free_port()
        bare = ServerProcess(
            [sys.executable, "-m", "bench.bare_inbox", "--port", str(bare_port), "--dsn", url], bare_port
        ).start()
        bare_summary, _ = await measure(bare, warmup, requests, args.concurrency)
        bare.stop()
        bare = None

        kith = common.kith_server(url, port, args.web_workers, with_worker=args.with_worker).start()
        summary, results = await measure(kith, warmup, requests, args.concurrency, args.profile)
        accepted_ids = [ids[r.index] for r in results if r.status == 202]
        # Deliver a sample a second time, as remote servers do on retries: 202 again, stored once.
        again = requests[: args.duplicates]
        dup_results, _ = await common.run_load(LOOPBACK, port, again, concurrency=args.concurrency)
        dup_accepted = sum(1 for r in dup_results if r.status == 202)
        log_lines = kith.log_lines()
        if args.metrics:  # what an admin's Prometheus would have scraped at the end of the run
            scraped = httpx.get(f"http://{LOOPBACK}:{port}/metrics", timeout=30)
            Path(args.metrics).write_text(scraped.text)
            print(f"metrics:    /metrics answered {scraped.status_code}, written to {args.metrics}")
        kith.stop()
        kith = None

        conn = await common.connect(url)
        try:
            stored = await conn.fetchrow(
                "SELECT count(*) AS n, count(DISTINCT activity_uri) AS d FROM inbox_items "
                "WHERE activity_uri = ANY($1::text[])",
                accepted_ids,
            )
            total = await conn.fetchval("SELECT count(*) FROM inbox_items")
        finally:
            await conn.close()

        print()
        _print_run("bare endpoint", bare_summary, sqlite)
        _print_run("Kith inbox", summary, sqlite)
        ratio = summary["accepted_rate"] / bare_summary["accepted_rate"]
        print(f"ratio:      Kith / bare endpoint = {ratio:.2f}")
        exactly_once = stored["n"] == len(accepted_ids) == stored["d"] and total == args.warmup + len(accepted_ids)
        print(
            f"stored:     {stored['n']} rows for {len(accepted_ids)} activities answered 202 ({stored['d']} distinct); "
            f"{len(again)} sent again -> {dup_accepted} answered 202, table holds {total} rows "
            f"(= {args.warmup} warm-up + {len(accepted_ids)}): {'exactly once' if exactly_once else 'MISMATCH'}"
        )
        print(f"server log: {log_lines} lines written during the run")
        target = TARGET_RATE_SQLITE if sqlite else TARGET_RATE
        checks = [
            (f"rate >= {target:.0f}/s", summary["accepted_rate"] >= target),
            (f"p99 < {TARGET_P99 * 1000:.0f} ms", summary["p99"] < TARGET_P99),
            (f"rate >= {TARGET_RATIO} x bare", ratio >= TARGET_RATIO),
            ("every 202 stored exactly once", exactly_once and dup_accepted == len(again)),
        ]
        print("targets:    " + "; ".join(f"{name}: {'met' if met else 'MISSED'}" for name, met in checks))
        ok = all(met for _, met in checks)
    finally:
        for server in (kith, bare):
            if server is not None:
                server.stop()
        await common.drop_database(DB_NAME, args.database)
        common.print_footer()
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actors", type=int, default=1000, help="distinct remote actors (default 1000)")
    parser.add_argument("--requests", type=int, default=6000, help="timed requests (default 6000)")
    parser.add_argument("--warmup", type=int, default=1000, help="untimed requests first (default 1000)")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight (default 50)")
    parser.add_argument("--duplicates", type=int, default=500, help="timed requests sent a second time (default 500)")
    parser.add_argument("--web-workers", type=int, default=1, help="kith serve --workers N (default 1)")
    parser.add_argument("--metrics", metavar="FILE", help="save the server's /metrics at the end of the run to FILE")
    parser.add_argument("--profile", metavar="FILE", help="record the Kith server with py-spy (raw stacks) to FILE")
    parser.add_argument(
        "--with-worker",
        action="store_true",
        help="kith serve with its worker in the same process (the default setup), processing what it accepts",
    )
    common.add_database_argument(parser)
    args = parser.parse_args(argv)
    common.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
