"""Kill: signed Creates under load while the web process and the worker are SIGKILLed and restarted.

``python -m bench.kill [--activities 1000] [--servers 8] [--rate 100]``

A fresh PostgreSQL database; ``kith serve --no-worker`` and ``kith worker`` (the ``kith``
beside this Python, so the code of this checkout) as processes of their own; a group with
members on ``--servers`` loopback servers (two members each, one shared inbox) that this
process runs and that answer 202 to every delivery. Members send ``--activities`` signed
Creates (real RSA signatures, the members' keys in Kith's cache) at ``--rate`` per second,
a few at once; a request that gets no 202 is sent again, as a remote server would retry
it. A third of the way in the web process is SIGKILLed and restarted; two thirds in, once
the worker holds a lease (it is mid-job), the worker is SIGKILLed, the leases it held are
expired (what five minutes would do) and it is restarted. Then the run waits until every
queue is empty.

Checked: every activity that got a 202 was processed exactly once (one inbox row, done;
one post; one fan-out), and every member server received each of the group's Announces
with a valid signature, exactly once, except the Announces of fan-outs the killed worker
held: those may arrive twice (the sends after the fan-out's last checkpoint go out again;
receivers de-duplicate by id), never more. ``tests/test_kill.py`` runs the same scenario
with 200 activities.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import common
from bench.common import LOOPBACK
from bench.world import GROUP, RemoteActor, actor_on, create_activity, insert_actors, insert_members, make_group

QUEUES = ("inbox_items", "fanouts", "deliveries")


def kith_command() -> list[str]:
    """The ``kith`` console script of this Python's environment (else ``python -m server``)."""
    found = shutil.which("kith", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "server"]


# -- the member servers -----------------------------------------------------------------


class _Inbox(asyncio.Protocol):
    """One connection to one member server: record each POST, answer 202."""

    def __init__(self, authority: str, arrivals: list[tuple[str, bytes, bytes]]) -> None:
        self.authority = authority
        self.arrivals = arrivals
        self.buffer = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
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
            if head.startswith(b"GET "):  # the worker's NodeInfo survey: these servers publish none
                self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                continue
            self.arrivals.append((self.authority, head, body))
            self.transport.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")


