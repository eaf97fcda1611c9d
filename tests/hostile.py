"""Shared pieces of the hostile-input suite (``tests/test_hostile_*.py``).

A small world to attack (the group ``bookclub`` with two members on two fake servers and
a neighbour who is not one), ways to sign what Kith's own signer never would, and the
``TALLY`` of what the suite tried and what got through, which ``tests/hostile_tally.py``
prints for SECURITY.md. The tally only counts: every test asserts for itself.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import sqlalchemy as sa
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

from server.federation.httpsig import digest_header
from server.federation.keys import load_private_key
from server.groups.membership import GroupSpec, create_group
from server.services import Services
from server.tables import inbox_items, posts
from tests.fakes.mastodon import FakeMastodon
from tests.signers import cavage_sign

DOMAIN = "kith.test"
GROUP = f"https://{DOMAIN}/groups/bookclub"
INBOX = f"{GROUP}/inbox"
SHARED = f"https://{DOMAIN}/inbox"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
CAVAGE_POST = ["(request-target)", "host", "date", "digest", "content-type"]


# --------------------------------------------------------------------------- the tally


@dataclass
class Tally:
    """What the hostile suite tried, and what got through (should stay 0)."""

    requests: int = 0  # requests the test client sent to Kith (counted by the plugin)
    server_errors: int = 0  # of those, answered 5xx
    forgeries: int = 0  # forged, spoofed or unauthorised attempts made
    forgeries_accepted: int = 0  # of those, taken (a 2xx for a refusal, a row that changed)
    private_targets: int = 0  # private URLs offered to a path that fetches or delivers
    private_fetches: int = 0  # requests the network saw to a private target
    seen: set[str] = field(default_factory=set)

    def line(self) -> str:
        return (
            f"hostile suite: {self.requests} requests tried, {self.server_errors} 5xx seen, "
            f"{self.forgeries_accepted} of {self.forgeries} forgeries accepted, "
            f"{self.private_fetches} private fetches attempted (of {self.private_targets} private targets offered)"
        )


TALLY = Tally()


def forgery(accepted: bool) -> bool:
    """Count one forged attempt; returns ``accepted`` so a test can assert on it in the same line."""
    TALLY.forgeries += 1
    TALLY.forgeries_accepted += bool(accepted)
    return accepted


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    """bookclub, with alice (mastodon.example) and bob (social.example) members; zed on alice's server is not."""

    services: Services
    client: httpx.AsyncClient
    worker: Any
    mastodon: FakeMastodon
    social: FakeMastodon
    group_id: int

    async def send(self, server: FakeMastodon, name: str, activity: dict[str, Any], url: str = SHARED) -> int:
        """Deliver ``activity`` signed by ``name``; returns the status."""
        return (await server.post(self.client, name, url, activity)).status_code

    async def deliver(self, server: FakeMastodon, name: str, activity: dict[str, Any], url: str = SHARED) -> None:
        """Deliver ``activity`` (which must be taken with a 202) and let the worker process it."""
        response = await server.post(self.client, name, url, activity)
        assert response.status_code == 202, response.text
        await self.worker.drain()

    async def post_by(self, server: FakeMastodon, name: str, content: str, **kw: Any) -> dict[str, Any]:
        """A public note by ``name`` to the group, created and processed; returns the note."""
        note = server.note(name, content, to_group=GROUP, **kw)
        await self.deliver(server, name, server.create(name, note))
        return note


async def make_world(services: Services, client: httpx.AsyncClient, worker: Any, mastodon: FakeMastodon) -> World:
    """Create bookclub, bring alice and bob in as members, add zed; the caller closes ``world.social.http``."""
    social = FakeMastodon("social.example", mastodon.network, signer="bovine")
    social.add_user("bob")
    mastodon.add_user("zed")
    group = await create_group(services.db, GroupSpec(name="bookclub"))
    world = World(services, client, worker, mastodon, social, group.id)
    for server, name in ((mastodon, "alice"), (social, "bob")):
        await world.deliver(server, name, server.follow(name, GROUP), INBOX)
    mastodon.received.clear()
    social.received.clear()
    return world


