"""Remote actors: fetched with a signed GET, cached with their keys, the key lookup for signatures.

The one owner of the ``remote_actors`` table.

Trust by origin: an actor document counts only when its ``id`` has the host it was
fetched from (after redirects), and a key only when its ``owner`` is that actor.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urldefrag

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database, upsert
from server.federation.client import Fetcher, FetchError, FetchGone, FetchNotFound
from server.federation.httpsig import ResolvedKey
from server.federation.urls import UnsafeUrl, origin_of
from server.federation.vocab import as_list, id_of
from server.rows import chunked, record, record_or_none
from server.tables import remote_actors
from server.types import utcnow

log = logging.getLogger("kith.actors")

ACTOR_TYPES = frozenset({"Person", "Service", "Application", "Group", "Organization"})
REFRESH_AFTER = timedelta(days=1)  # a cached actor older than this is refetched when needed
# The key lookup (every inbox request) uses the stored key without asking the network; a
# document older than this is refetched first, so no cached actor is trusted unchecked for
# more than a week (a failed refetch keeps the copy: a server down is no reason to refuse).
KEY_REFRESH_AFTER = timedelta(days=7)
MIN_REFETCH = timedelta(seconds=60)
KEY_CACHE_SECONDS = 300.0
KEY_CACHE_SIZE = 50_000  # a key is refetched at most this often, whatever a peer sends
# The columns _lookup_key reads, by key id (remote_actors.key_id is indexed).
_PG_KEY_QUERY = "SELECT uri, public_key_pem, fetched_at FROM remote_actors WHERE key_id = $1 LIMIT 1"


class _StoredKey(NamedTuple):
    """What the key lookup reads of a stored actor (the columns of ``_PG_KEY_QUERY``)."""

    uri: str
    public_key_pem: str | None
    fetched_at: datetime


class InvalidActor(ValueError):
    """A document that is not an actor we can trust or use."""


@dataclass(frozen=True)
class ActorRecord:
    """The fields of a remote actor we keep, parsed from its document."""

    uri: str
    domain: str  # the server's authority: host, plus port when not the default
    type: str
    preferred_username: str | None
    name: str | None
    inbox: str
    shared_inbox: str | None
    key_id: str | None
    public_key_pem: str | None
    raw: str


@dataclass(frozen=True, slots=True)
class RemoteActor:
    """A remote actor as we keep it: where to deliver to it, its key, when we last fetched it."""

    id: int
    uri: str
    domain: str  # its server's authority: host, plus port when not the default
    type: str
    preferred_username: str | None
    name: str | None
    inbox: str
    shared_inbox: str | None
    key_id: str | None
    public_key_pem: str | None
    raw: str = field(repr=False)  # the document as fetched (capped), for audit and profiles
    fetched_at: datetime
    suspended_at: datetime | None  # an admin suspended this one account instance-wide

    @property
    def delivery_inbox(self) -> str:
        """Where to deliver to it: its server's shared inbox when it has one."""
        return self.shared_inbox or self.inbox

    @property
    def handle(self) -> str:
        """``@user@server``, or the URI when it has no username."""
        return f"@{self.preferred_username}@{self.domain}" if self.preferred_username else self.uri


_SELECT = sa.select(remote_actors)


async def find_actor(conn: AsyncConnection, uri: str) -> RemoteActor | None:
    """The stored actor with this URI, or None (never fetches)."""
    return record_or_none(RemoteActor, (await conn.execute(_SELECT.where(remote_actors.c.uri == uri))).one_or_none())


async def find_actor_by_id(conn: AsyncConnection, actor_id: int) -> RemoteActor | None:
    """The stored actor with this row id, or None."""
    row = (await conn.execute(_SELECT.where(remote_actors.c.id == actor_id))).one_or_none()
    return record_or_none(RemoteActor, row)


async def find_actors(conn: AsyncConnection, uris: Sequence[str]) -> dict[str, RemoteActor]:
    """The stored actors among ``uris``, by URI (never fetches)."""
    found: dict[str, RemoteActor] = {}
    for chunk in chunked(uris):
        rows = (await conn.execute(_SELECT.where(remote_actors.c.uri.in_(chunk)))).all()
        found.update((r.uri, record(RemoteActor, r)) for r in rows)
    return found


async def known_group_uris(conn: AsyncConnection, uris: Sequence[str]) -> frozenset[str]:
    """Which of these actor URIs we know to be groups (at most the first 200 are asked about)."""
    if not uris:
        return frozenset()
    query = sa.select(remote_actors.c.uri).where(remote_actors.c.uri.in_(uris[:200]), remote_actors.c.type == "Group")
    return frozenset((await conn.execute(query)).scalars().all())


@dataclass(frozen=True, slots=True)
class ActorOrigin:
    """Who an actor is and where it lives: what a domain policy is judged on."""

    id: int
    uri: str
    domain: str


async def actor_origins(conn: AsyncConnection) -> list[ActorOrigin]:
    """Every stored actor's id, URI and server (a policy change decides for each)."""
    query = sa.select(remote_actors.c.id, remote_actors.c.uri, remote_actors.c.domain)
    return [record(ActorOrigin, r) for r in (await conn.execute(query)).all()]


