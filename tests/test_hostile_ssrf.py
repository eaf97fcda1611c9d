"""SSRF: with private addresses not allowed, nothing private is ever connected to, in any spelling.

The instance runs as in production (``allow_private_addresses=False``) with its resolver
injected at the edge (``Services.open(resolver=...)``): the fake remotes resolve to
public addresses, and some names resolve to loopback, private or mixed answers. Each
path that fetches or delivers is offered every private spelling (and a public URL that
redirects to each); the in-process network records every request the instance sends,
and none may be to a private target. (Kith does no outbound WebFinger; its key and actor
fetches are the only lookups of a remote by name.)
"""

from __future__ import annotations

import dataclasses
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa

from server.federation.httpsig import sign_request
from server.services import Services
from server.tables import deliveries, inbox_items
from tests.fakes.mastodon import FakeMastodon
from tests.hostile import GROUP, INBOX, PUBLIC, SHARED, TALLY, dump, is_private_host, make_world

PUBLIC_IP = "93.184.215.14"  # never connected to: the network is in-process
NAMES: dict[str, list[str]] = {
    "kith.test": [PUBLIC_IP],
    "mastodon.example": [PUBLIC_IP],
    "social.example": [PUBLIC_IP],
    "evil.example": [PUBLIC_IP],
    "redirector.example": [PUBLIC_IP],
    "localhost": ["127.0.0.1", "::1"],  # as the system resolver answers
    "kith.localhost": ["127.0.0.1"],
    "loopback.example": ["127.0.0.1"],
    "v6loopback.example": ["::1"],
    "intranet.example": ["10.1.2.3"],
    "metadata.example": ["169.254.169.254"],
    "mixed.example": ["93.184.215.15", "192.168.1.10"],
}

PRIVATE = [
    "http://2130706433/x",  # decimal
    "http://017700000001/x",  # octal, one part
    "http://0177.0.0.1/x",  # octal
    "http://0x7f000001/x",  # hex
    "http://0x7f.0.0.1/x",
    "http://127.1/x",  # short form
    "http://127.0.0.1/x",
    "http://127.0.0.1:8000/x",
    "http://[::ffff:127.0.0.1]/x",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]/x",
    "http://[::1]/x",
    "http://[::]/x",
    "http://0.0.0.0/x",
    "http://0/x",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/x",
    "http://172.16.0.1/x",
    "http://172.31.255.254/x",
    "http://192.168.0.1/x",
    "http://[fc00::1]/x",
    "http://[fd12:3456::1]/x",
    "http://[fe80::1]/x",
    "http://localhost/x",
    "http://LOCALHOST./x",
    "http://kith.localhost/x",
    "https://loopback.example/x",
    "https://v6loopback.example/x",
    "https://intranet.example/x",
    "https://metadata.example/x",
    "https://mixed.example/x",
]
# A public URL that redirects to a private one: a sample of the spellings (each hop meets the same guard).
REDIRECTS = [
    f"https://redirector.example/r/{PRIVATE.index(u)}"
    for u in (
        "http://2130706433/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/x",
        "https://loopback.example/x",
        "https://mixed.example/x",
    )
]


async def resolve(host: str, port: int) -> list[str]:
    if host not in NAMES:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return NAMES[host]


def _redirect(request: httpx.Request) -> httpx.Response:
    index = int(request.url.path.rsplit("/", 1)[1].split("#")[0])
    return httpx.Response(302, headers={"Location": PRIVATE[index]})


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, allow_private_addresses=False)


@pytest.fixture
async def services(settings, network):
    network.add_handler("redirector.example", _redirect)
    svc = await Services.open(settings, transport=network, resolver=resolve, migrate=False)
    yield svc
    await svc.close()


@pytest.fixture
async def world(services, client, worker, mastodon):
    w = await make_world(services, client, worker, mastodon)
    yield w
    await w.social.http.aclose()


def private_requests(network: Any) -> list[str]:
    """Every request the instance sent toward a private address."""
    return [str(r.url) for r in network.requests if is_private_host(r.url.host, NAMES)]


def offered(urls: list[str], network: Any) -> list[str]:
    """Count the private targets offered and the private requests made; return the latter."""
    TALLY.private_targets += len(urls)
    seen = private_requests(network)
    TALLY.private_fetches += len(seen)
    return seen


