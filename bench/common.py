"""What every benchmark shares: the machine header, scratch databases, server processes,
a lean loopback HTTP load generator, percentiles and resource readings.

Nothing here is a test. Every target a benchmark talks to is checked to be a loopback
address (127.0.0.0/8 or ::1) before a byte is sent, and every loop is bounded in count
and in time.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("KITH_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
LOOPBACK = "127.0.0.1"
SECRET = "bench-secret-key-0123456789abcdef"


# -- safety ---------------------------------------------------------------------------


def require_loopback(host: str) -> str:
    """``host`` unchanged if it is a loopback address literal; anything else stops the benchmark."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise SystemExit(f"refusing to target {host!r}: benchmarks only talk to loopback address literals") from None
    if not address.is_loopback:
        raise SystemExit(f"refusing to target {host!r}: not a loopback address")
    return host


# -- the machine ----------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


async def postgres_version(url: str = PG_ADMIN_URL) -> str:
    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def database_version(kind: str = "postgres") -> str:
    """What the header names as the database: ``PostgreSQL 15.20 (...)`` or ``SQLite 3.40.1 (...)``."""
    if kind == "sqlite":
        return (
            f"SQLite {sqlite3.sqlite_version} (a file in {tempfile.gettempdir()}, WAL, synchronous=NORMAL, "
            "as Kith opens it)"
        )
    return f"PostgreSQL {await postgres_version()} (127.0.0.1, same machine)"


def machine_lines(database: str) -> list[str]:
    """The machine a run happened on, as printed at the top of every benchmark.

    ``database``: what :func:`database_version` says, or a bare PostgreSQL version.
    """
    if database[:1].isdigit():
        database = f"PostgreSQL {database} (127.0.0.1, same machine)"
    load = os.getloadavg()
    return [
        f"machine:    {_cpu_model()}, {os.cpu_count()} cores, {_ram_gib():.1f} GiB RAM, {platform.system()} "
        f"{platform.release()}",
        f"software:   Python {platform.python_version()}, {database}",
        f"load avg:   {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start (other work on the machine adds noise)",
    ]


def print_header(title: str, database: str) -> None:
    print(f"== {title} ==")
    for line in machine_lines(database):
        print(line)
    sys.stdout.flush()


def print_footer() -> None:
    load = os.getloadavg()
    print(f"load avg:   {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at end")
    sys.stdout.flush()


# -- scratch databases ----------------------------------------------------------------


DATABASES = ("postgres", "sqlite")


def add_database_argument(parser: Any) -> None:
    """``--database postgres|sqlite``: which database Kith (and the bare cost) runs on."""
    parser.add_argument(
        "--database",
        choices=DATABASES,
        default="postgres",
        help="postgres (a scratch database beside KITH_BENCH_POSTGRES_URL) or sqlite (a scratch file); "
        "default postgres",
    )


