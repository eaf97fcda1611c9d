"""Fan-out: one queued row per group activity, sent to every member server from it."""

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from server.federation.httpsig import IncomingRequest, ResolvedKey, verify_request
from server.groups.fanout import Fanout, LeaseLost
from server.groups.following import member_inboxes
from server.groups.membership import GroupSpec, create_group
from server.groups.redistribute import redistribute
from server.jobs import build_worker
from server.rows import record
from server.services import Services
from server.tables import deliveries, fanouts
from server.types import utcnow
from tests.fakes.members import add_members


async def _members(services, group, hosts, *, shared=True):
    """An accepted member on each host (two on the first, sharing its inbox)."""
    members = [(f"https://{host}/users/m{n}", f"https://{host}/inbox" if shared else None)
               for n, host in enumerate([hosts[0], *hosts])]  # fmt: skip
    await add_members(services.db, group.id, members)


def _inbox(group, seen, status=202):
    """A remote shared inbox that checks the group's signature, records what came, answers ``status``."""

    async def lookup(key_id, *, refresh):
        return ResolvedKey(key_id, "https://kith.test/groups/g", group.public_key_pem)

    async def handler(request: httpx.Request) -> httpx.Response:
        await verify_request(
            IncomingRequest(request.method, str(request.url), dict(request.headers), request.content), lookup
        )
        seen.append((request.url.host, json.loads(request.content)["id"]))
        return httpx.Response(status)

    return handler


async def _post(services, group, n=1) -> list[str]:
    """Queue ``n`` group activities to the members, as redistribution does; returns their ids."""
    ids = []
    async with services.db.transaction() as conn:
        for i in range(n):
            sent = await redistribute(conn, services, group, f"https://kith.test/objects/{i}", post_id=None)
            ids.extend(a["id"] for a in sent)
    return ids


async def _fanout_rows(services):
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(fanouts).order_by(fanouts.c.id))).all()


async def test_one_row_reaches_every_member_server_once(services, network):
    group = await create_group(services.db, GroupSpec(name="g"))
    hosts = [f"s{i}.example" for i in range(12)]
    seen = []
    for host in hosts:
        network.add_handler(host, _inbox(group, seen))
    await _members(services, group, hosts)
    [activity_id] = await _post(services, group)
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(deliveries))).scalar_one() == 0
    await build_worker(services).drain()
    assert sorted(seen) == sorted((h, activity_id) for h in hosts)  # one per server, the shared inbox
    [row] = await _fanout_rows(services)
    assert (row.state, row.sent, row.failed, row.cursor) == ("done", 12, 0, "https://s9.example/inbox")
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(deliveries))).scalar_one() == 0


async def test_inboxes_that_did_not_take_it_become_delivery_rows(services, network):
    group = await create_group(services.db, GroupSpec(name="g"))
    answers = {"ok.example": 202, "gone.example": 410, "bad.example": 400, "down.example": 500}
    seen = []
    for host, status in answers.items():
        network.add_handler(host, _inbox(group, seen, status))
    await _members(services, group, list(answers))
    await _post(services, group)
    worker = build_worker(services)
    await worker.drain()
    [row] = await _fanout_rows(services)
    assert (row.state, row.sent, row.failed) == ("done", 1, 3)
    async with services.db.read() as conn:
        rows = (await conn.execute(sa.select(deliveries))).all()
    states = {r.inbox: r.state for r in rows}
    assert states == {
        "https://gone.example/inbox": "gone",
        "https://bad.example/inbox": "dead",
        "https://down.example/inbox": "queued",
    }
    down = next(r for r in rows if r.domain == "down.example")
    assert down.attempts == 1 and down.created_at == row.created_at and down.next_attempt_at > datetime.now(UTC)
    # The delivery queue retries it like any other delivery once it is due.
    network.add_handler("down.example", _inbox(group, seen, 202))
    async with services.db.transaction() as conn:
        await conn.execute(sa.update(deliveries).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
    await worker.drain()
    assert Counter(h for h, _ in seen)["down.example"] == 2
    assert {r.inbox: r.state for r in await _deliveries(services)}["https://down.example/inbox"] == "done"


async def _deliveries(services):
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(deliveries))).all()


async def test_resumes_after_its_cursor(services, network):
    """A worker killed mid-fan-out leaves a cursor; the next one sends only past it."""
    group = await create_group(services.db, GroupSpec(name="g"))
    hosts = [f"s{i}.example" for i in range(10)]
    seen = []
    for host in hosts:
        network.add_handler(host, _inbox(group, seen))
    await _members(services, group, hosts)
    await _post(services, group)
    async with services.db.transaction() as conn:
        await conn.execute(sa.update(fanouts).values(cursor="https://s4.example/inbox", sent=5))
    await build_worker(services).drain()
    assert sorted(h for h, _ in seen) == ["s5.example", "s6.example", "s7.example", "s8.example", "s9.example"]
    [row] = await _fanout_rows(services)
    assert (row.state, row.sent) == ("done", 10)


