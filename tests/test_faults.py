"""Faults: remote inboxes that fail every way we know of, driven through the real worker and sender.

Each test runs real deliveries (a group's fan-out to members on several servers, or the
delivery queue) and checks that every one ends as the answer matrix says (README, "Groups";
docs/architecture.md): 2xx done; 410 gone; 429/503 retry at ``Retry-After``; other 4xx dead;
5xx and network errors (timeouts, resets, names that do not resolve) back off, for three
days. Nothing is lost, nothing is taken twice but by the documented retry, and one dead
server does not hold up the others. Status faults answer through the in-process network
(``tests/fakes/network.py``); faults only a socket shows (a reset, a slow drip, a server
slower than our deadline) come from real loopback servers (``tests/fakes/faulty.py``).

Time that the queue waits (Retry-After, backoff, three days, an open circuit) passes on
a ``Clock`` that the worker, sender, delivery queue and fan-out read instead of the wall.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import sqlalchemy as sa

import server.federation.delivery
import server.federation.outbound
import server.federation.sender
import server.groups.fanout
import server.groups.redistribute
import server.worker
from server.federation.client import Fetcher, FetchFailed, default_transport, make_http_client
from server.federation.httpsig import IncomingRequest, ResolvedKey, verify_request
from server.federation.sender import CIRCUIT_THRESHOLD, PER_SERVER
from server.federation.urls import UrlGuard
from server.groups.membership import GroupSpec, create_group
from server.groups.redistribute import redistribute
from server.jobs import build_worker
from server.services import Services
from server.tables import deliveries, fanouts, server_health
from tests.fakes.faulty import FaultyServer
from tests.fakes.members import add_members


class Clock:
    """The wall clock plus an offset that tests move forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance_to(self, when: datetime) -> None:
        if when > self.now():
            self.offset += when - self.now()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Every module of the send path reads this clock."""
    c = Clock()
    for module in (
        server.worker,
        server.federation.sender,
        server.federation.delivery,
        server.federation.outbound,
        server.groups.fanout,
        server.groups.redistribute,
    ):
        monkeypatch.setattr(module, "utcnow", c.now)
    return c


async def _members(services: Services, group, inboxes: list[str]) -> None:
    """An accepted member whose shared inbox is each of ``inboxes``."""
    await add_members(
        services.db, group.id, [(f"{inbox.rsplit('/', 1)[0]}/users/m{n}", inbox) for n, inbox in enumerate(inboxes)]
    )


async def _post(services: Services, group, n: int = 0) -> list[str]:
    """A new post's fan-out: the Announce of the Create, then the plain Announce; their ids."""
    create = {"id": f"https://m.example/create/{n}", "type": "Create", "object": f"https://m.example/note/{n}"}
    async with services.db.transaction() as conn:
        sent = await redistribute(conn, services, group, create, post_id=None, plain_object=create["object"])
    return [a["id"] for a in sent]


class Inboxes:
    """In-process remote inboxes that verify the group's signature and answer from a script."""

    def __init__(self, group) -> None:
        self.group = group
        self.taken: list[tuple[str, str]] = []  # (host, activity id) answered 2xx
        self.asked: Counter[str] = Counter()  # requests per host, whatever the answer

    def add(self, network, host: str, *answers) -> None:
        """Serve ``host``: the n-th request gets ``answers[n]`` (the last repeats).

        An answer is a status, ``(status, headers)``, or an exception class to raise
        (no answer at all: a timeout, a reset).
        """

        async def lookup(key_id, *, refresh):
            return ResolvedKey(key_id, "https://kith.test/groups/g", self.group.public_key_pem)

        async def handler(request: httpx.Request) -> httpx.Response:
            await verify_request(
                IncomingRequest(request.method, str(request.url), dict(request.headers), request.content), lookup
            )
            answer = answers[min(self.asked[host], len(answers) - 1)]
            self.asked[host] += 1
            if isinstance(answer, type) and issubclass(answer, Exception):
                raise answer("scripted fault", request=request)
            status, headers = answer if isinstance(answer, tuple) else (answer, {})
            if 200 <= status < 300:
                self.taken.append((host, json.loads(request.content)["id"]))
            return httpx.Response(status, headers=headers)

        network.add_handler(host, handler)


async def _rows(services: Services) -> dict[tuple[str, int], sa.Row]:
    async with services.db.read() as conn:
        rows = (await conn.execute(sa.select(deliveries))).all()
    return {(r.domain, r.activity_id): r for r in rows}


