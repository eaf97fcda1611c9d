"""Tried as a new user would: real Mastodon-compatible peers on loopback and a group.

Kith runs as a subprocess (``python -m server serve``, in-process worker) on one
loopback port and each peer is a real uvicorn server on another (alice's server,
bob's server); everything between them is real HTTP over 127.0.0.1. A peer discovers
the group by WebFinger, follows it with a bovine-signed Follow, receives an Accept
that bovine verifies against the group's published key, and unfollows; when alice
posts to the group, bob's server receives the group's Announces and can display it.
An admin's ``kith domain block``, run in a second shell against the same database,
cuts a peer on another loopback host (127.0.0.2) off from the running server. A report
(``Flag``) from bob's server about alice's post reaches the group's moderator, who
removes the post from a shell; every member server receives the removal.
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

from tests.fakes.loopback_peer import AS_JSON, Delivery, Group, LoopbackPeer
from tests.shell import run_kith

LOOPBACK = "127.0.0.1"
OTHER_LOOPBACK = "127.0.0.2"  # Linux routes all of 127/8 to lo: a second host, for host-wide policy


def free_ports(n: int, host: str = LOOPBACK) -> list[int]:
    """``n`` distinct free TCP ports on ``host`` (all held open at once, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
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
        """A ``kith`` command in a second shell: this test's process, never the server's (tests/shell.py)."""
        return run_kith(list(args), env=self.env, cwd=self.cwd)


@pytest.fixture
def ports() -> list[int]:
    """Kith's, alice's server's and bob's server's."""
    return free_ports(3)


@pytest.fixture
def group_owner() -> str | None:
    """The local account that owns bookclub (none); a test overrides it with ``parametrize``."""
    return None


@pytest.fixture
def kith(tmp_path: Path, ports: list[int], group_owner: str | None) -> Iterator[Kith]:
    """``kith group create bookclub`` (after ``kith user create <owner>``, when the group has an
    owner), then ``kith serve`` on loopback until the test ends."""
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
    owner_args: list[str] = []
    if group_owner is not None:
        user = server.run("user", "create", group_owner)
        assert user.returncode == 0, user.stderr
        assert user.stdout.strip(), "kith user create printed no password"
        owner_args = ["--owner", group_owner]
    created = server.run("group", "create", "bookclub", *owner_args)
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
async def serving(port: int, name: str, host: str = LOOPBACK) -> AsyncIterator[LoopbackPeer]:
    p = LoopbackPeer(port, name=name, host=host)
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


async def test_domain_block_from_a_second_shell_cuts_the_blocked_host_off(
    kith: Kith, peer: LoopbackPeer, bob_peer: LoopbackPeer
):
    alice, bob = peer, bob_peer  # both on 127.0.0.1
    async with serving(free_ports(1, OTHER_LOOPBACK)[0], "carol", host=OTHER_LOOPBACK) as carol:
        group = await join(alice, kith)
        await join(bob, kith)
        await join(carol, kith)

        def members() -> int:
            shown = kith.run("group", "show", "bookclub")
            assert shown.returncode == 0, shown.stderr
            return json.loads(shown.stdout)["members"]

        assert members() == 3

        # The admin, in a second shell, blocks carol's host while `kith serve` runs.
        seen_by_carol = len(carol.received)
        blocked = kith.run("domain", "block", OTHER_LOOPBACK, "--reason", "test")
        assert blocked.returncode == 0, blocked.stderr
        block = json.loads(blocked.stdout)
        assert block["domain"] == OTHER_LOOPBACK and block["severity"] == "suspend", block
        assert block["effects"]["memberships_removed"] == 1, block

        # Her membership went in the block's own transaction.
        async def two_members() -> bool:
            return members() == 2

        await eventually(two_members, "carol's membership to go", kith, timeout=5)

        # The running server reloads the policy within ~2 s. Probe with a signed GET (the
        # authorized-fetch door refuses blocked signers) rather than a Follow: a Follow
        # that slipped in before the reload would be accepted and make her a member again.
        async def server_refuses_carol() -> bool:
            return (await carol.signed_get(group.id)).status_code == 403

        await eventually(server_refuses_carol, "the running server to load the block", kith, timeout=10)
        assert (await alice.signed_get(group.id)).status_code == 200

        # carol's new Follow is refused at the door, and nothing is stored for it.
        follow = carol.follow(group.id)
        for inbox in (group.inbox, group.shared_inbox):
            r = await carol.post(inbox, follow)
            assert r.status_code == 403, (r.status_code, r.text, kith.log())
        assert members() == 2

        # alice posts; the group redistributes to every member server but carol's.
        note = alice.note("<p>Who is bringing the snacks on Thursday?</p>", group=group)
        r = await alice.post(group.shared_inbox, alice.create(note))
        assert r.status_code == 202, (r.status_code, r.text, kith.log())

        async def two_announces(server: LoopbackPeer) -> bool:
            return len(server.of_type("Announce")) >= 2

        await eventually(lambda: two_announces(alice), "two Announces at alice's server", kith)
        await eventually(lambda: two_announces(bob), "two Announces at bob's server", kith)
        for server in (alice, bob):
            announces = server.of_type("Announce")
            assert len(announces) == 2, [a.activity for a in announces]
            assert all(a.signer == group.id for a in announces), (announces, kith.log())
            assert {
                a.activity["object"] if isinstance(a.activity["object"], str) else a.activity["object"]["id"]
                for a in announces
            } == {note["id"], f"{note['id']}/activity"}
        await asyncio.sleep(1.5)  # time for a stray delivery to carol to show up
        assert carol.received[seen_by_carol:] == [], [d.activity for d in carol.received[seen_by_carol:]]

        r = await bob.http.get(f"{group.id}/followers", headers={"Accept": AS_JSON})
        assert r.status_code == 200 and r.json()["totalItems"] == 2, r.text

        # Lifting the block lets carol follow again, once the server has reloaded.
        unblocked = kith.run("domain", "unblock", OTHER_LOOPBACK)
        assert unblocked.returncode == 0, unblocked.stderr
        assert unblocked.stdout.strip() == f"unblocked {OTHER_LOOPBACK}"
        refollow = carol.follow(group.id)

        async def follow_accepted() -> bool:
            r = await carol.post(group.inbox, refollow)  # a 403 stores nothing: safe to retry
            assert r.status_code in (202, 403), (r.status_code, r.text)
            return r.status_code == 202

        await eventually(follow_accepted, "carol's Follow to be accepted after the unblock", kith, timeout=10)

        async def carol_accepted() -> bool:
            return any(d.activity["object"]["id"] == refollow["id"] for d in carol.of_type("Accept"))

        await eventually(carol_accepted, "the Accept of carol's new Follow", kith)
        assert all(d.signer == group.id for d in carol.of_type("Accept"))

        async def three_members() -> bool:
            return members() == 3

        await eventually(three_members, "carol to be a member again", kith, timeout=5)


@pytest.mark.parametrize("group_owner", ["mod1"])
async def test_reported_post_is_removed_by_a_moderator_and_every_member_server_hears_of_it(
    kith: Kith, peer: LoopbackPeer, bob_peer: LoopbackPeer
):
    alice, bob = peer, bob_peer
    group = await join(alice, kith)
    await join(bob, kith)

    # alice posts to the group; both member servers get its Announces.
    text = "Buy cheap watches at totally-not-spam.example!"
    note = alice.note(f"<p>{text}</p>", group=group)
    r = await alice.post(group.shared_inbox, alice.create(note))
    assert r.status_code == 202, (r.status_code, r.text, kith.log())

    def plain_announces(server: LoopbackPeer) -> list[Delivery]:
        return [a for a in server.of_type("Announce") if a.activity["object"] == note["id"]]

    async def announced_everywhere() -> bool:
        return all(plain_announces(s) for s in (alice, bob))

    await eventually(announced_everywhere, "the plain Announce of alice's post at both servers", kith)
    (plain,) = plain_announces(bob)
    r = await bob.http.get(f"{kith.base}/api/kith/v1/groups/bookclub/threads")
    assert r.status_code == 200 and [t["id"] for t in r.json()["threads"]] == [note["id"]], r.text
    r = await bob.http.get(group.id, headers={"Accept": "text/html"})
    assert r.status_code == 200 and text in r.text, r.text[-3000:]

    # A user on bob's server reports it; Mastodon forwards the report from its instance actor.
    comment = "Spam, against rule 1 of the group."
    flag = bob.flag([alice.actor_id, note["id"]], comment, to=alice.actor_id)
    r = await bob.post(group.inbox, flag)
    assert r.status_code == 202, (r.status_code, r.text, kith.log())

    # The moderator, in a shell, sees the report.
    def reports() -> list[dict]:
        listed = kith.run("report", "list", "--as", "mod1")
        assert listed.returncode == 0, listed.stderr
        return json.loads(listed.stdout)

    async def reported() -> bool:
        return bool(reports())

    await eventually(reported, "the report to reach mod1", kith)
    (report,) = reports()
    assert report["state"] == "open", report
    assert report["reporter"] == bob.instance_actor_id, report
    assert report["target_account"] == alice.actor_id, report
    assert report["target_posts"] == [note["id"]], report
    assert report["comment"] == comment, report

    # ...and removes the post while resolving it.
    resolved = kith.run(
        "report", "resolve", str(report["id"]), "--as", "mod1", "--take", "remove", "--reason", "rule 1"
    )
    assert resolved.returncode == 0, resolved.stderr
    resolved_report = json.loads(resolved.stdout)
    assert resolved_report["state"] == "resolved" and resolved_report["action_taken"] == "remove", resolved_report

    # Every member server receives the group's Announce of the moderator's Delete, and the
    # Undo of the plain Announce (which is what Mastodon displayed).
    def removals(server: LoopbackPeer) -> list[Delivery]:
        return [
            a
            for a in server.of_type("Announce")
            if isinstance(a.activity["object"], dict) and a.activity["object"].get("type") == "Delete"
        ]

    def undos(server: LoopbackPeer) -> list[Delivery]:
        return [
            u
            for u in server.of_type("Undo")
            if isinstance(u.activity["object"], dict) and u.activity["object"].get("id") == plain.activity["id"]
        ]

    async def removed_everywhere() -> bool:
        return all(removals(s) and undos(s) for s in (alice, bob))

    await eventually(removed_everywhere, "the removal at both member servers", kith)
    mod_uri = f"{kith.base}/users/mod1"
    for server in (alice, bob):
        (wrapped,) = removals(server)
        assert wrapped.signer == group.id, (wrapped.headers, kith.log())
        assert wrapped.path == "/inbox"
        assert wrapped.activity["actor"] == group.id
        delete = wrapped.activity["object"]
        assert delete["actor"] == mod_uri, delete
        assert delete["object"] == note["id"], delete
        assert delete["summary"] == "rule 1", delete
        assert group.id in delete["cc"] and delete["audience"] == group.id, delete

        (undo,) = undos(server)
        assert undo.signer == group.id, (undo.headers, kith.log())
        assert undo.activity["actor"] == group.id
        assert undo.activity["object"]["type"] == "Announce"
        assert undo.activity["object"]["actor"] == group.id
        assert undo.activity["object"]["object"] == note["id"]
    assert all(d.signer is not None for d in (*alice.received, *bob.received))

    # The report stays resolved; the public mod log and the group's API show the removal.
    (report,) = reports()
    assert report["state"] == "resolved", report
    r = await bob.http.get(f"{group.id}/modlog", headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    entries = [e for e in r.json() if e["action"] == "remove"]
    assert [(e["target"], e["reason"]) for e in entries] == [(note["id"], "rule 1")], r.json()
    assert all("moderator" not in e for e in r.json())  # moderators stay unnamed in public
    r = await bob.http.get(f"{kith.base}/api/kith/v1/groups/bookclub/threads")
    assert r.status_code == 200 and r.json()["threads"] == [], r.text
    r = await bob.http.get(group.id, headers={"Accept": "text/html"})
    assert r.status_code == 200 and text not in r.text, r.text[-3000:]