async def test_a_lost_lease_stops_it_writing(services, network):
    group = await create_group(services.db, GroupSpec(name="g"))
    seen = []
    network.add_handler("down.example", _inbox(group, seen, 500))
    await _members(services, group, ["down.example"])
    await _post(services, group)
    worker = build_worker(services)
    fanout = next(k for k in worker.kinds if k.name == "fanout")
    [row] = await services.db.claim_due(fanouts, now=utcnow(), limit=5, lease=timedelta(minutes=5))
    claimed = record(Fanout, row)
    async with services.db.transaction() as conn:  # another worker took it over after our lease ran out
        await conn.execute(sa.update(fanouts).values(lease_until=utcnow() + timedelta(minutes=9)))
    with pytest.raises(LeaseLost):
        await fanout.run(claimed)
    assert len(seen) == 1  # sent before it learned, at the checkpoint ...
    assert await _deliveries(services) == []  # ... which then wrote nothing
    [row] = await _fanout_rows(services)
    assert row.cursor is None and row.state == "queued"


async def test_members_blocked_or_gone_since_it_was_queued_get_nothing(services, network):
    group = await create_group(services.db, GroupSpec(name="g"))
    seen = []
    for host in ("ok.example", "evil.example"):
        network.add_handler(host, _inbox(group, seen))
    await _members(services, group, ["ok.example", "evil.example"])
    await _post(services, group)
    services.is_blocked = lambda host: host == "evil.example"
    await build_worker(services).drain()
    assert [h for h, _ in seen] == ["ok.example"] and network.sent_to("evil.example") == []
    async with services.db.read() as conn:
        assert await member_inboxes(conn, group.id, is_blocked=services.is_blocked) == ["https://ok.example/inbox"]


async def test_personal_inbox_when_no_shared_one(services, network):
    group = await create_group(services.db, GroupSpec(name="g"))
    seen = []
    network.add_handler("solo.example", _inbox(group, seen))
    await _members(services, group, ["solo.example"], shared=False)
    async with services.db.read() as conn:
        assert await member_inboxes(conn, group.id) == [
            "https://solo.example/users/m0/inbox",
            "https://solo.example/users/m1/inbox",
        ]


async def test_two_workers_never_send_twice(settings, services, network):
    group = await create_group(services.db, GroupSpec(name="g"))
    hosts = [f"s{i}.example" for i in range(15)]
    seen = []
    for host in hosts:
        network.add_handler(host, _inbox(group, seen))
    await _members(services, group, hosts)
    ids = await _post(services, group, n=8)
    other = await Services.open(settings, transport=network, migrate=False)
    try:
        w1, w2 = build_worker(services), build_worker(other)
        for w in (w1, w2):
            next(k for k in w.kinds if k.name == "fanout").batch = 1  # so the two interleave
        await asyncio.gather(w1.drain(), w2.drain())
    finally:
        await other.close()
    assert Counter(seen) == Counter((h, i) for h in hosts for i in ids)
    assert {r.state for r in await _fanout_rows(services)} == {"done"}


async def test_a_large_fan_out_is_split_into_ranges(services, network):
    group = await create_group(services.db, GroupSpec(name="g"))
    hosts = [f"s{i:02}.example" for i in range(10)]
    seen = []
    for host in hosts:
        network.add_handler(host, _inbox(group, seen))
    await _members(services, group, hosts)
    [activity_id] = await _post(services, group)
    worker = build_worker(services)
    fanout = next(k for k in worker.kinds if k.name == "fanout")
    fanout.run.range_size = 3
    await worker.drain()
    assert sorted(seen) == sorted((h, activity_id) for h in hosts)
    rows = await _fanout_rows(services)
    assert [(r.cursor, r.until, r.sent, r.state) for r in rows] == [
        ("https://s02.example/inbox", "https://s02.example/inbox", 3, "done"),
        ("https://s05.example/inbox", "https://s05.example/inbox", 3, "done"),
        ("https://s08.example/inbox", "https://s08.example/inbox", 3, "done"),
        ("https://s09.example/inbox", None, 1, "done"),
    ]


async def test_a_posts_announces_go_in_order_to_each_server(services, network):
    """Announce(Create) then the plain Announce: one fan-out, each server gets both, in order."""
    group = await create_group(services.db, GroupSpec(name="g"))
    hosts = ["a.example", "b.example", "c.example"]
    seen = []
    for host in hosts:
        network.add_handler(host, _inbox(group, seen))
    network.add_handler("down.example", lambda request: httpx.Response(503))
    await _members(services, group, [*hosts, "down.example"])
    async with services.db.transaction() as conn:
        create = {"id": "https://m.example/create/1", "type": "Create", "object": "https://m.example/note/1"}
        sent = await redistribute(conn, services, group, create, post_id=None, plain_object="https://m.example/note/1")
    assert len(await _fanout_rows(services)) == 1
    await build_worker(services).drain()
    for host in hosts:
        assert [i for h, i in seen if h == host] == [sent[0]["id"], sent[1]["id"]]
    # The server that answered nothing got one try; both wait for the same retry.
    assert len(network.sent_to("down.example")) == 1
    rows = await _deliveries(services)
    assert sorted((r.inbox, r.state) for r in rows) == [("https://down.example/inbox", "queued")] * 2
    assert len({r.next_attempt_at for r in rows}) == 1
    [row] = await _fanout_rows(services)
    assert (row.sent, row.failed) == (3, 1)