async def _next_due(services: Services, now: datetime) -> datetime | None:
    """When every queued row is due: the latest retry time, or the end of the circuit that holds a row."""
    async with services.db.read() as conn:
        queued = (
            await conn.execute(
                sa.select(deliveries.c.next_attempt_at, server_health.c.open_until)
                .select_from(deliveries.outerjoin(server_health, server_health.c.domain == deliveries.c.domain))
                .where(deliveries.c.state == "queued")
            )
        ).all()
    if not queued:
        return None
    return max(max(r.next_attempt_at, r.open_until or r.next_attempt_at, now) for r in queued)


async def _settle(services: Services, worker, clock: Clock, rounds: int = 40) -> int:
    """Drain, then move the clock on until every queued row is due and drain again, until nothing is queued."""
    for n in range(rounds):
        await worker.drain()
        due = await _next_due(services, clock.now())
        if due is None:
            return n
        clock.advance_to(due + timedelta(seconds=1))
    raise AssertionError(f"still queued after {rounds} rounds")


@pytest.fixture
async def public_services(settings, network):
    """Services as in production (private addresses refused, names resolved), on the in-process network.

    Every name resolves to a public address, except those under ``unresolvable.example``.
    """

    async def resolver(host: str, port: int) -> list[str]:
        if host.endswith("unresolvable.example"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return ["93.184.216.34"]

    svc = await Services.open(
        dataclasses.replace(settings, allow_private_addresses=False),
        transport=network,
        resolver=resolver,
        migrate=False,
    )
    yield svc
    await svc.close()


async def test_a_fan_out_meets_every_fault_and_each_delivery_ends_as_the_matrix_says(public_services, network, clock):
    services = public_services
    group = await create_group(services.db, GroupSpec(name="g"))
    inboxes = Inboxes(group)
    start = clock.now()
    later = (start + timedelta(seconds=300)).replace(microsecond=0)
    script = {
        "ok.example": (202,),
        "gone.example": (410,),
        "forbidden.example": (403,),
        "missing.example": (404,),
        "unprocessable.example": (422,),
        "busy.example": ((429, {"Retry-After": "120"}), 202),
        "later.example": ((503, {"Retry-After": format_datetime(later, usegmt=True)}), 202),
        "down.example": (500, 502, 202),
        "timeout.example": (httpx.ReadTimeout, 202),
        "reset.example": (httpx.ReadError, 202),
        "refused.example": (httpx.ConnectError, 202),
    }
    for host, answers in script.items():
        inboxes.add(network, host, *answers)
    hosts = [*script, "nowhere.example", "unresolvable.example"]  # nobody answers; a name that never resolves
    await _members(services, group, [f"https://{h}/inbox" for h in hosts])
    activity_ids = await _post(services, group)
    worker = build_worker(services)

    await worker.drain()  # the fan-out: one try each
    rows = await _rows(services)
    pk_of = await _pks(services, activity_ids)
    first = {domain: row.state for (domain, _), row in rows.items()}
    assert first == {
        "gone.example": "gone",
        "forbidden.example": "dead",
        "missing.example": "dead",
        "unprocessable.example": "dead",
        "busy.example": "queued",
        "later.example": "queued",
        "down.example": "queued",
        "timeout.example": "queued",
        "reset.example": "queued",
        "refused.example": "queued",
        "nowhere.example": "queued",
        "unresolvable.example": "queued",  # DNS trouble is retried, not a refusal
    }
    # Retry-After is obeyed to the second, in seconds and as an HTTP date, for both activities.
    busy = [rows["busy.example", pk].next_attempt_at - start for pk in pk_of.values()]
    assert all(timedelta(seconds=120) <= d < timedelta(seconds=125) for d in busy), busy
    assert {rows["later.example", pk].next_attempt_at for pk in pk_of.values()} == {later}
    # A server that gave no answer (or asked us to wait) was tried with the first activity only.
    for host in ("busy.example", "later.example", "down.example", "timeout.example", "reset.example"):
        assert inboxes.asked[host] == 1, host
    assert network.sent_to("unresolvable.example") == []

    # Nothing is due before its time.
    clock.advance_to(start + timedelta(seconds=20))
    await worker.drain()
    assert inboxes.asked["busy.example"] == 1 and inboxes.asked["later.example"] == 1

    await _settle(services, worker, clock)
    rows = await _rows(services)
    final = {(domain, pk): row.state for (domain, pk), row in rows.items()}
    ended = {
        "gone.example": "gone",
        "forbidden.example": "dead",
        "missing.example": "dead",
        "unprocessable.example": "dead",
        "busy.example": "done",
        "later.example": "done",
        "down.example": "done",
        "timeout.example": "done",
        "reset.example": "done",
        "refused.example": "done",
        "nowhere.example": "dead",
        "unresolvable.example": "dead",
    }
    assert final == {(domain, pk): state for domain, state in ended.items() for pk in pk_of.values()}
    for pk in pk_of.values():
        assert rows["nowhere.example", pk].last_error.startswith("gave up after")
        assert rows["unresolvable.example", pk].last_error.startswith("gave up after")
        assert rows["nowhere.example", pk].finished_at - start >= timedelta(days=3)
    # None lost, none taken twice: every server that takes deliveries took each activity once.
    takers = ["ok.example", "busy.example", "later.example", "down.example", "timeout.example", "reset.example"]
    assert Counter(inboxes.taken) == Counter({(h, a): 1 for h in [*takers, "refused.example"] for a in activity_ids})
    # And no more requests than the matrix allows: the refusing servers once per activity,
    # the waiting ones once (the fan-out) plus once per activity when due; 500 and 502
    # came back, the second on one of the two retries, so that one took a third try.
    assert inboxes.asked["ok.example"] == 2
    for host in ("gone.example", "forbidden.example", "missing.example", "unprocessable.example"):
        assert inboxes.asked[host] == 2, host
    for host in ("busy.example", "later.example", "timeout.example", "reset.example", "refused.example"):
        assert inboxes.asked[host] == 3, host
    assert inboxes.asked["down.example"] == 4
    [fanout] = await _fanouts(services)
    assert (fanout.state, fanout.sent, fanout.failed) == ("done", 1, len(hosts) - 1)


async def _pks(services: Services, activity_ids: list[str]) -> dict[str, int]:
    from server.tables import outbound_activities

    async with services.db.read() as conn:
        rows = (await conn.execute(sa.select(outbound_activities.c.id, outbound_activities.c.uri))).all()
    return {r.uri: r.id for r in rows if r.uri in activity_ids}


async def _fanouts(services: Services) -> list[sa.Row]:
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(fanouts).order_by(fanouts.c.id))).all()


