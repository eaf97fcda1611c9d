"""The policy in memory: read once, reloaded when its stored version moves.

``Blocklist`` is what ``Services`` holds; its ``is_blocked`` is handed to every door
(the URL guard, the inbox, fan-out and delivery). The store bumps the ``policy_version``
setting in every change's transaction; a process notices within seconds (``watch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database
from server.federation.actors import suspended_uris
from server.instance import get_setting
from server.moderation.blocklist.matcher import Block, DomainPolicy
from server.tables import domain_allows, domain_blocks

log = logging.getLogger("kith.blocklist")

POLICY_VERSION = "policy_version"  # instance_settings keys
FEDERATION_MODE = "federation_mode"


async def read_setting(conn: AsyncConnection, key: str, default: str) -> str:
    """One instance setting of the policy (``instance.get_setting``), or ``default`` when never set."""
    return await get_setting(conn, key, default) or default


async def load_policy(conn: AsyncConnection) -> DomainPolicy:
    """Read the whole policy; small (thousands of rows at most), so it lives in memory."""
    blocks = {
        r.domain: Block(r.domain, r.severity, r.reject_media, r.reject_reports)
        for r in (await conn.execute(sa.select(domain_blocks))).all()
    }
    allows = frozenset(r.domain for r in (await conn.execute(sa.select(domain_allows.c.domain))).all())
    mode = await read_setting(conn, FEDERATION_MODE, "open")
    return DomainPolicy(blocks, allows, mode == "allowlist", await suspended_uris(conn))


class Blocklist:
    """The process's cached policy. ``is_blocked`` is the hook every door calls."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.policy = DomainPolicy()
        self.version = ""

    def is_blocked(self, host: str) -> bool:
        """True when nothing may be fetched from, delivered to or accepted from ``host``."""
        return self.policy.is_suspended(host)

    async def reload(self) -> None:
        """Read the policy and its version now."""
        async with self.db.read() as conn:
            self.version = await read_setting(conn, POLICY_VERSION, "0")
            self.policy = await load_policy(conn)

    async def refresh_if_changed(self) -> None:
        """Reload when the stored policy version moved (one single-row read)."""
        async with self.db.read() as conn:
            version = await read_setting(conn, POLICY_VERSION, "0")
        if version != self.version:
            await self.reload()

    async def watch(self, stop: asyncio.Event, interval: float = 2.0) -> None:
        """Reload when another process (a CLI command, another web worker) changed the policy."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                return
            try:
                await self.refresh_if_changed()
            except Exception:  # a database hiccup must not kill the watcher
                log.exception("policy reload failed")
