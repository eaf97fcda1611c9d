"""Benchmark 3, fan-out: one post in a group whose members sit on 10,000 distinct servers.

``python -m bench.fanout [--servers 10000] [--transport default|httpx|aiohttp]``

Three processes: this one (set-up and figures), the receivers (10,000 listening
sockets: 100 loopback addresses 127.0.10.x times 100 ports, each one "server", all
answering 202 and recording what arrived), and Kith's worker (``server.jobs.build_worker``
with its real HTTP client, in its own process so that its peak RSS is its own). A
member's Create of a public Note is already stored in the inbox; on "go" the worker
takes the post, queues the group's two Announces (the Create wrapped, and the plain
object for Mastodon) to every member server, and delivers them, each signed at send
time. Only loopback addresses are ever targets.

Figures: deliveries per second, time from "go" until the last delivery arrived (and
until every server had its first), the worker's peak RSS, and the check that each
server received each Announce exactly once with a valid signature. Bare cost: a loop
that only signs the same requests, on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench import common
from bench.world import GROUP, actor_on, create_activity, insert_actors, insert_members, make_group

DB_NAME = "kith_bench_fanout"
DOMAIN = "127.0.0.1:9"  # the group's own URLs; nothing is served or fetched there
TARGET_RATE = 1500.0
TARGET_RSS_MIB = 300.0
TARGET_SECONDS = 10.0
PORTS_PER_ADDRESS = 100
# What the member servers run, as their NodeInfo says (per 100 servers): a group's members
# are mostly on Mastodon, with the threadiverse (Lemmy, Mbin, PieFed) and other
# microblogging servers beside it; "none" publishes no NodeInfo (404), like some small servers.
SOFTWARE_MIX = {
    "mastodon": 50,
    "lemmy": 12,
    "misskey": 6,
    "gotosocial": 5,
    "akkoma": 4,
    "mbin": 4,
    "pleroma": 3,
    "sharkey": 3,
    "friendica": 3,
    "piefed": 2,
    "none": 8,
}


def software_mix(servers: int) -> list[str]:
    """The software of server ``i`` (``none``: no NodeInfo), the same in every process of the run."""
    names = [name for name, per_100 in SOFTWARE_MIX.items() for _ in range(per_100)]
    mix = [names[i % len(names)] for i in range(servers)]
    random.Random(17).shuffle(mix)
    return mix


def expected_forms(software: str) -> frozenset[str]:
    """The Announces a server running ``software`` should get, by Kith's own rule (server.groups.forms)."""
    from server.groups import forms

    known = None if software == "none" else software
    return frozenset(
        f
        for f, keep in zip((forms.WRAPPED, forms.PLAIN), forms.wanted([forms.WRAPPED, forms.PLAIN], known), strict=True)
        if keep
    )


# -- the receivers ----------------------------------------------------------------------


@dataclass
class Arrival:
    authority: str
    at: float
    head: bytes
    body: bytes


@dataclass
class Inboxes:
    arrivals: list[Arrival] = field(default_factory=list)
    errors: int = 0
    software: dict[str, str] = field(default_factory=dict)  # authority -> what its NodeInfo names
    nodeinfo: int = 0  # NodeInfo requests answered
    connections: int = 0  # TCP connections accepted


class MemberInbox(asyncio.Protocol):
    """One connection to one loopback "server": read requests, record them, answer 202."""

    def __init__(self, authority: str, inboxes: Inboxes) -> None:
        self.authority = authority
        self.inboxes = inboxes
        self.buffer = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.inboxes.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            if head.startswith(b"GET "):
                self.inboxes.nodeinfo += 1
                self.transport.write(self._nodeinfo(head.split(b" ", 2)[1]))
                continue
            self.inboxes.arrivals.append(Arrival(self.authority, time.monotonic(), head, body))
            self.transport.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")

    def _nodeinfo(self, path: bytes) -> bytes:
        """NodeInfo as Mastodon serves it: the discovery document, then 2.0 naming the software."""
        software = self.inboxes.software.get(self.authority, "none")
        if software == "none" or path not in (b"/.well-known/nodeinfo", b"/nodeinfo/2.0"):
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        if path == b"/.well-known/nodeinfo":
            doc: dict[str, Any] = {
                "links": [
                    {
                        "rel": "http://nodeinfo.diaspora.software/ns/schema/2.0",
                        "href": f"http://{self.authority}/nodeinfo/2.0",
                    }
                ]
            }
        else:
            doc = {"version": "2.0", "software": {"name": software, "version": "1.0"}, "protocols": ["activitypub"]}
        body = json.dumps(doc).encode()
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
            len(body),
            body,
        )


