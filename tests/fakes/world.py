"""The test world every group test draws from: one Kith, a group, its leaders and members on two servers.

``kith.test`` runs in-process (the ``app``/``client``/``worker`` fixtures). Its group
``bookclub`` is owned by the local account ``mod1`` and moderated by ``mod2``; its members
are alice on ``mastodon.example`` (signing with Kith's own signer) and bob on
``social.example`` (signing with bovine's, an independent implementation). Both are
``FakeMastodon`` servers: real keys, real signed requests, and inboxes that verify what
the group sends them. ``World`` has the steps tests repeat: join, post, reply.

Built by the ``world`` fixture in tests/conftest.py (``social`` is bob's server on its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from server.accounts import create_user, get_user
from server.groups.membership import Group, GroupSpec, create_group, get_group
from server.moderation.authority import add_role
from server.services import Services
from server.worker import Worker
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.network import Network

DOMAIN = "kith.test"
NAME = "bookclub"
GROUP = f"https://{DOMAIN}/groups/{NAME}"
SHARED_INBOX = f"https://{DOMAIN}/inbox"
OWNER = "mod1"
MODERATOR = "mod2"


def social_server(network: Network) -> FakeMastodon:
    """bob's server, social.example, signing with bovine."""
    fake = FakeMastodon("social.example", network, signer="bovine")
    fake.add_user("bob")
    return fake


@dataclass
class World:
    """The group, the people in it and the ways they act. Fields are the conftest fixtures of the test."""

    client: httpx.AsyncClient
    services: Services
    worker: Worker
    network: Network
    mastodon: FakeMastodon  # alice's server
    social: FakeMastodon  # bob's server
    group: Group | None = None

    @property
    def servers(self) -> tuple[FakeMastodon, FakeMastodon]:
        return (self.mastodon, self.social)

    async def build(self) -> World:
        """The owner, the moderator, the group, and alice and bob as members; nothing left in their inboxes."""
        await create_user(self.services.db, OWNER)
        await create_user(self.services.db, MODERATOR)
        self.group = await create_group(self.services.db, GroupSpec(name=NAME, owner=OWNER))
        async with self.services.db.transaction() as conn:
            await add_role(conn, self.group.id, (await get_user(conn, MODERATOR)).id, "moderator")
        await self.join(self.mastodon, "alice", drain=False)
        await self.join(self.social, "bob", drain=False)
        await self.worker.drain()
        self.clear()
        return self

    async def reload(self) -> Group:
        """The group as stored now."""
        async with self.services.db.read() as conn:
            self.group = await get_group(conn, NAME)
        return self.group

    def clear(self) -> None:
        """Forget what the remote servers received so far."""
        for server in self.servers:
            server.received.clear()

    async def join(self, server: FakeMastodon, name: str, group: str = GROUP, *, drain: bool = True) -> httpx.Response:
        """``name`` on ``server`` follows ``group`` (signed, to the group's inbox); 202 asserted."""
        r = await server.post(self.client, name, f"{group}/inbox", server.follow(name, group))
        assert r.status_code == 202, r.text
        if drain:
            await self.worker.drain()
        return r

    async def send(self, server: FakeMastodon, name: str, activity: dict[str, Any], *, drain: bool = True) -> None:
        """Deliver ``activity`` from ``name`` to the shared inbox, signed; 202 asserted."""
        r = await server.post(self.client, name, SHARED_INBOX, activity)
        assert r.status_code == 202, r.text
        if drain:
            await self.worker.drain()

    async def post(
        self, server: FakeMastodon, name: str, content: str, *, group: str = GROUP, drain: bool = True, **note: Any
    ) -> dict[str, Any]:
        """``name`` posts ``content`` to ``group`` as Mastodon does (a Create of a Note mentioning it)."""
        obj = server.note(name, content, to_group=group, **note)
        await self.send(server, name, server.create(name, obj), drain=drain)
        return obj

    async def reply(
        self, server: FakeMastodon, name: str, parent: dict[str, Any] | str, content: str, **note: Any
    ) -> dict[str, Any]:
        """``name`` replies to ``parent`` (a note or its id) in the group, as Mastodon replies (no mention)."""
        parent_id = parent if isinstance(parent, str) else parent["id"]
        note.setdefault("mention", False)
        return await self.post(server, name, content, in_reply_to=parent_id, **note)
