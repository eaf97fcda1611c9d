"""The long-lived things a running Kith needs, built at start and passed in (no globals).

``Services`` is the context every domain function receives: settings, the database, the
HTTP client and its URL guard, the instance actor, the remote actor cache and the
instance's domain policy. It sits above the moderation rules (it holds the blocklist
cache) and below the groups that use it; ``server.jobs`` and the edges build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx

from server.db import Database
from server.doorbell import Doorbell
from server.federation.actors import RemoteActors
from server.federation.auth import HttpSignatureAuth
from server.federation.client import Fetcher, default_transport, make_http_client
from server.federation.urls import Resolver, UrlGuard
from server.instance import Instance, ensure_instance
from server.links import Links
from server.moderation.blocklist.cache import Blocklist
from server.settings import Settings


class Waker(Protocol):
    """Told that work was queued: the ``Doorbell`` (other processes' workers), or the worker's ``Wake``
    (this process's loops, and the doorbell)."""

    def set(self, kind: str | None = None) -> None: ...


@dataclass
class Services:
    """Settings, database, HTTP client, the instance actor and the URL guard."""

    settings: Settings
    db: Database
    http: httpx.AsyncClient
    guard: UrlGuard
    fetcher: Fetcher
    instance: Instance
    links: Links
    actors: RemoteActors
    blocklist: Blocklist
    # Rings the worker processes on the same PostgreSQL database when work was queued here.
    doorbell: Doorbell
    # Told when work was queued (``.set(kind)``): the doorbell, or the worker's ``Wake`` once a worker runs here.
    wake: Waker

    def is_blocked(self, host: str) -> bool:
        """The instance's domain policy: True when nothing may be fetched from, sent to or taken from ``host``.

        The same question is asked by the URL guard (no fetch, no delivery), the inbox
        (refused before any signature work), fan-out and delivery (nothing sent), so the
        blocklist acts at every door.
        """
        return self.blocklist.is_blocked(host)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
        migrate: bool = True,
    ) -> Services:
        """Connect, migrate, load the instance actor and build the HTTP client."""
        db = Database(settings.database_url)
        try:
            await db.check()
            if migrate:
                await db.migrate()
            instance = await ensure_instance(db, settings.secret_key)
        except BaseException:
            await db.dispose()
            raise
        links = Links(settings.base_url)
        blocklist = Blocklist(db)
        await blocklist.reload()
        guard = UrlGuard(
            allow_private=settings.allow_private_addresses, is_blocked=blocklist.is_blocked, resolver=resolver
        )
        transport = transport or default_transport()
        http = make_http_client(transport=transport)
        auth = HttpSignatureAuth(links.instance_actor + "#main-key", instance.private_key_pem)
        fetcher = Fetcher(http, guard, transport=transport, auth=auth)
        doorbell = Doorbell(db)
        actors = RemoteActors(db, fetcher)
        return cls(
            settings, db, http, guard, fetcher, instance, links, actors, blocklist, doorbell=doorbell, wake=doorbell
        )

    async def close(self) -> None:
        """Close the HTTP client and the database's connections."""
        await self.doorbell.close()
        await self.http.aclose()
        await self.db.dispose()