def unreferenced(before: datetime, references: Sequence[sa.ColumnElement[bool]]) -> sa.ColumnElement[bool]:
    """Remote actors we may forget: none of ``references`` holds for them (each a correlated
    ``EXISTS`` the caller builds from the tables that name actors: this module knows none of
    them), no admin suspended them (forgetting would lift the suspension), and we have not
    fetched them since ``before`` (a busy peer's key stays cached between its activities).
    """
    return sa.and_(
        remote_actors.c.suspended_at.is_(None),
        remote_actors.c.fetched_at < before,
        *(~reference for reference in references),
    )


async def set_suspended(conn: AsyncConnection, uri: str, suspended: bool) -> bool:
    """Suspend (or lift the suspension of) one remote account; False when we do not know it."""
    result = await conn.execute(
        sa.update(remote_actors).where(remote_actors.c.uri == uri).values(suspended_at=utcnow() if suspended else None)
    )
    return result.rowcount > 0


async def suspended_uris(conn: AsyncConnection) -> frozenset[str]:
    """Every remote account an admin suspended."""
    query = sa.select(remote_actors.c.uri).where(remote_actors.c.suspended_at.is_not(None))
    return frozenset((await conn.execute(query)).scalars().all())


def _http_url(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise InvalidActor(f"{what} is not an http(s) URL")
    if len(value) > 2048:
        raise InvalidActor(f"{what} is too long")
    return value


def parse_actor(doc: dict[str, Any], source_url: str) -> ActorRecord:
    """Validate an actor document fetched from (or signed by the origin of) ``source_url``."""
    uri = _http_url(doc.get("id"), "id")
    try:
        origin = origin_of(uri)
        source_origin = origin_of(source_url)
    except UnsafeUrl as exc:
        raise InvalidActor(f"bad actor URL: {exc.reason}") from None
    if origin != source_origin:
        raise InvalidActor(f"actor id {uri} does not belong to {source_origin[1]}")
    domain = origin[1]
    kind = doc.get("type")
    kind = next((t for t in as_list(kind) if t in ACTOR_TYPES), None)
    if kind is None:
        raise InvalidActor(f"type {doc.get('type')!r} is not an actor type")
    inbox = _http_url(doc.get("inbox"), "inbox")
    endpoints = doc.get("endpoints") if isinstance(doc.get("endpoints"), dict) else {}
    shared = endpoints.get("sharedInbox")
    shared_inbox = shared if isinstance(shared, str) and shared.startswith(("https://", "http://")) else None
    key_id = pem = None
    for key in as_list(doc.get("publicKey")):
        if not isinstance(key, dict) or not isinstance(key.get("publicKeyPem"), str):
            continue
        owner = id_of(key.get("owner")) or uri
        if owner != uri:
            continue  # a key that claims another owner is never this actor's key
        candidate = id_of(key) or uri
        try:
            if origin_of(candidate) != origin:
                continue  # nor one whose id lives on another server
        except UnsafeUrl:
            continue
        key_id, pem = candidate, key["publicKeyPem"]
        break
    username = doc.get("preferredUsername")
    name = doc.get("name")
    return ActorRecord(
        uri=uri,
        domain=domain,
        type=kind,
        preferred_username=username[:255] if isinstance(username, str) else None,
        name=name[:500] if isinstance(name, str) else None,
        inbox=inbox,
        shared_inbox=shared_inbox,
        key_id=key_id,
        public_key_pem=pem,
        raw=json.dumps(doc, separators=(",", ":"))[:262_144],
    )


class RemoteActors:
    """The remote actor cache: database rows, refreshed from the network when stale."""

    def __init__(self, db: Database, fetcher: Fetcher) -> None:
        self.db = db
        self.fetcher = fetcher
        # keyId -> (key, monotonic expiry): the inbox verifies every request, and a
        # database round trip per request for a key that rarely changes is the cost to avoid.
        self._keys: dict[str, tuple[ResolvedKey, float]] = {}

    async def cached(self, uri: str) -> RemoteActor | None:
        """The stored actor, or None (never fetches)."""
        async with self.db.read() as conn:
            return await find_actor(conn, uri)

    async def get(self, uri: str, *, refresh: bool = False) -> RemoteActor:
        """The actor row for ``uri``, fetched when missing, stale or ``refresh`` is asked."""
        row = await self.cached(uri)
        if row is not None and not refresh and utcnow() - row.fetched_at < REFRESH_AFTER:
            return row
        try:
            return await self.fetch(uri)
        except Exception:
            if row is not None and not refresh:
                log.info("using stale copy of %s", uri)
                return row
            raise

    async def fetch(self, uri: str) -> RemoteActor:
        """Fetch ``uri`` (signed by the instance actor) and store it; ``InvalidActor`` if unusable."""
        fetched = await self.fetcher.fetch_json(uri)
        return await self.store(parse_actor(fetched.data, fetched.url))

    async def store(self, parsed: ActorRecord) -> RemoteActor:
        """Insert or update an actor row from a parsed record."""
        values = {**parsed.__dict__, "fetched_at": utcnow()}
        update = {k: v for k, v in values.items() if k != "uri"}
        async with self.db.transaction() as conn:
            await conn.execute(upsert(self.db.dialect, remote_actors, ["uri"], values, update))
            stored = await find_actor(conn, parsed.uri)
        assert stored is not None  # just written, in this transaction
        return stored

    async def remove(self, uri: str) -> bool:
        """Forget an actor that deleted itself (its memberships go with it)."""
        self._keys = {k: v for k, v in self._keys.items() if v[0].owner != uri}
        async with self.db.transaction() as conn:
            result = await conn.execute(sa.delete(remote_actors).where(remote_actors.c.uri == uri))
        return result.rowcount > 0

    async def lookup_key(self, key_id: str, *, refresh: bool) -> ResolvedKey | None:
        """The ``KeyLookup`` for signature verification: cached first, one refetch on rotation."""
        if not refresh:
            cached = self._keys.get(key_id)
            if cached is not None and cached[1] > time.monotonic():
                return cached[0]
        key = await self._lookup_key(key_id, refresh=refresh)
        if key is not None:
            if len(self._keys) >= KEY_CACHE_SIZE:
                self._keys.clear()
            self._keys[key_id] = (key, time.monotonic() + KEY_CACHE_SECONDS)
        else:
            self._keys.pop(key_id, None)
        return key

    async def _stored_key(self, key_id: str) -> _StoredKey | None:
        """The stored actor holding ``key_id``, if any."""
        pool = await self.db.raw_pool()
        if pool is not None:
            # Straight to asyncpg on PostgreSQL: every new peer's first request misses the
            # in-process cache, and SQLAlchemy's overhead is most of this one-row read.
            record = await pool.fetchrow(_PG_KEY_QUERY, key_id)
            return None if record is None else _StoredKey(*record)
        columns = (remote_actors.c.uri, remote_actors.c.public_key_pem, remote_actors.c.fetched_at)
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(*columns).where(remote_actors.c.key_id == key_id))).first()
        return None if row is None else _StoredKey(*row)

    async def _lookup_key(self, key_id: str, *, refresh: bool) -> ResolvedKey | None:
        row = await self._stored_key(key_id)
        if row is not None and row.public_key_pem:
            age = utcnow() - row.fetched_at
            if age < (MIN_REFETCH if refresh else KEY_REFRESH_AFTER):
                return ResolvedKey(key_id, row.uri, row.public_key_pem)
            if not refresh:
                try:
                    return await self._fetch_key(key_id, row.uri)
                except (FetchError, InvalidActor) as exc:
                    log.info("refreshing %s failed, using the copy of %s: %s", row.uri, row.fetched_at, exc)
                    return ResolvedKey(key_id, row.uri, row.public_key_pem)
        try:
            return await self._fetch_key(key_id, row.uri if row is not None else urldefrag(key_id).url)
        except (FetchGone, FetchNotFound):
            return None
        except InvalidActor as exc:
            log.info("key %s: %s", key_id, exc)
            return None

    async def _fetch_key(self, key_id: str, owner_uri: str) -> ResolvedKey | None:
        """Fetch the actor holding ``key_id`` and store it; None when its document has no such key.

        Raises ``FetchError`` when the fetch fails, ``InvalidActor`` for a document we cannot use.
        """
        fetched = await self.fetcher.fetch_json(owner_uri)
        doc = fetched.data
        if "inbox" not in doc and id_of(doc.get("owner")):
            # A standalone key document (GoToSocial, some others): its owner is the actor.
            owner = id_of(doc["owner"])
            if owner is None or origin_of(owner) != origin_of(fetched.url):
                return None
            fetched = await self.fetcher.fetch_json(owner)
            doc = fetched.data
        stored = await self.store(parse_actor(doc, fetched.url))
        if stored.key_id != key_id or not stored.public_key_pem:
            return None
        return ResolvedKey(key_id, stored.uri, stored.public_key_pem)


def from_domain(domain: str, *, subdomains: bool = False) -> sa.ColumnElement[bool]:
    """Actors of ``domain`` (and, with ``subdomains``, of every host beneath it)."""
    exact = remote_actors.c.domain == domain
    if not subdomains:
        return exact
    escaped = domain.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.or_(exact, remote_actors.c.domain.like(f"%.{escaped}", escape="\\"))


async def known_domains(conn: AsyncConnection) -> list[str]:
    """Every domain Kith has met an actor of, sorted."""
    stmt = sa.select(remote_actors.c.domain).distinct().order_by(remote_actors.c.domain)
    return [str(d) for d in (await conn.execute(stmt)).scalars()]


async def suspended_page(conn: AsyncConnection, *, max_id: int | None = None, limit: int = 50) -> list[RemoteActor]:
    """Suspended remote accounts, the most recently stored first (the page below ``max_id`` when given)."""
    query = _SELECT.where(remote_actors.c.suspended_at.is_not(None)).order_by(remote_actors.c.id.desc()).limit(limit)
    if max_id is not None:
        query = query.where(remote_actors.c.id < max_id)
    return [record(RemoteActor, r) for r in (await conn.execute(query)).all()]