def bind_all(addresses: int) -> tuple[int, list[socket.socket]]:
    """Listening sockets on 127.0.10.1-N times 100 consecutive ports; returns the first port."""
    for _ in range(20):
        base = random.randrange(20000, 30000 - PORTS_PER_ADDRESS)
        socks: list[socket.socket] = []
        try:
            for a in range(addresses):
                host = common.require_loopback(f"127.0.10.{1 + a}")
                for port in range(base, base + PORTS_PER_ADDRESS):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    socks.append(s)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((host, port))
                    s.listen(64)
                    s.setblocking(False)
            return base, socks
        except OSError:
            for s in socks:
                s.close()
    raise SystemExit("could not find 100 free consecutive ports on the loopback addresses")


async def _verify(
    arrivals: list[Arrival], key_id: str, owner: str, public_pem: str, software: dict[str, str]
) -> dict[str, Any]:
    """Check each request's signature and count what every server received."""
    from server.federation.httpsig import IncomingRequest, ResolvedKey, SignatureError, verify_request

    async def lookup(kid: str, *, refresh: bool) -> ResolvedKey | None:
        return ResolvedKey(key_id, owner, public_pem) if kid == key_id else None

    per_server: Counter[tuple[str, str]] = Counter()
    forms_by_server: dict[str, Counter[str]] = {}
    valid = 0
    for a in arrivals:
        lines = a.head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            await verify_request(IncomingRequest(method, f"http://{a.authority}{path}", headers, a.body), lookup)
            valid += 1
        except SignatureError:
            pass
        doc = json.loads(a.body)
        per_server[(a.authority, doc.get("id", ""))] += 1
        form = "wrapped" if isinstance(doc.get("object"), dict) else "plain"
        forms_by_server.setdefault(a.authority, Counter())[form] += 1
    times = sorted(a.at for a in arrivals)
    first_by_server: dict[str, float] = {}
    for a in arrivals:
        first_by_server[a.authority] = min(a.at, first_by_server.get(a.authority, a.at))
    return {
        "received": len(arrivals),
        "valid": valid,
        "servers": len({a.authority for a in arrivals}),
        "pairs": len(per_server),
        "duplicates": sum(n - 1 for n in per_server.values() if n > 1),
        "first": times[0] if times else None,
        "last": times[-1] if times else None,
        "all_servers_by": max(first_by_server.values()) if first_by_server else None,
        "announces": len({k[1] for k in per_server}),
        "expected": sum(len(expected_forms(software[a])) for a in forms_by_server),
        # Servers that got exactly the forms their software displays, each once.
        "right_forms": sum(
            1
            for a, got in forms_by_server.items()
            if set(got) == expected_forms(software[a]) and all(n == 1 for n in got.values())
        ),
    }


