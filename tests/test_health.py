"""``/healthz`` and ``/readyz`` against a real database: current, behind, and unreachable."""

from __future__ import annotations

import dataclasses

import httpx
import sqlalchemy as sa

from server.app import create_app
from server.db import Database, head_revision


async def test_healthz_answers_without_the_database(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["cache-control"] == "no-store"


async def test_readyz_is_ready_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "schema": head_revision()}


async def test_readyz_refuses_a_schema_behind_the_code(client, services) -> None:
    async with services.db.transaction() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '0006'"))
    try:
        r = await client.get("/readyz")
    finally:  # the PostgreSQL database is the session's: later tests (and `kith serve`) read this row
        async with services.db.transaction() as conn:
            await conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": head_revision()})
    assert r.status_code == 503
    assert r.json()["status"] == "unready"
    assert "kith migrate" in r.json()["reason"] and "0006" in r.json()["reason"]


async def test_readyz_refuses_when_the_database_does_not_answer(settings, services) -> None:
    # A real connection attempt to a port nothing listens on: the failure is the driver's own.
    down = Database("postgresql://postgres@127.0.0.1:1/nowhere")
    app = create_app(settings, services=dataclasses.replace(services, db=down), run_worker=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://kith.test") as c:
            ready = await c.get("/readyz")
            alive = await c.get("/healthz")
    finally:
        await down.dispose()
    assert ready.status_code == 503 and ready.json()["reason"] == "the database does not answer"
    assert alive.status_code == 200
