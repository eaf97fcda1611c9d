"""Delivery: the answer matrix, Retry-After, the circuit breaker, leases, and no double send."""

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from server.federation.delivery import classify, enqueue, retry_after
from server.federation.httpsig import IncomingRequest, ResolvedKey, verify_request
from server.federation.sender import CIRCUIT_THRESHOLD
from server.groups.membership import GroupSpec, create_group
from server.jobs import build_worker
from server.moderation.blocklist.matcher import Block, DomainPolicy
from server.services import Services
from server.tables import deliveries, server_health

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "headers", "state"),
    [
        (200, {}, "done"),
        (202, {}, "done"),
        (204, {}, "done"),
        (410, {}, "gone"),
        (400, {}, "dead"),
        (401, {}, "dead"),
        (403, {}, "dead"),
        (404, {}, "dead"),
        (422, {}, "dead"),
        (429, {"retry-after": "120"}, "queued"),
        (503, {}, "queued"),
        (500, {}, "queued"),
        (502, {}, "queued"),
        (None, {}, "queued"),
    ],
)
def test_answer_matrix(status, headers, state):
    outcome = classify(status, headers, attempts=1, created_at=NOW, now=NOW)
    assert outcome.state == state
    if state == "queued":
        assert outcome.retry_at > NOW


def test_retry_after_seconds_and_date():
    assert classify(429, {"retry-after": "120"}, attempts=1, created_at=NOW, now=NOW).retry_at == NOW + timedelta(
        seconds=120
    )
    at = classify(503, {"retry-after": "Thu, 26 Nov 2026 13:00:00 GMT"}, attempts=1, created_at=NOW, now=NOW)
    assert at.retry_at == NOW + timedelta(hours=1)
    assert retry_after("garbage", NOW) is None
    assert retry_after("9999999", NOW) == NOW + timedelta(days=1)  # capped


def test_backoff_grows_and_gives_up_after_days():
    delays = [classify(500, {}, attempts=n, created_at=NOW, now=NOW).retry_at - NOW for n in (1, 4, 8)]
    assert delays[0] < delays[1] < delays[2]
    assert classify(500, {}, attempts=30, created_at=NOW - timedelta(days=2), now=NOW).state == "queued"
    assert classify(500, {}, attempts=30, created_at=NOW - timedelta(days=3), now=NOW).state == "dead"
    assert classify(429, {}, attempts=30, created_at=NOW - timedelta(days=4), now=NOW).state == "dead"


async def _queue(services, group, inboxes, n=1):
    ids = []
    async with services.db.transaction() as conn:
        for i in range(n):
            activity = {
                "id": f"https://kith.test/activities/{i}",
                "type": "Announce",
                "actor": "https://kith.test/groups/g",
            }
            ids.append(await enqueue(conn, services.db, activity=activity, actor_id=group.id, inboxes=inboxes))
    return ids


async def _states(services) -> dict[str, str]:
    async with services.db.read() as conn:
        rows = (await conn.execute(sa.select(deliveries.c.inbox, deliveries.c.state))).all()
    return {r.inbox: r.state for r in rows}


def _verifying_handler(group, status=202, headers=None, seen=None):
    """A remote inbox that checks our signature with the group's key, then answers ``status``."""

    async def lookup(key_id, *, refresh):
        return ResolvedKey(key_id, "https://kith.test/groups/g", group.public_key_pem)

    async def handler(request: httpx.Request) -> httpx.Response:
        verified = await verify_request(
            IncomingRequest(request.method, str(request.url), dict(request.headers), request.content), lookup
        )
        assert verified.key_id == "https://kith.test/groups/g#main-key"
        if seen is not None:
            seen.append((request.url.host, json.loads(request.content)["id"]))
        return httpx.Response(status, headers=headers or {})

    return handler


async def test_real_sends_follow_the_matrix(services, network):
    group = await create_group(services.db, GroupSpec(name="g"))
    answers = {"ok.example": 202, "gone.example": 410, "bad.example": 400, "busy.example": 429, "down.example": 500}
    for host, status in answers.items():
        network.add_handler(host, _verifying_handler(group, status, {"Retry-After": "60"} if status == 429 else None))
    await _queue(services, group, [f"https://{h}/inbox" for h in answers] + ["https://nowhere.example/inbox"])
    await build_worker(services).run_once()
    states = await _states(services)
    assert states == {
        "https://ok.example/inbox": "done",
        "https://gone.example/inbox": "gone",
        "https://bad.example/inbox": "dead",
        "https://busy.example/inbox": "queued",
        "https://down.example/inbox": "queued",
        "https://nowhere.example/inbox": "queued",  # network error: retried later
    }
    async with services.db.read() as conn:
        busy = (
            await conn.execute(sa.select(deliveries).where(deliveries.c.inbox == "https://busy.example/inbox"))
        ).one()
    assert timedelta(seconds=50) < busy.next_attempt_at - datetime.now(UTC) <= timedelta(seconds=61)
    assert busy.last_error.startswith("429")


