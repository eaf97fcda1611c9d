"""The bare inbox: a Starlette endpoint that only parses the JSON and inserts one row.

This is the floor the real inbox cannot beat on the same machine: the same HTTP
server (uvicorn, uvloop, httptools), the same database, a table shaped like
``inbox_items`` (same indexes), a raw asyncpg pool with one prepared statement, one
committed insert per request, no signature, no checks.

On SQLite (``--dsn sqlite:///path``) the same with aiosqlite, Kith's driver, and Kith's
pragmas (WAL, synchronous=NORMAL, busy_timeout): one connection (SQLite has one writer
at a time; more connections only queue for its lock), each insert its own committed
transaction: no group commit, which Kith's inbox does on SQLite.

Run by ``bench.inbox``: ``python -m bench.bare_inbox --port P --dsn postgresql://...``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiosqlite
import asyncpg
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.common import LOOPBACK

TABLE = "bench_bare_inbox"
INSERT = (
    f"INSERT INTO {TABLE} (activity_uri, actor_uri, body, next_attempt_at, created_at) "
    "VALUES ($1, $2, $3, $4, $4) ON CONFLICT (activity_uri) DO NOTHING"
)
SQLITE_INSERT = (
    f"INSERT INTO {TABLE} (activity_uri, actor_uri, body, next_attempt_at, created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (activity_uri) DO NOTHING"
)


def build_sqlite_app(path: str) -> Starlette:
    """The bare endpoint on one aiosqlite connection in autocommit mode: a transaction per insert."""
    state: dict[str, aiosqlite.Connection] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        conn = await aiosqlite.connect(path, timeout=30, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
            await conn.execute(f"PRAGMA {pragma}")
        state["conn"] = conn
        try:
            yield
        finally:
            await conn.close()

    async def inbox(request: Request) -> Response:
        body = await request.body()
        doc = json.loads(body)
        now = datetime.now(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        await state["conn"].execute(SQLITE_INSERT, (doc["id"], doc["actor"], body.decode(), now))
        return Response(status_code=202)

    async def ready(request: Request) -> Response:
        return Response(status_code=204)

    return Starlette(routes=[Route("/inbox", inbox, methods=["POST"]), Route("/", ready)], lifespan=lifespan)


def build_app(dsn: str, pool_size: int) -> Starlette:
    if dsn.startswith("sqlite:///"):
        return build_sqlite_app(dsn[len("sqlite:///") :])
    state: dict[str, asyncpg.Pool] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
        try:
            yield
        finally:
            await state["pool"].close()

    async def inbox(request: Request) -> Response:
        body = await request.body()
        doc = json.loads(body)
        await state["pool"].execute(INSERT, doc["id"], doc["actor"], body.decode(), datetime.now(UTC))
        return Response(status_code=202)

    async def ready(request: Request) -> Response:
        return Response(status_code=204)

    return Starlette(routes=[Route("/inbox", inbox, methods=["POST"]), Route("/", ready)], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--pool-size", type=int, default=20, help="like Kith's pool: 10 + 10 overflow")
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.dsn, args.pool_size),
        host=LOOPBACK,
        port=args.port,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