async def test_a_fan_out_whose_last_inboxes_fail_keeps_their_failure_rows(services, network, clock):
    """Sends that finish while a checkpoint is being written are recorded by a later one, even the last."""
    group = await create_group(services.db, GroupSpec(name="g"))
    inboxes = Inboxes(group)
    ok = [f"a{i}.example" for i in range(6)]
    for host in ok:
        inboxes.add(network, host, 202)
    failing = {"z1.example": 500, "z2.example": 410, "z3.example": 400}
    for host, status in failing.items():
        inboxes.add(network, host, status)
    await _members(services, group, [f"https://{h}/inbox" for h in [*ok, *failing]])
    activity_ids = await _post(services, group)
    worker = build_worker(services)
    fanout = next(k for k in worker.kinds if k.name == "fanout").run
    fanout.checkpoint_seconds = 0.01

    async def send_one(row, inbox, loaded, real=fanout._send_one):
        if "//a" in inbox:
            await asyncio.sleep(0.02 * int(inbox.split("//a")[1][0]))  # the healthy ones answer over 0.1 s
        return await real(row, inbox, loaded)

    async def checkpoint(row, run, real=fanout._checkpoint):
        await real(row, run)
        await asyncio.sleep(0.1)  # a busy database: sends finish while a checkpoint is being written

    fanout._send_one = send_one
    fanout._checkpoint = checkpoint
    await worker.drain()
    [row] = await _fanouts(services)
    assert (row.state, row.sent, row.failed, row.cursor) == ("done", 6, 3, "https://z3.example/inbox")
    rows = await _rows(services)
    pks = (await _pks(services, activity_ids)).values()
    states = {key: r.state for key, r in rows.items()}
    assert states == {
        **{("z1.example", pk): "queued" for pk in pks},
        **{("z2.example", pk): "gone" for pk in pks},
        **{("z3.example", pk): "dead" for pk in pks},
    }