def test_every_private_spelling_is_private():
    """The probe list is what it claims (so a zero below means something)."""
    hosts = [urlsplit(u).hostname or "" for u in PRIVATE]
    assert [h for h in hosts if not is_private_host(h, NAMES)] == []
    assert not is_private_host("mastodon.example", NAMES)


async def test_the_world_works_without_private_addresses(world, network):
    """The control: members joined through the guard, with public answers, and a post went round."""
    await world.post_by(world.mastodon, "alice", "<p>hello</p>")
    assert len(world.social.of_type("Announce")) == 2
    assert private_requests(network) == []


async def test_no_key_or_actor_fetch_reaches_a_private_address(world, network, client):
    """Signed by an actor on a private origin (the key is fetched from there), or redirected there."""
    keys = world.mastodon.users["alice"]
    statuses = []
    for base in [u.rsplit("/", 1)[0] for u in PRIVATE] + [u for u in REDIRECTS]:
        actor = f"{base}/users/eve" if base.startswith("http") and "/r/" not in base else base
        activity = {"id": f"{actor}/activities/1", "type": "Follow", "actor": actor, "object": GROUP}
        body = dump(activity)
        headers = {"content-type": "application/activity+json"}
        try:
            headers.update(
                sign_request(
                    "POST", SHARED, headers, body, key_id=f"{actor}#main-key", private_key_pem=keys.private_pem
                )
            )
        except ValueError:
            continue
        r = await client.post(SHARED, content=body, headers=headers)
        statuses.append((actor, r.status_code))
    assert [s for s in statuses if not 400 <= s[1] < 500] == []
    assert offered(PRIVATE + REDIRECTS, network) == []
    async with world.services.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(inbox_items))).scalar_one() == 2


async def test_no_object_fetch_reaches_a_private_address(world, network):
    """inReplyTo, Announce by reference and Create by reference, each at every spelling and redirect."""
    for url in PRIVATE + REDIRECTS:
        note = world.mastodon.note("alice", "<p>a reply</p>", to_group=GROUP, in_reply_to=url)
        await world.send(world.mastodon, "alice", world.mastodon.create("alice", note))
        boost = {
            "id": world.mastodon.new_id(),
            "type": "Announce",
            "actor": world.mastodon.actor_uri("alice"),
            "object": url,
            "to": [PUBLIC],
            "cc": [GROUP],
        }
        await world.send(world.mastodon, "alice", boost)
    await world.worker.drain()
    assert offered(2 * (PRIVATE + REDIRECTS), network) == []
    async with world.services.db.read() as conn:
        states = (
            await conn.execute(sa.select(inbox_items.c.state, sa.func.count()).group_by(inbox_items.c.state))
        ).all()
    assert {state for state, _ in states} <= {"done", "dead"}


class EvilServer(FakeMastodon):
    """A public server whose actors name private inboxes (and no shared inbox)."""

    inboxes: dict[str, str]

    def actor_doc(self, name: str) -> dict[str, Any]:
        doc = super().actor_doc(name)
        doc["inbox"] = self.inboxes[name]
        del doc["endpoints"]
        return doc


async def test_no_delivery_reaches_a_private_address(world, network):
    """Members whose inboxes are private: their Accepts and the group's Announces are never sent there."""
    evil = EvilServer("evil.example", network)
    evil.inboxes = {}
    for i, url in enumerate(PRIVATE + REDIRECTS):
        name = f"eve{i}"
        evil.add_user(name, keys=world.mastodon.users["alice"])  # one key for all: RSA keys are slow to make
        evil.inboxes[name] = url
        await evil.post(world.client, name, INBOX, evil.follow(name, GROUP))
    await world.worker.drain()
    await world.post_by(world.social, "bob", "<p>to every member</p>")
    await world.worker.drain()
    await evil.http.aclose()
    assert offered(PRIVATE + REDIRECTS, network) == []
    async with world.services.db.read() as conn:
        rows = (await conn.execute(sa.select(deliveries.c.inbox, deliveries.c.state))).all()
    # A private inbox is refused for good at once; a redirect is not followed (retried as a failure).
    assert [r for r in rows if r.inbox in PRIVATE and r.state != "dead"] == []
    assert len(world.mastodon.of_type("Announce")) == 2  # the public member still got the post