def database_url(name: str, kind: str = "postgres") -> str:
    if kind == "sqlite":
        return f"sqlite:///{_sqlite_path(name)}"
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _sqlite_path(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"{name}-{os.getuid()}" / "kith.db"


async def create_database(name: str, *, migrate: bool = True, kind: str = "postgres") -> str:
    """Drop (if left over) and create database ``name``, migrated to head; returns its URL.

    ``kind="sqlite"``: a fresh file under the temporary directory instead.
    """
    if not name.replace("_", "").isalnum():
        raise ValueError(f"bad database name {name!r}")
    if kind == "sqlite":
        await drop_database(name, kind)
        _sqlite_path(name).parent.mkdir(mode=0o700)
        url = database_url(name, kind)
        if migrate:
            from server.db import Database

            db = Database(url)
            try:
                await db.migrate()
            finally:
                await db.dispose()
        return url
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = database_url(name)
    if migrate:
        from server.db import Database

        db = Database(url)
        try:
            await db.migrate()
        finally:
            await db.dispose()
    return url


async def drop_database(name: str, kind: str = "postgres") -> None:
    if kind == "sqlite":
        shutil.rmtree(_sqlite_path(name).parent, ignore_errors=True)
        return
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class SqliteConn:
    """A SQLite file behind asyncpg's few methods the benchmarks' setup and checks use.

    Setup and checks only (never timed), so the calls block. ``$1`` placeholders become
    SQLite's ``?1``; aware datetimes are stored as SQLAlchemy stores them for Kith (naive
    UTC text), so Kith reads these rows as its own; ``= ANY($1::text[])`` with a list reads
    the list as a JSON array.
    """

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
            self.conn.execute(f"PRAGMA {pragma}")

    @staticmethod
    def _sql(sql: str) -> str:
        # PostgreSQL's "= ANY($1::text[])" becomes a JSON array read back by json_each.
        sql = re.sub(r"=\s*ANY\(\$(\d+)::\w+\[\]\)", r"IN (SELECT value FROM json_each(?\1))", sql)
        return re.sub(r"\$(\d+)", r"?\1", sql)

    @staticmethod
    def _value(value: Any) -> Any:
        if isinstance(value, list):
            return json.dumps(value)
        if isinstance(value, datetime):
            return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    async def execute(self, sql: str, *args: Any) -> str:
        self.conn.execute(self._sql(sql), [self._value(a) for a in args])
        return "OK"

    async def fetch(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return self.conn.execute(self._sql(sql), [self._value(a) for a in args]).fetchall()

    async def fetchrow(self, sql: str, *args: Any) -> sqlite3.Row | None:
        return self.conn.execute(self._sql(sql), [self._value(a) for a in args]).fetchone()

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]

    async def copy_records_to_table(self, table: str, *, records: Iterable[Sequence[Any]], columns: list[str]) -> None:
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        self.conn.execute("BEGIN")
        self.conn.executemany(sql, ([self._value(v) for v in r] for r in records))
        self.conn.execute("COMMIT")

    async def close(self) -> None:
        self.conn.close()


async def copy_table(conn: Any, table: str, copy: str) -> None:
    """Create table ``copy`` shaped like ``table``: columns, constraints and indexes (for bare costs)."""
    if isinstance(conn, SqliteConn):
        # As PostgreSQL's LIKE ... INCLUDING ALL: no foreign keys; indexes renamed to stay unique.
        ddl = "SELECT type, sql FROM sqlite_master WHERE tbl_name = $1 AND sql NOTNULL ORDER BY type DESC"
        for kind, sql in await conn.fetch(ddl, table):
            if kind == "table":
                sql = re.sub(r",\s*CONSTRAINT \w+ FOREIGN KEY[^,\n]*", "", sql)
                sql = re.sub(rf'^CREATE TABLE "?{table}"?', f"CREATE TABLE {copy}", sql)
            else:
                sql = re.sub(r"^CREATE (UNIQUE )?INDEX (\w+) ON \w+", rf"CREATE \1INDEX {copy}_\2 ON {copy}", sql)
            await conn.execute(sql)
    else:
        await conn.execute(f"CREATE TABLE {copy} (LIKE {table} INCLUDING ALL)")


async def connect(url: str) -> Any:
    """A plain connection to a scratch database: asyncpg's, or :class:`SqliteConn` with the same methods."""
    if url.startswith("sqlite:///"):
        return SqliteConn(url[len("sqlite:///") :])
    return await asyncpg.connect(url)


# -- keys -----------------------------------------------------------------------------


def _one_keypair(_: int) -> tuple[str, str]:
    from server.federation.keys import generate_rsa_keypair

    pair = generate_rsa_keypair()
    return pair.private_pem, pair.public_pem


def rsa_keypairs(n: int) -> list[tuple[str, str]]:
    """``n`` RSA-2048 key pairs (private PEM, public PEM).

    Generating one takes ~60 ms of CPU, so they are made on every core and kept in
    ``~/.cache/kith-bench`` (outside the repository) for the next run.
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kith-bench" / "rsa2048.json"
    have: list[list[str]] = []
    if cache.is_file():
        try:
            have = json.loads(cache.read_text())
        except ValueError:
            have = []
    if len(have) < n:
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            have.extend([list(p) for p in pool.map(_one_keypair, range(n - len(have)), chunksize=16)])
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(have))
    return [(p[0], p[1]) for p in have[:n]]


@functools.lru_cache(maxsize=4096)
def private_key(pem: str) -> Any:
    """Load a private key we generated ourselves, skipping the slow RSA consistency check."""
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem.encode(), password=None, unsafe_skip_rsa_key_validation=True)


# -- processes ------------------------------------------------------------------------


def free_port(host: str = LOOPBACK) -> int:
    """A free port below the ephemeral range, so outgoing connections do not take it meanwhile."""
    require_loopback(host)
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port between 20000 and 32000 on loopback")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time used so far by a process and all its descendants (a server with worker processes)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    family, grew = {pid}, True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in family and child not in family:
                family.add(child)
                grew = True
    total = 0.0
    for member in family:
        try:
            total += cpu_seconds(member)
        except (OSError, IndexError, ValueError):
            continue
    return total


def cpu_seconds_of(name: str) -> float:
    """CPU time used so far by every process whose command name is ``name`` (e.g. ``postgres``)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == name:
                total += cpu_seconds(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return total


def bench_env() -> dict[str, str]:
    """This environment, with the repository on the path (servers run in a scratch directory)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}


def spawn(module: str, *args: str) -> subprocess.Popen[str]:
    """``python -m module args`` as a child that talks JSON lines on stdin and stdout."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=bench_env(),
        text=True,
    )


def read_json(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The next JSON object line the child prints (other lines are skipped), within ``timeout``."""
    import selectors

    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"process {proc.args} ended without answering")
                if line.startswith("{"):
                    return dict(json.loads(line))
    raise TimeoutError(f"no answer from {proc.args} within {timeout} s")


def tell(proc: subprocess.Popen[str], text: str) -> None:
    """Write one line to the child's stdin."""
    assert proc.stdin is not None
    proc.stdin.write(text + "\n")
    proc.stdin.flush()


def stop(proc: subprocess.Popen[str] | None) -> None:
    """Terminate the child if it still runs (killed after 15 s)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def kith_env(database: str, domain: str) -> dict[str, str]:
    env = {
        **bench_env(),
        "KITH_DATABASE_URL": database,
        "KITH_DOMAIN": domain,
        "KITH_SCHEME": "http",
        "KITH_ALLOW_PRIVATE_ADDRESSES": "1",
        "KITH_SECRET_KEY": SECRET,
    }
    return env


@dataclass
class ServerProcess:
    """A server under test in its own process, stopped by ``stop`` (SIGTERM, then SIGKILL)."""

    argv: list[str]
    port: int
    env: dict[str, str] = field(default_factory=lambda: bench_env())
    ready_path: str = "/"
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _workdir: tempfile.TemporaryDirectory[str] | None = None

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self._workdir = tempfile.TemporaryDirectory(prefix="kith-bench-")
        self.log_path = Path(self._workdir.name) / "server.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=self._workdir.name, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[:4]} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=1) as s:
                    s.sendall(f"GET {self.ready_path} HTTP/1.1\r\nHost: {LOOPBACK}:{self.port}\r\n\r\n".encode())
                    if s.recv(12).startswith(b"HTTP/1.1"):
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.argv[:4]} did not answer within {timeout} s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def log_lines(self) -> int:
        return len(self.log_path.read_bytes().splitlines()) if self.log_path and self.log_path.exists() else 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None


def kith_server(database: str, port: int, workers: int = 1, *, with_worker: bool = False) -> ServerProcess:
    """``python -m server serve --no-worker`` on 127.0.0.1:``port`` (``--workers N`` web processes if N > 1;
    ``with_worker``: without ``--no-worker``, the worker in the same process as ``kith serve`` runs it by default)."""
    argv = [sys.executable, "-m", "server", "serve", "--host", LOOPBACK, "--port", str(port)]
    if not with_worker:
        argv.insert(4, "--no-worker")
    if workers > 1:
        argv += ["--workers", str(workers)]
    return ServerProcess(argv, port, kith_env(database, f"{LOOPBACK}:{port}"), "/.well-known/nodeinfo")


class Profiler:
    """``py-spy record`` of a process while a block runs (``--profile``; needs py-spy installed)."""

    def __init__(self, pid: int, path: str | None) -> None:
        self.pid, self.path = pid, path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        if self.path:
            self.proc = subprocess.Popen(
                ["py-spy", "record", "-p", str(self.pid), "-o", self.path, "--format", "raw", "-r", "200"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            print(f"profile:    {self.path} (py-spy raw stacks of pid {self.pid})")


# -- numbers --------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


# -- a lean HTTP/1.1 load generator -----------------------------------------------------


@dataclass
class Result:
    """One request's fate: status (0 for a transport failure) and latency in seconds."""

    index: int
    status: int
    latency: float
    body: bytes = b""


class _Conn(asyncio.Protocol):
    """A keep-alive HTTP/1.1 client connection that sends one request at a time.

    Lean on purpose, so the load generator takes little of the CPU the server needs:
    requests are prebuilt bytes, responses must carry Content-Length (Starlette's do).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._try_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionError("closed by the server")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.lost)

    def _try_complete(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None or self.waiter.done():
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif name.strip().lower() == "transfer-encoding":
                self.waiter.set_exception(RuntimeError("chunked responses are not supported here"))
                return
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        self.waiter.set_result((status, body))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.lost is not None or self.transport is None:
            raise ConnectionError("connection is closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


async def run_load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    concurrency: int,
    timeout: float = 120.0,
    keep_bodies: bool = False,
) -> tuple[list[Result], float]:
    """Send every request over ``concurrency`` keep-alive connections; returns results and wall time.

    Each connection takes the next unsent request as soon as its previous one is
    answered (a closed loop), so ``concurrency`` requests are in flight at all times.
    """
    require_loopback(host)
    loop = asyncio.get_running_loop()
    results: list[Result] = []
    position = 0

    async def connection() -> None:
        nonlocal position
        conn: _Conn | None = None
        while position < len(requests):
            index = position
            position += 1
            if conn is None or conn.lost is not None:
                transport, conn = await loop.create_connection(_Conn, host, port)
                conn.transport = transport
                sock = transport.get_extra_info("socket")
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            started = time.perf_counter()
            try:
                status, body = await conn.request(requests[index])
            except (ConnectionError, OSError, RuntimeError):
                status, body = 0, b""
            results.append(Result(index, status, time.perf_counter() - started, body if keep_bodies else b""))
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    started = time.perf_counter()
    async with asyncio.timeout(timeout):
        await asyncio.gather(*(connection() for _ in range(min(concurrency, len(requests)))))
    return results, time.perf_counter() - started


def http_request(method: str, path: str, host: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """Raw HTTP/1.1 request bytes (keep-alive)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def summarize(results: Sequence[Result], wall: float) -> dict[str, Any]:
    latencies = [r.latency for r in results]
    statuses: dict[int, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return {
        "n": len(results),
        "wall": wall,
        "rate": len(results) / wall if wall else float("nan"),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "statuses": statuses,
    }


def run(main: Any) -> Any:
    """Run a coroutine on uvloop (as uvicorn runs the servers) when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
