"""Other servers' software, read from their NodeInfo; the one owner of ``server_software``.

NodeInfo (``/.well-known/nodeinfo``, then the 2.x document it links to) names the software
a server runs (``mastodon``, ``lemmy`` ...). Kith asks each member server rarely (a week
after a success, a day after a failure), through the guarded ``Fetcher`` like every other
request, and never a server the caller's ``is_blocked`` refuses. What it learns decides
only which form of a post a fan-out sends (``server.groups.forms``): a server whose
software is not known gets every form, so a failed lookup costs requests, never a post.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import upsert
from server.federation.client import Fetcher, FetchError
from server.federation.urls import UnsafeUrl, authority_of
from server.rows import chunked
from server.tables import server_software

WELL_KNOWN = "/.well-known/nodeinfo"
# The schemas whose ``software.name`` we read, newest first (2.0 is what Mastodon links first).
SCHEMAS = tuple(f"http://nodeinfo.diaspora.software/ns/schema/2.{minor}" for minor in (2, 1, 0))
REFRESH_AFTER = timedelta(days=7)
RETRY_AFTER = timedelta(days=1)  # a server that answered nothing usable is asked again sooner
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # NodeInfo's own pattern is [a-z0-9-]+


@dataclass(frozen=True, slots=True)
class Software:
    """What one server said it runs (``name`` None: it did not say, ``error`` why)."""

    name: str | None
    version: str | None = None
    error: str | None = None


def document_url(links_doc: Any, origin: str) -> str | None:
    """The NodeInfo 2.x document's URL from the discovery document, if it is on ``origin``'s server.

    A link to another server is not followed: the software it describes would not be
    this server's, and the request would go to a host nobody checked.
    """
    if not isinstance(links_doc, dict) or not isinstance(links_doc.get("links"), list):
        return None
    hrefs = {
        link.get("rel"): link.get("href")
        for link in links_doc["links"]
        if isinstance(link, dict) and isinstance(link.get("href"), str)
    }
    for schema in SCHEMAS:
        href = hrefs.get(schema)
        if href is None:
            continue
        try:
            if authority_of(href) == authority_of(origin):
                return str(href)
        except UnsafeUrl:
            return None
    return None


def software_of(doc: Any) -> Software:
    """``software.name`` and ``software.version`` of a NodeInfo document, checked and capped."""
    software = doc.get("software") if isinstance(doc, dict) else None
    name = software.get("name") if isinstance(software, dict) else None
    if not isinstance(name, str) or not _NAME.match(name.strip().lower()):
        return Software(None, error="no software name in NodeInfo")
    version = software.get("version") if isinstance(software, dict) else None
    return Software(name.strip().lower(), version[:64] if isinstance(version, str) else None)


async def ask(fetcher: Fetcher, origin: str) -> Software:
    """Ask the server at ``origin`` (``https://host``) what it runs: two guarded GETs."""
    try:
        links_doc = await fetcher.get_json(origin + WELL_KNOWN, accept="application/json")
        url = document_url(links_doc, origin)
        if url is None:
            return Software(None, error="no NodeInfo 2.x link on the server")
        return software_of(await fetcher.get_json(url, accept="application/json"))
    except FetchError as exc:
        return Software(None, error=f"NodeInfo: {exc}"[:500])


async def remember(conn: AsyncConnection, dialect: str, domain: str, software: Software, *, now: datetime) -> None:
    """Store what ``domain`` runs (or why that is not known), replacing what was known.

    A failed lookup keeps a name learnt before: a server down for a day still runs what it ran.
    """
    values = {
        "domain": domain,
        "software": software.name,
        "version": software.version,
        "error": software.error,
        "checked_at": now,
    }
    update: dict[str, Any] = {"error": software.error, "checked_at": now}
    if software.name is not None:
        update |= {"software": software.name, "version": software.version}
    await conn.execute(upsert(dialect, server_software, ["domain"], values, update))


async def known(conn: AsyncConnection, domains: Iterable[str]) -> dict[str, str]:
    """The software of each of ``domains`` that is known (servers never asked are left out)."""
    found: dict[str, str] = {}
    for chunk in chunked(domains):
        rows = await conn.execute(
            sa.select(server_software.c.domain, server_software.c.software).where(
                server_software.c.domain.in_(chunk), server_software.c.software.is_not(None)
            )
        )
        found.update({domain: software for domain, software in rows.all()})
    return found


async def due(conn: AsyncConnection, domains: Iterable[str], *, now: datetime) -> list[str]:
    """Those of ``domains`` never asked, or asked long enough ago to ask again, in the given order."""
    wanted = list(dict.fromkeys(domains))
    fresh: set[str] = set()
    for chunk in chunked(wanted):
        rows = await conn.execute(
            sa.select(server_software.c.domain).where(
                server_software.c.domain.in_(chunk),
                sa.or_(
                    sa.and_(
                        server_software.c.software.is_not(None), server_software.c.checked_at > now - REFRESH_AFTER
                    ),
                    server_software.c.checked_at > now - RETRY_AFTER,
                ),
            )
        )
        fresh.update(rows.scalars().all())
    return [d for d in wanted if d not in fresh]
