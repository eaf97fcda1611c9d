"""Tried as a new user would: real Mastodon-compatible peers on loopback and a group.

Kith runs as a subprocess (``python -m server serve``, in-process worker) on one
loopback port and each peer is a real uvicorn server on another (alice's server,
bob's server); everything between them is real HTTP over 127.0.0.1. A peer discovers
the group by WebFinger, follows it with a bovine-signed Follow, receives an Accept
that bovine verifies against the group's published key, and unfollows; when alice
posts to the group, bob's server receives the group's Announces and can display it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes.loopback_peer import AS_JSON, Group, LoopbackPeer

LOOPBACK = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on loopback (all held open at once, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Kith:
    base: str
    domain: str
    env: dict[str, str]
    cwd: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "server", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def ports() -> list[int]:
    """Kith's, alice's server's and bob's server's."""
    return free_ports(3)


@pytest.fixture
def kith(tmp_path: Path, ports: list[int]) -> Iterator[Kith]:
    """``kith group create bookclub``, then ``kith serve`` on loopback until the test ends."""
    port = ports[0]
    domain = f"{LOOPBACK}:{port}"
    env = {
        **os.environ,
        "KITH_DOMAIN": domain,
        "KITH_SCHEME": "http",
        "KITH_DATABASE_URL": f"sqlite:///{tmp_path / 'kith.db'}",
        "KITH_ALLOW_PRIVATE_ADDRESSES": "1",
    }
    env.pop("KITH_SECRET_KEY", None)
    server = Kith(f"http://{domain}", domain, env, tmp_path, tmp_path / "kith.log")
    created = server.run("group", "create", "bookclub")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["id"] == f"http://{domain}/groups/bookclub"

    with server.log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--host", LOOPBACK, "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"kith serve exited with {proc.returncode}:\n{server.log()}")
            try:
                if httpx.get(f"{server.base}/.well-known/nodeinfo", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"kith serve did not answer within 30 s:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@asynccontextmanager
async def serving(port: int, name: str) -> AsyncIterator[LoopbackPeer]:
    p = LoopbackPeer(port, name=name)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@pytest.fixture
async def peer(ports: list[int]) -> AsyncIterator[LoopbackPeer]:
    """alice's server: a real uvicorn on the second loopback port, in this test's event loop."""
    async with serving(ports[1], "alice") as p:
        yield p


@pytest.fixture
async def bob_peer(ports: list[int]) -> AsyncIterator[LoopbackPeer]:
    """bob's server: another real uvicorn, on the third loopback port."""
    async with serving(ports[2], "bob") as p:
        yield p


async def eventually(check: Callable[[], Awaitable[bool]], what: str, kith: Kith, timeout: float = 20) -> None:
    """Poll ``check`` until it holds, failing with the server's log after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; kith's log:\n{kith.log()}")
        await asyncio.sleep(0.1)


async def test_peer_on_loopback_follows_gets_verifiable_accept_and_unfollows(kith: Kith, peer: LoopbackPeer):
    # Discovery, as Mastodon does it when a user types @bookclub@127.0.0.1:P1.
    group = await peer.discover(f"bookclub@{kith.domain}")
    assert group.id == f"{kith.base}/groups/bookclub"
    assert group.inbox == f"{group.id}/inbox"
    assert group.shared_inbox == f"{kith.base}/inbox"
    assert group.doc["publicKey"]["owner"] == group.id

    # Follow, signed by bovine, to the group's inbox.
    follow = peer.follow(group.id)
    r = await peer.post(group.inbox, follow)
    assert r.status_code == 202, (r.status_code, r.text, kith.log())

    # The in-process worker delivers an Accept that bovine verifies with the group's key.
    async def accepted() -> bool:
        return bool(peer.of_type("Accept"))

    await eventually(accepted, "the Accept", kith)
    accept = peer.of_type("Accept")[0]
    assert accept.signer == group.id, (accept.headers, kith.log())
    assert accept.activity["actor"] == group.id
    assert accept.activity["object"]["id"] == follow["id"]
    assert accept.activity["object"]["actor"] == peer.actor_id
    assert accept.activity["id"].startswith(f"{kith.base}/")
    assert accept.path == "/inbox"  # the peer's shared inbox
    assert f'keyId="{group.id}#main-key"' in accept.headers["signature"]
    assert all(d.signer is not None for d in peer.received)  # nothing unverifiable reached the peer

    async def followers() -> int:
        r = await peer.http.get(f"{group.id}/followers", headers={"Accept": AS_JSON})
        assert r.status_code == 200, r.text
        return r.json()["totalItems"]

    assert await followers() == 1

    # Undo(Follow), signed by bovine, to the shared inbox; the membership goes away.
    r = await peer.post(group.shared_inbox, peer.undo(follow))
    assert r.status_code == 202, (r.status_code, r.text, kith.log())

    async def no_followers() -> bool:
        return await followers() == 0

    await eventually(no_followers, "the Undo to remove the follower", kith)
    shown = kith.run("group", "show", "bookclub")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["members"] == 0


async def join(peer: LoopbackPeer, kith: Kith) -> Group:
    """Discover the group and follow it from ``peer``; returns once the group's Accept arrived."""
    group = await peer.discover(f"bookclub@{kith.domain}")
    follow = peer.follow(group.id)
    r = await peer.post(group.inbox, follow)
    assert r.status_code == 202, (r.status_code, r.text, kith.log())

    async def accepted() -> bool:
        return any(d.activity["object"]["id"] == follow["id"] for d in peer.of_type("Accept"))

    await eventually(accepted, f"the Accept of {peer.name}'s Follow", kith)
    return group


async def test_member_post_reaches_other_server_as_verifiable_displayable_announce(
    kith: Kith, peer: LoopbackPeer, bob_peer: LoopbackPeer
):
    alice, bob = peer, bob_peer
    group = await join(alice, kith)
    await join(bob, kith)

    # alice writes on her server; Mastodon sends the Create to the group's shared inbox.
    text = "Has anyone here read Piranesi yet? Next month we could discuss it."
    note = alice.note(f"<p>{text}</p>", group=group)
    create = alice.create(note)
    r = await alice.post(group.shared_inbox, create)
    assert r.status_code == 202, (r.status_code, r.text, kith.log())

    # The group redistributes it to every member server, bob's included.
    async def two_announces(server: LoopbackPeer) -> bool:
        return len(server.of_type("Announce")) >= 2

    await eventually(lambda: two_announces(bob), "two Announces at bob's server", kith)
    await eventually(lambda: two_announces(alice), "two Announces at alice's server", kith)
    for server in (alice, bob):
        announces = server.of_type("Announce")
        assert len(announces) == 2, [a.activity for a in announces]
        assert all(a.path == "/inbox" for a in announces)  # one delivery, to the shared inbox
        assert all(a.signer == group.id for a in announces), (announces, kith.log())
        assert all(f'keyId="{group.id}#main-key"' in a.headers["signature"] for a in announces)
    assert all(d.signer is not None for d in (*alice.received, *bob.received))

    wrapped, plain = sorted(bob.of_type("Announce"), key=lambda a: isinstance(a.activity["object"], str))
    assert wrapped.activity["object"] == create  # alice's Create, embedded unchanged
    assert plain.activity["object"] == note["id"]
    for a in (wrapped, plain):
        assert a.activity["actor"] == group.id
        assert a.activity["to"] == ["https://www.w3.org/ns/activitystreams#Public"]
        assert a.activity["cc"] == [f"{group.id}/followers"]
        assert a.activity["audience"] == group.id

    # Display it as Mastodon does a boost: fetch the announced id from its origin.
    r = await bob.http.get(plain.activity["object"], headers={"Accept": AS_JSON})
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["type"] == "Note" and shown["id"] == note["id"]
    assert shown["content"] == f"<p>{text}</p>"
    assert shown["attributedTo"] == alice.actor_id

    # The Announce itself dereferences at the group's server.
    r = await bob.http.get(plain.activity["id"], headers={"Accept": AS_JSON})
    assert r.status_code == 200 and r.json()["object"] == note["id"], r.text

    # And the group's own page and API show the post.
    r = await bob.http.get(group.id, headers={"Accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert text in r.text, r.text[-3000:]
    r = await bob.http.get(f"{kith.base}/api/kith/v1/groups/bookclub/threads")
    assert r.status_code == 200, r.text
    (thread,) = r.json()["threads"]
    assert thread["id"] == note["id"]
    assert thread["content_html"] == f"<p>{text}</p>"
    assert thread["author"]["id"] == alice.actor_id
    assert thread["author"]["handle"] == f"@alice@{LOOPBACK}:{alice.port}", thread["author"]
