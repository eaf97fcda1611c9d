"""``kith check``: a new install's self-test, run from the server's own shell.

It asks the server through its public URL (``KITH_SCHEME://KITH_DOMAIN``), as a remote
server would, and compares the answers with what the database holds: that the name
resolves, that WebFinger answers through it with this server's own instance key (not
another machine's), that the proxy passes ``Host`` and the scheme through, that the
database is reachable and migrated, that a worker is alive, and that the clocks agree
(signatures older or newer than a few minutes are refused by other servers).
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa

from server.db import Database
from server.errors import KithError
from server.instance import HEARTBEAT_EVERY, ensure_instance, last_heartbeat
from server.links import Links
from server.settings import Settings
from server.types import utcnow

#: Clocks further apart than this break signatures at some servers (Mastodon allows one hour
#: back and a few minutes forward; several others allow less).
CLOCK_TOLERANCE = timedelta(seconds=60)


@dataclass(frozen=True)
class Finding:
    """One check's verdict, in a line a person can act on."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


def compare_seen(settings: Settings, seen: dict[str, str]) -> Finding:
    """The host and scheme a request arrived with, after the proxy, against the settings."""
    host, scheme = seen.get("host", ""), seen.get("scheme", "")
    if host.lower() != settings.domain:
        detail = f"requests arrive with Host {host!r}, not {settings.domain!r}: pass the Host header through the proxy"
        return Finding("proxy", False, detail)
    if scheme != settings.scheme:
        detail = f"requests arrive as {scheme}, not {settings.scheme}: set X-Forwarded-Proto at the proxy"
        return Finding("proxy", False, detail)
    return Finding("proxy", True, f"Host {host} and scheme {scheme} arrive as configured")


def compare_clock(name: str, theirs: datetime, ours: datetime) -> Finding:
    """Two clocks within ``CLOCK_TOLERANCE`` of each other."""
    skew = abs((theirs - ours).total_seconds())
    ok = skew <= CLOCK_TOLERANCE.total_seconds()
    return Finding("clock", ok, f"{name} differs from this machine's by {skew:.1f} s" + ("" if ok else ": fix NTP"))


async def _database(db: Database) -> Finding:
    try:
        current, head = await asyncio.wait_for(db.schema_revisions(), 10)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Finding("database", False, f"{db.safe_url} does not answer: {first}")
    if current != head:
        detail = f"schema at {current or 'nothing'}, this Kith needs {head}: run `kith migrate`"
        return Finding("database", False, detail)
    return Finding("database", True, f"{db.safe_url} answers, schema {head} is current")


async def _resolves(settings: Settings) -> Finding:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(settings.host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        return Finding("dns", False, f"{settings.host} does not resolve: {exc}")
    addresses = sorted({str(info[4][0]) for info in infos})
    return Finding("dns", True, f"{settings.host} resolves to {', '.join(addresses)}")


async def _webfinger(settings: Settings, db: Database, http: httpx.AsyncClient) -> list[Finding]:
    links = Links(settings.base_url)
    resource = f"acct:{settings.host}@{settings.domain}"
    try:
        jrd = await http.get(f"{links.base}/.well-known/webfinger", params={"resource": resource})
        jrd.raise_for_status()
        href = next(x["href"] for x in jrd.json()["links"] if x.get("rel") == "self")
        doc = await http.get(href, headers={"Accept": "application/activity+json"})
        doc.raise_for_status()
        served_key = doc.json()["publicKey"]["publicKeyPem"]
    except (httpx.HTTPError, KeyError, StopIteration, ValueError, TypeError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [Finding("webfinger", False, f"{links.base} does not answer WebFinger for {resource}: {why}")]
    instance = await ensure_instance(db)
    if served_key.strip() != instance.public_key_pem.strip():
        detail = f"{links.base} answers with another server's instance key: KITH_DOMAIN points elsewhere"
        return [Finding("webfinger", False, detail)]
    found = [Finding("webfinger", True, f"{links.base} answers WebFinger and serves this server's instance actor")]
    try:
        seen = await http.get(f"{links.base}/healthz", params={"seen": "1"})
        found.append(compare_seen(settings, seen.json()["seen"]))
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        found.append(Finding("proxy", False, f"{links.base}/healthz does not answer: {exc}"))
    date = doc.headers.get("date")
    if date:
        served_at = email.utils.parsedate_to_datetime(date)
        found.append(compare_clock(f"the Date of {links.base}'s answer", served_at, utcnow()))
    return found


async def _worker(db: Database) -> Finding:
    beat = await last_heartbeat(db)
    if beat is None:
        return Finding("worker", False, "no worker has ever run: start `kith serve` (with its worker) or `kith worker`")
    age = (utcnow() - beat).total_seconds()
    if age > 3 * HEARTBEAT_EVERY:
        return Finding("worker", False, f"no worker alive: the last heartbeat is {age:.0f} s old")
    return Finding("worker", True, f"a worker is alive (heartbeat {age:.0f} s ago)")


async def _database_clock(db: Database) -> Finding | None:
    if db.is_sqlite:
        return None  # SQLite's clock is this machine's
    async with db.read() as conn:
        theirs = (await conn.execute(sa.text("SELECT now()"))).scalar_one()
    return compare_clock("PostgreSQL's clock", theirs, utcnow())


async def run_checks(
    settings: Settings, *, client: Callable[[], httpx.AsyncClient] = lambda: httpx.AsyncClient(timeout=10)
) -> list[Finding]:
    """Every check, in order; later ones are skipped when the database is unusable."""
    db = Database(settings.database_url)
    try:
        found = [await _database(db)]
        if not found[0].ok:
            return found
        found.append(await _resolves(settings))
        steps: list[Callable[[], Awaitable[Finding | list[Finding] | None]]] = [
            lambda: _webfinger(settings, db, http),
            lambda: _worker(db),
            lambda: _database_clock(db),
        ]
        async with client() as http:
            for step in steps:
                try:
                    result = await step()
                except KithError as exc:
                    result = Finding("check", False, exc.reason)
                found.extend(result if isinstance(result, list) else [result] if result else [])
        return found
    finally:
        await db.dispose()