async def test_blocked_domain_is_dropped_not_sent(services, network):
    group = await create_group(services.db, GroupSpec(name="g"))
    seen = []
    network.add_handler("evil.example", _verifying_handler(group, seen=seen))
    await _queue(services, group, ["https://evil.example/inbox"])
    # The process's policy learns of a block (as from another process) after the row was queued.
    services.blocklist.policy = DomainPolicy(blocks={"evil.example": Block("evil.example", "suspend")})
    await build_worker(services).run_once()
    assert seen == [] and network.sent_to("evil.example") == []
    assert await _states(services) == {"https://evil.example/inbox": "dead"}


async def test_circuit_breaker_spares_healthy_servers(services, network):
    group = await create_group(services.db, GroupSpec(name="g"))
    down_calls = []

    def down(request):
        down_calls.append(request)
        return httpx.Response(500)

    seen = []
    network.add_handler("down.example", down)
    network.add_handler("up.example", _verifying_handler(group, seen=seen))
    await _queue(services, group, ["https://down.example/inbox", "https://up.example/inbox"], n=CIRCUIT_THRESHOLD + 5)
    worker = build_worker(services)
    await worker.run_once()
    assert len(seen) == CIRCUIT_THRESHOLD + 5  # every delivery to the healthy server went out
    # The dead server got at most the threshold of attempts, then its circuit opened.
    assert CIRCUIT_THRESHOLD <= len(down_calls) < CIRCUIT_THRESHOLD + 5
    async with services.db.read() as conn:
        health = (await conn.execute(sa.select(server_health).where(server_health.c.domain == "down.example"))).one()
    assert health.open_until is not None and health.failures >= CIRCUIT_THRESHOLD
    # Later rounds claim nothing for it while the circuit is open, even if due.
    async with services.db.transaction() as conn:
        await conn.execute(sa.update(deliveries).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
    before = len(down_calls)
    await build_worker(services).run_once()
    assert len(down_calls) == before


async def test_killed_worker_loses_nothing(services, network):
    """Rows leased by a worker that died mid-batch come back once the lease runs out."""
    group = await create_group(services.db, GroupSpec(name="g"))
    seen = []
    network.add_handler("ok.example", _verifying_handler(group, seen=seen))
    await _queue(services, group, ["https://ok.example/inbox"], n=10)
    # A worker claims a batch and is SIGKILLed before sending anything.
    claimed = await services.db.claim_due(deliveries, now=datetime.now(UTC), limit=6, lease=timedelta(minutes=5))
    assert len(claimed) == 6
    await build_worker(services).drain()
    assert len(seen) == 4  # the other worker cannot take leased rows ...
    async with services.db.transaction() as conn:  # ... until their lease expires
        await conn.execute(sa.update(deliveries).values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))
    await build_worker(services).drain()
    assert sorted(seen) == sorted(("ok.example", f"https://kith.test/activities/{i}") for i in range(10))
    assert set((await _states(services)).values()) == {"done"}


async def test_two_workers_never_send_twice(settings, services, network):
    """Two worker processes (separate engines) drain one queue; every delivery goes out once."""
    group = await create_group(services.db, GroupSpec(name="g"))
    seen = []
    hosts = [f"s{i}.example" for i in range(20)]
    for host in hosts:
        network.add_handler(host, _verifying_handler(group, seen=seen))
    await _queue(services, group, [f"https://{h}/inbox" for h in hosts], n=10)
    other = await Services.open(settings, transport=network, migrate=False)
    try:
        w1, w2 = build_worker(services), build_worker(other)
        for w in (w1, w2):
            w.kinds[1].batch = 17  # small batches so the two interleave
        await asyncio.gather(w1.drain(), w2.drain())
    finally:
        await other.close()
    counts = Counter(seen)
    assert len(seen) == 200 and set(counts.values()) == {1}
    async with services.db.read() as conn:
        states = (await conn.execute(sa.select(deliveries.c.state, sa.func.count()).group_by(deliveries.c.state))).all()
    assert dict(states) == {"done": 200}
