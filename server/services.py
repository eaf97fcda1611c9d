"""The long-lived things a running Kith needs, built at start and passed in (no globals)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx

from server.db import Database
from server.federation.auth import HttpSignatureAuth
from server.federation.client import Fetcher, make_http_client
from server.federation.urls import Resolver, UrlGuard
from server.instance import Instance, ensure_instance
from server.links import Links
from server.settings import Settings


def always_open(_host: str) -> bool:
    """The blocklist hook until instance policy lands: nothing is blocked."""
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
    wake: asyncio.Event = field(default_factory=asyncio.Event)

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
        guard = UrlGuard(allow_private=settings.allow_private_addresses, is_blocked=always_open, resolver=resolver)
        http = make_http_client(transport=transport)
        auth = HttpSignatureAuth(links.instance_actor + "#main-key", instance.private_key_pem)
        fetcher = Fetcher(http, guard, auth=auth)
        return cls(settings, db, http, guard, fetcher, instance, links)

    async def close(self) -> None:
        await self.http.aclose()
        await self.db.dispose()