async def test_one_outage_opens_the_circuit_once_and_spares_other_servers(services, network, clock, caplog):
    """Deliveries to a server that answers nothing, after a while, among deliveries to healthy ones."""
    group = await create_group(services.db, GroupSpec(name="g"))
    finished: dict[str, list[float]] = {"dead": [], "ok": []}
    started = time.monotonic()
    n = 12
    healthy_all_done = asyncio.Event()

    async def dead(request: httpx.Request) -> httpx.Response:
        # No answer until every healthy delivery is in (or 10 s, if they were held up behind this).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(healthy_all_done.wait(), timeout=10)
        await asyncio.sleep(0.05)
        finished["dead"].append(time.monotonic() - started)
        raise httpx.ConnectTimeout("no answer", request=request)

    def healthy(request: httpx.Request) -> httpx.Response:
        finished["ok"].append(time.monotonic() - started)
        if len(finished["ok"]) == 8 * n:
            healthy_all_done.set()
        return httpx.Response(202)

    network.add_handler("dead.example", dead)
    for i in range(8):
        network.add_handler(f"ok{i}.example", healthy)
    async with services.db.transaction() as conn:
        from server.federation.delivery import enqueue

        for i in range(n):
            activity = {
                "id": f"https://kith.test/activities/{i}",
                "type": "Announce",
                "actor": "https://kith.test/groups/g",
            }
            inboxes = ["https://dead.example/inbox", *[f"https://ok{j}.example/inbox" for j in range(8)]]
            await enqueue(conn, services.db, activity=activity, actor_id=group.id, inboxes=inboxes)
    caplog.set_level(logging.WARNING, logger="kith.delivery")
    worker = build_worker(services)
    next(k for k in worker.kinds if k.name == "delivery").batch = 200  # all of them in one batch
    opened_at = clock.now()
    await worker.run_once()
    # Every healthy delivery went out at once, while the dead server's first requests hung.
    assert len(finished["ok"]) == 8 * n
    assert max(finished["ok"]) < min(finished["dead"])
    # Requests in flight when the circuit opened could still fail; none was sent after.
    assert CIRCUIT_THRESHOLD <= len(finished["dead"]) <= CIRCUIT_THRESHOLD + PER_SERVER - 1
    # It opened once, for the time the first opening gives (60 s, with jitter), and was logged once.
    opened = [r for r in caplog.records if "circuit open for dead.example" in r.getMessage()]
    assert len(opened) == 1, [r.getMessage() for r in opened]
    async with services.db.read() as conn:
        health = (await conn.execute(sa.select(server_health).where(server_health.c.domain == "dead.example"))).one()
    assert health.failures == CIRCUIT_THRESHOLD
    assert timedelta(seconds=45) < health.open_until - opened_at < timedelta(seconds=75)
    states = Counter(r.state for r in (await _rows(services)).values())
    assert states == Counter({"done": 8 * n, "queued": n})


@pytest.fixture
async def loopback_services(services, monkeypatch):
    """Real sockets: the default aiohttp transport, 1 s reads and a 2 s deadline per request."""
    transport = default_transport()
    http = make_http_client(transport=transport, timeout=1.0)
    services.fetcher = Fetcher(http, services.guard, transport=transport, deadline=2.0)
    yield services
    await http.aclose()