async def stored_posts(services: Services) -> list[Any]:
    async with services.db.read() as conn:
        return list((await conn.execute(sa.select(posts).order_by(posts.c.id))).all())


async def inbox_rows(services: Services) -> list[Any]:
    async with services.db.read() as conn:
        return list((await conn.execute(sa.select(inbox_items).order_by(inbox_items.c.id))).all())


# --------------------------------------------------------------------------- signing by hand


def http_date(moment: datetime | None = None) -> str:
    return format_datetime(moment or datetime.now(UTC), usegmt=True)


def cavage_headers(
    private_pem: str,
    url: str,
    body: bytes,
    *,
    key_id: str,
    names: Iterable[str] = CAVAGE_POST,
    date: datetime | None = None,
    digest: str | None = None,
    algorithm: str | None = "rsa-sha256",
    drop: Iterable[str] = (),
) -> dict[str, str]:
    """A draft-cavage signed POST's headers, with whatever a forger chooses to change."""
    headers = {
        "Host": httpx.URL(url).netloc.decode(),
        "Date": http_date(date),
        "Digest": digest if digest is not None else digest_header(body),
        "Content-Type": "application/activity+json",
    }
    signed = cavage_sign(private_pem, "POST", url, headers, list(names), key_id=key_id, algorithm=algorithm)
    return {k: v for k, v in signed.items() if k.lower() not in {d.lower() for d in drop}}


@dataclass
class _Message:
    method: str
    url: str
    headers: dict[str, str]


def rfc9421_headers(url: str, body: bytes, labels: list[tuple[str, str, str, tuple[str, ...]]]) -> dict[str, str]:
    """An RFC 9421 signed POST's headers, one label per ``(label, private_pem, key_id, components)``, in order."""
    message = _Message(
        "POST", url, {"Host": httpx.URL(url).netloc.decode(), "Content-Type": "application/activity+json"}
    )
    for label, private_pem, key_id, components in labels:
        HTTPMessageSigner(
            signature_algorithm=algorithms.RSA_V1_5_SHA256,
            key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: load_private_key(private_pem)}),
        ).sign(
            message,
            key_id=key_id,
            created=datetime.now(UTC),
            label=label,
            covered_component_ids=components,
            body=body if "content-digest" in components else None,  # else the library covers it anyway
            use_existing_digest="Content-Digest" in message.headers,
            append_if_signature_exists=True,
        )
    return message.headers


async def request(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response:
    """``client.request``, with an exception the app raised turned into the 500 a server would answer.

    The test client re-raises the app's exceptions; a suite that walks many inputs in one
    test should report every failing one, not stop at the first.
    """
    try:
        return await client.request(method, url, **kw)
    except Exception as exc:
        return httpx.Response(500, json={"error": f"{type(exc).__name__}: {exc}"[:200]})


def dump(activity: dict[str, Any]) -> bytes:
    return json.dumps(activity).encode()


# --------------------------------------------------------------------------- private targets


def is_private_host(host: str, names: dict[str, list[str]]) -> bool:
    """Whether a request to ``host`` would reach a private address.

    ``host`` may be any spelling a URL can carry: an IP literal (IPv4 in decimal, octal or
    hex, short forms, IPv6), ``localhost`` or a name under it, or a name that ``names``
    (the test's resolver) maps to a private address. ``inet_aton`` reads IPv4 the way
    the C library, and so the connecting socket, would.
    """
    from server.federation.urls import is_private_address

    bare = host.strip("[]").rstrip(".").lower()
    if bare == "localhost" or bare.endswith(".localhost"):
        return True
    if bare in names:
        return any(is_private_address(a) for a in names[bare])
    try:
        return is_private_address(str(ipaddress.ip_address(bare)))
    except ValueError:
        pass
    try:
        return is_private_address(socket.inet_ntoa(socket.inet_aton(bare)))
    except OSError:
        return False