@dataclass
class Members:
    """The member servers on loopback, and every request they received."""

    authorities: list[str] = field(default_factory=list)
    arrivals: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    servers: list[asyncio.Server] = field(default_factory=list)

    async def start(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(n):
            port = common.free_port()
            authority = f"{LOOPBACK}:{port}"
            server = await loop.create_server(lambda a=authority: _Inbox(a, self.arrivals), LOOPBACK, port)
            self.servers.append(server)
            self.authorities.append(authority)

    def close(self) -> None:
        for server in self.servers:
            server.close()


# -- the processes --------------------------------------------------------------------


class Worker:
    """``kith worker`` in a process of its own, its output in a log file."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="kith-kill-")
        self.log_path = Path(self._dir.name) / "worker.log"
        self.starts = 0
        self.cpu_before = 0.0  # CPU seconds of the processes killed

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*kith_command(), "worker"], env=self.env, cwd=self._dir.name, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kith worker exited with {self.proc.returncode}:\n{self.log()}")
            if self.log().count("kith worker started") > self.starts:
                self.starts += 1
                return
            time.sleep(0.05)
        raise RuntimeError(f"kith worker did not start within {timeout} s:\n{self.log()}")

    def cpu(self) -> float:
        """CPU seconds the running process has used so far."""
        assert self.proc is not None
        return common.cpu_seconds(self.proc.pid)

    def kill(self) -> None:
        assert self.proc is not None
        self.cpu_before += self.cpu()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._dir.cleanup()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def web_process(url: str, port: int) -> common.ServerProcess:
    argv = [*kith_command(), "serve", "--no-worker", "--host", LOOPBACK, "--port", str(port)]
    return common.ServerProcess(argv, port, common.kith_env(url, f"{LOOPBACK}:{port}"), "/.well-known/nodeinfo")


# -- the load -------------------------------------------------------------------------


@dataclass
class Load:
    """Signed Creates to send, and what became of each (the last status seen; 0: no answer)."""

    ids: list[str]
    requests: list[tuple[dict[str, str], bytes]]
    status: dict[str, int] = field(default_factory=dict)
    tries: int = 0

    @property
    def answered(self) -> int:
        return sum(1 for s in self.status.values() if s == 202)


def build_load(actors: list[RemoteActor], domain: str, n: int) -> Load:
    """``n`` Creates, round-robin over the members, each signed by its author."""
    from server.federation.httpsig import sign_request

    group_uri = f"http://{domain}/groups/{GROUP}"
    url = f"http://{domain}/inbox"
    ids, requests = [], []
    for i in range(n):
        actor = actors[i % len(actors)]
        activity = create_activity(actor, group_uri, f"@{GROUP}@{domain}", i, words=20)
        body = json.dumps(activity, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/activity+json"}
        headers |= sign_request(
            "POST", url, headers, body, key_id=actor.key_id, private_key=common.private_key(actor.private_pem)
        )
        ids.append(activity["id"])
        requests.append((headers, body))
    return Load(ids, requests)


async def send_load(load: Load, port: int, *, rate: float, concurrency: int = 4, give_up: float = 120.0) -> None:
    """Send every request, paced at ``rate`` per second; each until it gets a 202 (or a 4xx)."""
    started = time.monotonic()
    queue = iter(enumerate(zip(load.ids, load.requests, strict=True)))

    async def one(client: httpx.AsyncClient) -> None:
        for i, (activity_id, (headers, body)) in queue:
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            while time.monotonic() - started < give_up:
                load.tries += 1
                try:
                    response = await client.post(f"http://{LOOPBACK}:{port}/inbox", headers=headers, content=body)
                    load.status[activity_id] = response.status_code
                except httpx.HTTPError:
                    load.status[activity_id] = 0
                if load.status[activity_id] == 202 or 400 <= load.status[activity_id] < 500:
                    break
                await asyncio.sleep(0.1)  # the server is down: try again shortly, as a remote would later

    limits = httpx.Limits(max_keepalive_connections=0)  # a fresh connection per request, as many senders would
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
        await asyncio.gather(*(one(client) for _ in range(concurrency)))


# -- the run --------------------------------------------------------------------------


@dataclass
class Figures:
    """What a run sent, what Kith took and processed, and what the member servers received."""

    activities: int = 0
    tries: int = 0
    accepted: int = 0  # activities that got a 202
    not_accepted: dict[str, int] = field(default_factory=dict)
    inbox_rows: int = 0
    inbox_done: int = 0
    posts: int = 0
    posts_duplicated: int = 0
    fanouts: int = 0
    announces: int = 0
    deliveries_expected: int = 0
    deliveries_made: int = 0  # requests the member servers received
    delivered: int = 0  # distinct (server, Announce) pairs received
    missing: int = 0
    duplicates: int = 0  # (server, Announce) pairs received more than once
    duplicates_allowed: int = 0  # of those, Announces of a fan-out the killed worker held
    most_copies: int = 0
    bad_signatures: int = 0
    queued_left: dict[str, int] = field(default_factory=dict)
    web_killed_after: int = 0  # 202s before the web process was killed
    worker_killed_after: int = 0
    leased_at_kill: dict[str, int] = field(default_factory=dict)
    web_down: float = 0.0  # from SIGKILL to answering again
    worker_down: float = 0.0
    setup: float = 0.0  # database, group, members, signed requests, both processes up
    worker_cpu: float = 0.0  # CPU seconds of the worker processes, the killed one included
    load_seconds: float = 0.0  # from the first Create to the last 202
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"activities: {self.activities} sent ({self.tries} requests with retries), {self.accepted} got 202"
            + (f", not accepted: {self.not_accepted}" if self.not_accepted else ""),
            f"kills:      web SIGKILLed after {self.web_killed_after} 202s, worker after {self.worker_killed_after} "
            f"(holding leases: {self.leased_at_kill})",
            f"processed:  {self.inbox_done}/{self.inbox_rows} inbox rows done, {self.posts} posts "
            f"({self.posts_duplicated} duplicated), {self.fanouts} fan-outs, {self.announces} Announces",
            f"deliveries: {self.deliveries_expected} expected, {self.deliveries_made} made, {self.delivered} distinct, "
            f"{self.missing} missing, {self.duplicates} duplicated ({self.duplicates_allowed} of them from fan-outs "
            f"the killed worker held; most copies {self.most_copies}), {self.bad_signatures} bad signatures",
            f"time:       setup {self.setup:.1f} s; web down {self.web_down:.1f} s, worker down "
            f"{self.worker_down:.1f} s; last 202 after "
            f"{self.load_seconds:.1f} s, last delivery after {self.seconds:.1f} s (from the first Create)",
            f"worker CPU: {self.worker_cpu:.1f} s ({self.worker_cpu / max(1, self.deliveries_made) * 1e3:.2f} ms per "
            f"delivery made, processing included)",
            f"left:       {self.queued_left} queued",
        ]


async def _leased(conn: asyncpg.Connection) -> dict[str, int]:
    return {
        q: await conn.fetchval(f"SELECT count(*) FROM {q} WHERE state = 'queued' AND lease_until > now()")
        for q in QUEUES
    }


async def _until(check: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(step)
    return check()


async def kill_worker_mid_job(conn: asyncpg.Connection, worker: Worker, figures: Figures) -> list[int]:
    """SIGKILL the worker once it holds a lease; expire its leases; restart it. The fan-outs it held."""
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and not any((await _leased(conn)).values()):
        await asyncio.sleep(0.01)
    worker.kill()
    killed = time.monotonic()
    figures.leased_at_kill = await _leased(conn)
    held = await conn.fetch("SELECT activity_ids FROM fanouts WHERE state = 'queued' AND lease_until IS NOT NULL")
    # What five minutes would do: the dead worker's leases run out, and another may take its rows.
    for q in QUEUES:
        await conn.execute(f"UPDATE {q} SET lease_until = now() - interval '1 second' WHERE lease_until IS NOT NULL")
    await asyncio.to_thread(worker.start)
    figures.worker_down = time.monotonic() - killed
    return [pk for row in held for pk in json.loads(row["activity_ids"])]


async def wait_until_settled(conn: asyncpg.Connection, members: Members, timeout: float) -> dict[str, int]:
    """Wait until no queue has a queued row and the member servers have been quiet for a moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {q: await conn.fetchval(f"SELECT count(*) FROM {q} WHERE state = 'queued'") for q in QUEUES}
        if not any(left.values()):
            seen = len(members.arrivals)
            await asyncio.sleep(0.3)
            if len(members.arrivals) == seen:
                return left
        await asyncio.sleep(0.2)
    return left


async def check(conn: asyncpg.Connection, load: Load, members: Members, held: list[int], figures: Figures) -> None:
    """Fill in what Kith processed and what the member servers received."""
    from server.federation.httpsig import IncomingRequest, ResolvedKey, verify_request

    accepted = {a for a, s in load.status.items() if s == 202}
    figures.accepted = len(accepted)
    figures.not_accepted = dict(Counter(s for s in load.status.values() if s != 202))
    items = await conn.fetch("SELECT activity_uri, state FROM inbox_items")
    figures.inbox_rows = sum(1 for r in items if r["activity_uri"] in accepted)
    figures.inbox_done = sum(1 for r in items if r["activity_uri"] in accepted and r["state"] == "done")
    notes = {a.rsplit("/activity", 1)[0] for a in accepted}
    posts = Counter(r["uri"] for r in await conn.fetch("SELECT uri FROM posts"))
    figures.posts = sum(1 for uri in notes if posts[uri] >= 1)
    figures.posts_duplicated = sum(1 for c in posts.values() if c > 1) + sum(1 for uri in posts if uri not in notes)
    figures.fanouts = await conn.fetchval("SELECT count(*) FROM fanouts")
    group = await conn.fetchrow("SELECT public_key_pem FROM local_actors WHERE kind = 'group' AND name = $1", GROUP)
    announces = await conn.fetch("SELECT id, uri FROM outbound_activities WHERE type = 'Announce'")
    figures.announces = len(announces)
    uris = {r["uri"] for r in announces}
    allowed = {r["uri"] for r in announces if r["id"] in set(held)}
    figures.deliveries_expected = len(uris) * len(members.authorities)
    figures.deliveries_made = len(members.arrivals)

    async def lookup(key_id: str, *, refresh: bool) -> ResolvedKey:
        return ResolvedKey(key_id, key_id.split("#")[0], group["public_key_pem"])

    received: Counter[tuple[str, str]] = Counter()
    for authority, head, body in members.arrivals:
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        path = lines[0].split(" ")[1]
        try:
            await verify_request(IncomingRequest("POST", f"http://{authority}{path}", headers, body), lookup)
        except Exception:  # any failure to verify counts against the run
            figures.bad_signatures += 1
        received[authority, json.loads(body)["id"]] += 1
    expected = {(a, uri) for a in members.authorities for uri in uris}
    figures.delivered = len(expected & set(received))
    figures.missing = len(expected - set(received))
    twice = [key for key, n in received.items() if n > 1]
    figures.duplicates = len(twice)
    figures.duplicates_allowed = sum(1 for _, uri in twice if uri in allowed)
    figures.most_copies = max(received.values(), default=0)


async def run_scenario(activities: int, servers: int, rate: float, *, timeout: float = 120.0) -> Figures:
    """The whole scenario on a fresh database of its own, dropped at the end; returns the figures."""
    figures = Figures(activities=activities)
    began = time.monotonic()
    name = f"kith_kill_{uuid.uuid4().hex[:10]}"
    url = await common.create_database(name)
    members = Members()
    web = worker = conn = None
    try:
        await members.start(servers)
        port = common.free_port()
        domain = f"{LOOPBACK}:{port}"
        group_id = await make_group(url)
        keys = common.rsa_keypairs(2 * servers)
        actors = [actor_on(a, f"m{i}{j}", keys[2 * i + j]) for i, a in enumerate(members.authorities) for j in range(2)]
        conn = await asyncpg.connect(url)
        await insert_members(conn, group_id, await insert_actors(conn, actors))
        load = build_load(actors, domain, activities)
        web, worker = web_process(url, port), Worker(common.kith_env(url, domain))
        await asyncio.gather(asyncio.to_thread(web.start), asyncio.to_thread(worker.start))
        figures.setup = time.monotonic() - began
        started = time.monotonic()
        sending = asyncio.ensure_future(send_load(load, port, rate=rate))
        await _until(lambda: load.answered >= activities // 3 or sending.done(), timeout)
        figures.web_killed_after = load.answered
        assert web.proc is not None
        web.proc.send_signal(signal.SIGKILL)
        web.proc.wait(timeout=10)
        killed = time.monotonic()
        web.stop()  # only cleans up: the process is gone
        await asyncio.sleep(0.3)
        await asyncio.to_thread(web.start)
        figures.web_down = time.monotonic() - killed
        await _until(lambda: load.answered >= 2 * activities // 3 or sending.done(), timeout)
        figures.worker_killed_after = load.answered
        held = await kill_worker_mid_job(conn, worker, figures)
        await sending
        figures.load_seconds = time.monotonic() - started
        figures.queued_left = await wait_until_settled(conn, members, timeout)
        figures.seconds = time.monotonic() - started
        figures.worker_cpu = worker.cpu_before + worker.cpu()
        figures.tries = load.tries
        await check(conn, load, members, held, figures)
    finally:
        members.close()
        if conn is not None:
            await conn.close()
        for process in (web, worker):
            if process is not None:
                process.stop()
        await common.drop_database(name)
    return figures


def passed(figures: Figures) -> list[str]:
    """What the run got wrong (empty: every promise kept)."""
    wrong = []
    if figures.accepted != figures.activities:
        wrong.append("not every activity got a 202 in the end")
    if not (figures.inbox_rows == figures.inbox_done == figures.posts == figures.fanouts == figures.accepted):
        wrong.append("not every accepted activity was processed exactly once")
    if figures.posts_duplicated:
        wrong.append("posts duplicated")
    if figures.announces != 2 * figures.posts:
        wrong.append("not two Announces per post")
    if figures.missing or figures.bad_signatures:
        wrong.append("deliveries missing or badly signed")
    if figures.duplicates != figures.duplicates_allowed or figures.most_copies > 2:
        wrong.append("deliveries duplicated beyond the killed worker's fan-outs")
    if any(figures.queued_left.values()):
        wrong.append("rows still queued")
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kill", description=__doc__.split("\n")[0])
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=8, help="member servers (two members each)")
    parser.add_argument("--rate", type=float, default=100.0, help="Creates sent per second")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for each phase")
    args = parser.parse_args(argv)
    common.print_header("Kill (bench.kill)", asyncio.run(common.postgres_version()))
    print(
        f"scenario:   {args.activities} signed Creates at {args.rate:.0f}/s from {2 * args.servers} members on "
        f"{args.servers} servers; web SIGKILLed at 1/3, worker at 2/3 (mid-job); both restarted"
    )
    sys.stdout.flush()
    figures = asyncio.run(run_scenario(args.activities, args.servers, args.rate, timeout=args.timeout))
    for line in figures.lines():
        print(line)
    wrong = passed(figures)
    print("result:     " + ("every promise kept" if not wrong else "; ".join(wrong)))
    common.print_footer()
    return 0 if not wrong else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