async def test_real_sockets_reset_drip_hang_and_slow_servers(loopback_services, clock):
    """Faults only a socket shows, each on its own loopback server, in one fan-out."""
    services = loopback_services
    group = await create_group(services.db, GroupSpec(name="g"))
    servers = {
        "ok": FaultyServer("status", status=202),
        "reset": FaultyServer("reset"),
        "hang": FaultyServer("hang"),
        "drip": FaultyServer("drip"),  # headers a byte at a time: never a status
        "drip-body": FaultyServer("drip-body"),  # 202 at once, then the body a byte at a time
        "slow": FaultyServer("slow", delay=3.5),  # answers 202, after our deadline
    }
    async with (
        servers["ok"],
        servers["reset"],
        servers["hang"],
        servers["drip"],
        servers["drip-body"],
        servers["slow"],
    ):
        await _members(services, group, [s.inbox for s in servers.values()])
        await _post(services, group)
        worker = build_worker(services)
        began = time.monotonic()
        await asyncio.wait_for(worker.drain(), timeout=20)
        took = time.monotonic() - began
        assert took < 6, f"one fan-out round took {took:.1f} s: something held a delivery past its deadline"
        rows = await _rows(services)
        state = {s: {r.state for (d, _), r in rows.items() if d == servers[s].authority} for s in servers}
        # 202 taken (a body still dripping at the deadline does not undo it); the rest retried.
        assert state == {
            "ok": set(),
            "drip-body": set(),
            "reset": {"queued"},
            "hang": {"queued"},
            "drip": {"queued"},
            "slow": {"queued"},
        }
        errors = {r.last_error for r in rows.values()}
        assert errors == {"network error"}
        # Each faulty server got the first activity only; the second waits with it.
        assert {s: len(servers[s].requests) for s in servers} == {
            "ok": 2,
            "drip-body": 2,
            "reset": 1,
            "hang": 1,
            "drip": 1,
            "slow": 1,
        }
        for s in ("reset", "hang", "drip", "slow"):
            servers[s].behaviour = "status"  # they come back
        await asyncio.wait_for(_settle(services, worker, clock), timeout=20)
        rows = await _rows(services)
        assert {r.state for r in rows.values()} == {"done"} and len(rows) == 8
        # The slow server saw the first activity twice: it took it after we had given up,
        # which is the documented cost of a deadline (receivers de-duplicate by id).
        assert {s: len(servers[s].requests) for s in servers} == {
            "ok": 2,
            "drip-body": 2,
            "reset": 3,
            "hang": 3,
            "drip": 3,
            "slow": 3,
        }


async def test_a_server_that_hangs_does_not_hold_up_deliveries_queued_after_it(services, network):
    """The worker's delivery loops: while one batch waits on a server that does not answer,
    deliveries queued meanwhile to healthy servers go out at once, not after that batch."""
    group = await create_group(services.db, GroupSpec(name="g"))
    released = asyncio.Event()
    arrived: dict[str, float] = {}

    async def hanging(request: httpx.Request) -> httpx.Response:
        await released.wait()  # answers nothing until the test lets it time out
        raise httpx.ReadTimeout("no answer", request=request)

    def healthy(request: httpx.Request) -> httpx.Response:
        arrived[json.loads(request.content)["id"]] = time.monotonic()
        return httpx.Response(202)

    network.add_handler("hung.example", hanging)
    network.add_handler("ok.example", healthy)

    async def queue(name: str, inbox: str) -> None:
        from server.federation.delivery import enqueue

        activity = {
            "id": f"https://kith.test/activities/{name}",
            "type": "Announce",
            "actor": "https://kith.test/groups/g",
        }
        async with services.db.transaction() as conn:
            await enqueue(conn, services.db, activity=activity, actor_id=group.id, inboxes=[inbox])

    await queue("first", "https://hung.example/inbox")
    worker = build_worker(services)
    stop = asyncio.Event()
    running = asyncio.ensure_future(worker.run_forever(stop))
    try:
        for _ in range(200):  # until the hung delivery is in flight
            if network.sent_to("hung.example"):
                break
            await asyncio.sleep(0.01)
        assert network.sent_to("hung.example")
        await queue("second", "https://ok.example/inbox")
        queued_at = time.monotonic()
        worker.wake.set()  # as the code that queues it does
        for _ in range(300):
            if arrived:
                break
            await asyncio.sleep(0.01)
        assert "https://kith.test/activities/second" in arrived, "waited for the hung server's batch"
        assert arrived["https://kith.test/activities/second"] - queued_at < 2.0
    finally:
        released.set()
        stop.set()
        await asyncio.wait_for(running, timeout=10)
    states = {r.domain: r.state for r in (await _rows(services)).values()}
    assert states == {"hung.example": "queued", "ok.example": "done"}


@pytest.mark.parametrize("behaviour", ["drip", "hang"])
async def test_a_fetch_from_a_server_that_drips_or_hangs_ends_at_the_deadline(behaviour):
    """GETs (actors, objects) have the same overall deadline as deliveries."""
    transport = default_transport()
    async with make_http_client(transport=transport, timeout=1.0) as http, FaultyServer(behaviour) as remote:
        fetcher = Fetcher(http, UrlGuard(allow_private=True), transport=transport, deadline=1.5)
        began = time.monotonic()
        with pytest.raises(FetchFailed, match="timed out"):
            await asyncio.wait_for(fetcher.get_json(remote.inbox), timeout=10)
        assert time.monotonic() - began < 3