async def serve_members(addresses: int) -> tuple[list[asyncio.Server], Inboxes]:
    """Serve a member inbox on every port of ``addresses`` loopback addresses, each server with its
    software from the mix; print the base port for the parent. Shared with bench.busy."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    base, socks = bind_all(addresses)
    loop = asyncio.get_running_loop()
    mix = software_mix(len(socks))
    inboxes = Inboxes()
    servers = []
    for s in socks:
        host, port = s.getsockname()
        authority = f"{host}:{port}"
        inboxes.software[authority] = mix[(int(host.rsplit(".", 1)[1]) - 1) * PORTS_PER_ADDRESS + port - base]
        servers.append(await loop.create_server(lambda a=authority: MemberInbox(a, inboxes), sock=s))
    print(json.dumps({"base_port": base}), flush=True)
    return servers, inboxes


async def receivers(addresses: int) -> None:
    """Role: serve every inbox until told to report on stdin."""
    servers, inboxes = await serve_members(addresses)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    for server in servers:
        server.close()
    key = json.loads(line)
    # Without the survey Kith knows no server's software: every server should get both forms.
    software = inboxes.software if key["surveyed"] else dict.fromkeys(inboxes.software, "none")
    seen = await _verify(inboxes.arrivals, key["key_id"], key["owner"], key["public_pem"], software)
    print(json.dumps({**seen, "nodeinfo_requests": inboxes.nodeinfo}), flush=True)


# -- Kith's worker ------------------------------------------------------------------------


def _transport(name: str) -> Any:
    import httpx

    if name == "default":
        return None  # whatever server.federation.client.make_http_client builds
    if name == "httpx":
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30.0)
        return httpx.AsyncHTTPTransport(limits=limits)
    if name == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(limits=httpx.Limits(max_connections=200, keepalive_expiry=30.0), trust_env=False)
    raise SystemExit(f"unknown transport {name!r}")


async def worker(url: str, transport: str, limit: float) -> None:
    """Role: Kith's worker, started on "go" from stdin, until nothing is left to send."""
    import sqlalchemy as sa

    from server.jobs import build_worker
    from server.services import Services
    from server.settings import Settings
    from server.tables import deliveries, fanouts, inbox_items

    settings = Settings(
        domain=DOMAIN, scheme="http", database_url=url, allow_private_addresses=True, secret_key=common.SECRET
    )
    services = await Services.open(settings, transport=_transport(transport), migrate=False)
    try:
        kith_worker = build_worker(services)
        # The NodeInfo survey runs once, on "survey", before the clock: not on its schedule mid-run.
        from server.groups.survey import SoftwareSurvey

        kith_worker.periodic = [
            t for t in kith_worker.periodic if not isinstance(getattr(t, "__self__", None), SoftwareSurvey)
        ]
        print(json.dumps({"ready": True, "client": type(services.http._transport).__name__}), flush=True)
        order = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if order.strip() == "survey":
            # Members joined long before the post: the worker's NodeInfo survey has run by then.
            survey = SoftwareSurvey(
                services.db, services.fetcher, is_blocked=services.is_blocked, per_round=1_000_000, in_flight=100
            )
            started = time.monotonic()
            asked = await survey.run_once()
            print(json.dumps({"asked": asked, "seconds": time.monotonic() - started}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        wall0, t0 = time.time(), time.monotonic()
        cpu0 = common.cpu_seconds(os.getpid())  # the survey's share left out
        stop = asyncio.Event()

        async def until_empty() -> None:
            # Kith's own loop (``kith worker`` runs the same), stopped once no row is queued.
            while time.monotonic() - t0 < limit:
                await asyncio.sleep(0.1)
                async with services.db.read() as conn:
                    left = 0
                    for table in (inbox_items, fanouts, deliveries):
                        left += (
                            await conn.execute(
                                sa.select(sa.func.count()).select_from(table).where(table.c.state == "queued")
                            )
                        ).scalar_one()
                if left == 0:
                    break
            stop.set()

        await asyncio.gather(kith_worker.run_forever(stop), until_empty())
        t_end = time.monotonic()
        async with services.db.read() as conn:
            states = {
                f"{table.name} {state}": n
                for table in (fanouts, deliveries)
                for state, n in (
                    await conn.execute(sa.select(table.c.state, sa.func.count()).group_by(table.c.state))
                ).all()
            }
            queued_at = (await conn.execute(sa.select(sa.func.max(fanouts.c.created_at)))).scalar_one()
            errors = [
                r[0]
                for r in (
                    await conn.execute(
                        sa.select(deliveries.c.last_error).where(deliveries.c.last_error.is_not(None)).limit(3)
                    )
                ).all()
            ]
        report = {
            "t0": t0,
            "t_end": t_end,
            "enqueued_after": queued_at.timestamp() - wall0 if queued_at else None,
            "states": states,
            "errors": errors,
            "peak_rss_mib": common.peak_rss_mib(os.getpid()),
            "open_files": len(os.listdir("/proc/self/fd")),
            "cpu": common.cpu_seconds(os.getpid()) - cpu0,
        }
        print(json.dumps(report), flush=True)
    finally:
        await services.close()


# -- the run ------------------------------------------------------------------------------


async def _sessions() -> int:
    conn = await asyncpg.connect(common.database_url(DB_NAME))
    try:
        return int(await conn.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = $1", DB_NAME))
    finally:
        await conn.close()


def bare_signing(private_pem: str, key_id: str, inboxes: list[str], body: bytes) -> float:
    """Signatures per second on one core: the loop that only signs the same deliveries."""
    from server.federation.httpsig import sign_request

    key = common.private_key(private_pem)
    started = time.perf_counter()
    for inbox in inboxes:
        sign_request("POST", inbox, {"Content-Type": "application/activity+json"}, body, key_id=key_id, private_key=key)
    return len(inboxes) / (time.perf_counter() - started)


async def run(args: argparse.Namespace) -> bool:
    common.print_header("Fan-out (bench.fanout)", await common.postgres_version())
    addresses = (args.servers + PORTS_PER_ADDRESS - 1) // PORTS_PER_ADDRESS
    print(
        f"scenario:   one member's post in a group with members on {args.servers} servers "
        f"({addresses} loopback addresses x {PORTS_PER_ADDRESS} ports), the Announces each displays, "
        "signed at send time; "
        f"{args.workers} worker process(es), transport: {args.transport}"
    )
    sys.stdout.flush()
    keys = common.rsa_keypairs(1)
    url = await common.create_database(DB_NAME)
    inbox_proc = None
    worker_procs: list[subprocess.Popen[str]] = []
    ok = True
    try:
        inbox_proc = common.spawn("bench.fanout", "--role", "receivers", "--addresses", str(addresses))
        base = int(common.read_json(inbox_proc, 60)["base_port"])
        group_id = await make_group(url)
        actors = [
            actor_on(f"127.0.10.{1 + i // PORTS_PER_ADDRESS}:{base + i % PORTS_PER_ADDRESS}", f"member{i}", keys[0])
            for i in range(args.servers)
        ]
        group_uri = f"http://{DOMAIN}/groups/{GROUP}"
        create = create_activity(actors[0], group_uri, f"@{GROUP}@{DOMAIN}", 1)
        conn = await asyncpg.connect(url)
        try:
            await insert_members(conn, group_id, await insert_actors(conn, actors))
            now = await conn.fetchval("SELECT now()")
            await conn.execute(
                "INSERT INTO inbox_items (activity_uri, actor_uri, body, state, attempts, next_attempt_at, created_at) "
                "VALUES ($1, $2, $3, 'queued', 0, $4, $4)",
                create["id"],
                create["actor"],
                json.dumps(create),
                now,
            )
            await conn.execute("ANALYZE")
            group = await conn.fetchrow(
                "SELECT private_key_pem, public_key_pem FROM local_actors WHERE id = $1", group_id
            )
        finally:
            await conn.close()

        for _ in range(args.workers):
            worker_procs.append(
                common.spawn(
                    "bench.fanout",
                    "--role",
                    "worker",
                    "--database",
                    url,
                    "--transport",
                    args.transport,
                    "--limit",
                    str(args.limit),
                )
            )
        readies = [common.read_json(p, 60) for p in worker_procs]
        ready = readies[0]
        mix = Counter(software_mix(addresses * PORTS_PER_ADDRESS)[: args.servers])
        print(
            "software:   "
            + ", ".join(f"{name} {n}" for name, n in mix.most_common())
            + " (from NodeInfo; none: no NodeInfo)"
        )
        if args.nodeinfo:
            common.tell(worker_procs[0], "survey")
            surveyed = common.read_json(worker_procs[0], 600)
            print(
                f"survey:     {surveyed['asked']} servers asked for their NodeInfo in {surveyed['seconds']:.1f} s "
                "before the post (the worker's schedule, run once here)"
            )
            for p in worker_procs[1:]:
                common.tell(p, "no survey")
        else:
            print("survey:     none (--no-nodeinfo): software unknown, every server gets both Announces")
            for p in worker_procs:
                common.tell(p, "no survey")
        sys.stdout.flush()
        sessions_before = await _sessions()
        with common.Profiler(worker_procs[0].pid, args.profile):
            for p in worker_procs:
                common.tell(p, "go")
            reports = [common.read_json(p, args.limit + 60) for p in worker_procs]
        report = {
            **reports[0],
            "t0": min(r["t0"] for r in reports),
            "enqueued_after": min(r["enqueued_after"] for r in reports if r["enqueued_after"] is not None),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in reports),
            "cpu": sum(r["cpu"] for r in reports),
            "open_files": max(r["open_files"] for r in reports),
        }
        await asyncio.sleep(1.0)  # PostgreSQL publishes session counts about once a second
        sessions = await _sessions() - sessions_before
        key_id = f"{group_uri}#main-key"
        common.tell(
            inbox_proc,
            json.dumps(
                {"key_id": key_id, "owner": group_uri, "public_pem": group["public_key_pem"], "surveyed": args.nodeinfo}
            ),
        )
        seen = common.read_json(inbox_proc, 300)

        sign_rate = bare_signing(
            group["private_key_pem"],
            key_id,
            [a.shared_inbox for a in actors[: args.sign_sample]],
            json.dumps(create).encode(),
        )
        expected = seen["expected"]
        last = (seen["last"] - report["t0"]) if seen["last"] else float("nan")
        rate = seen["received"] / last if last == last and last > 0 else 0.0
        send_phase = (seen["last"] - seen["first"]) if seen["first"] else float("nan")
        print()
        print(f"client:     {ready['client']}")
        print(
            f"Kith worker  {rate:>7.0f} deliveries/s  ({seen['received']} deliveries, last one {last:.2f} s after go; "
            f"every server had its first by {seen['all_servers_by'] - report['t0']:.2f} s; "
            f"queued {report['enqueued_after']:.2f} s after go; sending phase {seen['received'] / send_phase:.0f}/s)"
        )
        print(
            f"memory:     worker peak RSS {report['peak_rss_mib']:.0f} MiB (the largest of {args.workers}); "
            f"worker CPU {report['cpu']:.1f} s in all ({1000 * report['cpu'] / max(1, seen['received']):.2f} ms "
            f"a delivery); {sessions} PostgreSQL connections opened during the run; "
            f"{report['open_files']} file descriptors open at the end (idle keep-alive connections)"
        )
        print(f"bare cost:  {sign_rate:.0f} signatures/s on one core (sign_request, RSA-2048)")
        print(f"ratio:      deliveries/s / signatures/s = {rate / sign_rate:.2f}")
        exact = (
            seen["received"] == expected == seen["pairs"] == seen["valid"]
            and seen["duplicates"] == 0
            and seen["servers"] == args.servers == seen["right_forms"]
        )
        print(
            f"received:   {seen['received']} requests at {seen['servers']} servers ({expected} expected: the forms "
            f"each server's software displays, both where unknown), {seen['announces']} distinct Announces, "
            f"{seen['duplicates']} duplicates, {seen['valid']} valid signatures, {seen['right_forms']} servers with "
            f"exactly their forms; {seen['nodeinfo_requests']} NodeInfo requests; queue rows "
            f"{report['states']}{'; errors ' + str(report['errors']) if report['errors'] else ''}: "
            f"{'each server received each Announce it displays exactly once' if exact else 'MISMATCH'}"
        )
        checks = [
            (f"rate >= {TARGET_RATE:.0f}/s", rate >= TARGET_RATE),
            (f"peak RSS < {TARGET_RSS_MIB:.0f} MB", report["peak_rss_mib"] * 1.048576 < TARGET_RSS_MIB),
            (f"{args.servers} servers reached < {TARGET_SECONDS:.0f} s", last < TARGET_SECONDS),
            ("exactly once", exact),
        ]
        print("targets:    " + "; ".join(f"{name}: {'met' if met else 'MISSED'}" for name, met in checks))
        ok = all(met for _, met in checks)
    finally:
        for p in worker_procs:
            common.stop(p)
        common.stop(inbox_proc)
        await common.drop_database(DB_NAME)
        common.print_footer()
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=10000, help="member servers (default 10000)")
    parser.add_argument(
        "--transport",
        default="default",
        choices=["default", "httpx", "aiohttp"],
        help="the worker's HTTP transport (default: what make_http_client builds)",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes, like `kith worker` x N (default 1)")
    parser.add_argument("--limit", type=float, default=300.0, help="give the worker at most this many seconds")
    parser.add_argument(
        "--no-nodeinfo",
        dest="nodeinfo",
        action="store_false",
        help="skip the NodeInfo survey: every server's software unknown, both Announces to each (the old way)",
    )
    parser.add_argument("--sign-sample", type=int, default=5000, help="signatures in the bare loop (default 5000)")
    parser.add_argument("--profile", metavar="FILE", help="record the worker with py-spy (raw stacks) to FILE")
    parser.add_argument("--role", choices=["main", "receivers", "worker"], default="main", help=argparse.SUPPRESS)
    parser.add_argument("--addresses", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "receivers":
        common.run(receivers(args.addresses))
    elif args.role == "worker":
        common.run(worker(args.database, args.transport, args.limit))
    else:
        common.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
