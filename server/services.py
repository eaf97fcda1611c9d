"""The long-lived things a running Kith needs, built at start and passed in (no globals)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from server.db import Database
from server.federation.actors import RemoteActors
from server.federation.auth import HttpSignatureAuth
from server.federation.client import Fetcher, default_transport, make_http_client
from server.federation.urls import Resolver, UrlGuard
from server.instance import Instance, ensure_instance
from server.links import Links
from server.moderation.blocklist.cache import Blocklist
from server.settings import Settings


class Waker(Protocol):
    """Anything with ``set()``: an ``asyncio.Event``, or the worker's ``Wake`` of every loop."""

    def set(self) -> None: ...


def always_open(_host: str) -> bool:
    """The default domain policy hook: nothing is blocked.

    The same callable is handed to the URL guard (no fetch, no delivery), the inbox
    (refused before any signature work) and delivery (queued rows dropped), so an
    instance blocklist plugs in at one place and acts at every door.
    """
    return False


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
    is_blocked: Callable[[str], bool] = always_open
    blocklist: Blocklist | None = None
    # Told when work was queued (``.set()``): the worker's ``Wake`` once a worker runs here.
    wake: Waker = field(default_factory=asyncio.Event)

    @property
    def instance_key_id(self) -> str:
        return self.links.instance_actor + "#main-key"

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
        migrate: bool = True,
        is_blocked: Callable[[str], bool] | None = None,
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
        services: Services | None = None

        def hook(host: str) -> bool:
            # Late-bound: the guard asks whichever policy the services hold at call time.
            return services is not None and services.is_blocked(host)

        guard = UrlGuard(allow_private=settings.allow_private_addresses, is_blocked=hook, resolver=resolver)
        transport = transport or default_transport()
        http = make_http_client(transport=transport)
        auth = HttpSignatureAuth(links.instance_actor + "#main-key", instance.private_key_pem)
        fetcher = Fetcher(http, guard, transport=transport, auth=auth)
        services = cls(
            settings,
            db,
            http,
            guard,
            fetcher,
            instance,
            links,
            RemoteActors(db, fetcher),
            is_blocked or blocklist.is_blocked,
            blocklist,
        )
        return services

    async def close(self) -> None:
        await self.http.aclose()
        await self.db.dispose()
