"""``kith serve``, ``kith worker`` and ``kith migrate``: the processes of a running Kith."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING, Any

from server import __version__, logs
from server.cli.common import with_db
from server.settings import Settings

log = logging.getLogger("kith.cli")

if TYPE_CHECKING:  # the commands import what they use when they run, to start fast
    from server.db import Database


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def run(db: Database) -> None:
        applied = await db.migrate()
        print(f"applied {', '.join(applied)}" if applied else "database is up to date")

    asyncio.run(with_db(settings, run, migrate=False))
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from server.instance import ensure_instance
    from server.serving import Limits, uvicorn_options

    async def prepare(db: Database) -> None:
        await ensure_instance(db, settings.secret_key)

    asyncio.run(with_db(settings, prepare))
    log.info("Kith %s serving %s on http://%s:%s", __version__, settings.base_url, args.host, args.port)
    if args.no_worker:
        os.environ["KITH_NO_WORKER"] = "1"  # read by app_from_env in each web process
    limits = Limits(header_timeout=args.header_timeout, max_connections=args.max_connections)
    uvicorn.run(
        "server.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        log_config=logs.config(settings.log_format),  # each web process logs as this one does
        access_log=args.access_log,
        proxy_headers=True,
        server_header=False,
        **uvicorn_options(limits),
    )
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from server.jobs import build_worker
    from server.services import Services

    async def run() -> None:
        services = await Services.open(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("kith worker started on %s", services.db.safe_url)
        try:
            await build_worker(services).run_forever(stop)
        finally:
            await services.close()
        log.info("kith worker stopped")

    asyncio.run(run())
    return 0


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from server.checkup import run_checks

    findings = asyncio.run(run_checks(settings))
    for finding in findings:
        print(finding.line())
    return 0 if all(f.ok for f in findings) else 1


def add_parsers(sub: Any) -> None:
    """Add ``serve``, ``worker``, ``migrate`` and ``check``."""
    serve = sub.add_parser("serve", help="migrate, then serve HTTP with an in-process worker")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="serve HTTP only; run `kith worker` beside it")
    serve.add_argument("--workers", type=int, default=1, help="web processes (each with its own background worker)")
    serve.add_argument("--access-log", action="store_true", help="log every request (usually the proxy's job)")
    serve.add_argument(
        "--header-timeout", type=float, default=10.0, help="seconds a request may take to send its headers"
    )
    serve.add_argument("--max-connections", type=int, default=1000, help="connections served at once (beyond: 503)")
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("worker", help="run background work only").set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser(
        "check", help="self-test: the domain reaches this server, proxy, database, worker, clocks"
    ).set_defaults(func=cmd_check)
