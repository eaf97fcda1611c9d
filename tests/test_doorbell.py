"""The doorbell: a web process's NOTIFY wakes a worker in another process at once (PostgreSQL), not at
its next idle look."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from server.doorbell import EVERY, Doorbell, parse_payload, payload
from server.inbox.store import store_activity
from server.jobs import build_worker
from server.services import Services
from server.tables import inbox_items


def test_a_payload_names_its_ringer_and_kinds_and_anything_unreadable_wakes_every_kind():
    assert parse_payload(payload("abc", ["inbox", "fanout", "inbox"])) == ("abc", frozenset({"fanout", "inbox"}))
    assert parse_payload(payload("abc", ["inbox", EVERY])) == ("abc", None)
    assert parse_payload("abc") == ("abc", None)
    assert parse_payload("abc:") == ("abc", None)


def _postgres_only(services: Services) -> None:
    if services.db.is_sqlite:
        pytest.skip("SQLite has no LISTEN/NOTIFY: a worker in another process finds work at its next look")


async def test_a_ring_is_heard_by_other_processes_not_by_its_own_and_rings_coalesce(services):
    if services.db.is_sqlite:  # no LISTEN/NOTIFY: silent by design, and listening only waits for the end
        bell = Doorbell(services.db)
        bell.ring("inbox")
        assert bell.rings_sent == 0 and bell._sender is None
        stop, heard = asyncio.Event(), []
        task = asyncio.create_task(bell.listen(heard.append, stop))
        await asyncio.sleep(0.05)
        assert not task.done()
        stop.set()
        await task
        assert heard == []
        return
    web, worker = Doorbell(services.db), Doorbell(services.db)  # two processes' bells: two tokens
    heard_by_worker: list[frozenset[str] | None] = []
    heard_by_web: list[frozenset[str] | None] = []
    stop = asyncio.Event()
    listening = [
        asyncio.create_task(worker.listen(heard_by_worker.append, stop)),
        asyncio.create_task(web.listen(heard_by_web.append, stop)),
    ]
    try:
        await _until(lambda: heard_by_worker == [None] and heard_by_web == [None])  # each (re)connection: one look
        for _ in range(1_000):
            web.ring("inbox")
        await _until(lambda: len(heard_by_worker) >= 2)
        await asyncio.sleep(0.1)
        assert set(heard_by_worker[1:]) == {frozenset({"inbox"})}
        assert web.rings_sent <= 3  # a thousand rings, coalesced: at most one NOTIFY in flight, then a pause
        assert heard_by_web == [None]  # its own rings are no news to it
        web.ring()
        await _until(lambda: heard_by_worker[-1] is None)  # no kind named: every kind
    finally:
        stop.set()
        await asyncio.gather(*listening)
        await web.close()


async def test_a_web_process_wakes_a_worker_in_another_process_at_once(services, settings):
    """A worker that would look again only in 30 s processes an activity another process stored within a second."""
    _postgres_only(services)
    other = await Services.open(settings, migrate=False)  # the worker process's own services
    try:
        worker = build_worker(other)
        worker.idle_sleep = 30.0
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run_forever(stop))
        try:
            await asyncio.sleep(1.0)  # its loops have looked, found nothing and sleep
            activity = {"id": "https://mastodon.example/a/1", "type": "Like", "actor": "https://mastodon.example/u/a"}
            stored_at = time.monotonic()
            assert await store_activity(services.db, activity, actor=activity["actor"], group_id=None)
            services.wake.set("inbox")  # as the inbox endpoint does after storing
            await _until(lambda: _state(services, activity["id"]), timeout=5.0, want="done", async_check=True)
            assert time.monotonic() - stored_at < 2.0
        finally:
            stop.set()
            await running
    finally:
        await other.close()


async def _state(services: Services, uri: str) -> str | None:
    async with services.db.read() as conn:
        return (
            await conn.execute(sa.select(inbox_items.c.state).where(inbox_items.c.activity_uri == uri))
        ).scalar_one_or_none()


async def _until(check, *, timeout: float = 5.0, want: object = True, async_check: bool = False) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check() if async_check else check()
        if (value == want) if want is not True else bool(value):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {timeout} s")
