"""The console in a real browser: Playwright driving Debian's chromium against a real ``kith serve``.

Kith runs as a subprocess on a loopback port (SQLite, in-process worker); two member
servers (alice's and bob's) are real uvicorn servers on other loopback ports that sign
what they send and verify what they receive (``tests/fakes/loopback_peer.py``), run in a
background event loop so that the tests can use Playwright's sync API. One browser for the
module, a fresh context (no cookies) per test.

Skipped when Playwright or ``/usr/bin/chromium`` is missing, unless ``KITH_REQUIRE_BROWSER=1``
(as ``.ci/run`` sets), which makes that a failure. Playwright's own browser downloads are
never used. ``KITH_SCREENSHOTS=DIR`` also saves every console page at desktop and phone width.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.fakes.loopback_peer import Delivery, Group, LoopbackPeer
from tests.test_loopback import LOOPBACK, Kith, free_ports

CHROMIUM = "/usr/bin/chromium"
REQUIRE = os.environ.get("KITH_REQUIRE_BROWSER") == "1"
PASSWORD = "correct horse battery"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
T = TypeVar("T")

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]


def _missing() -> str | None:
    if sync_playwright is None:
        return "playwright is not installed"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


if _missing() is not None:
    if REQUIRE:
        pytest.fail(f"browser tests are required (KITH_REQUIRE_BROWSER=1): {_missing()}", pytrace=False)
    pytest.skip(f"browser tests skipped: {_missing()}", allow_module_level=True)


class LoopThread:
    """An event loop in a thread, for the peers' servers (the tests themselves are synchronous)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@dataclass
class World:
    kith: Kith
    loop: LoopThread
    alice: LoopbackPeer
    bob: LoopbackPeer
    groups: dict[str, Group]

    def eventually(self, check: Any, what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; kith's log:\n{self.kith.log()}")
            time.sleep(0.1)

    def post(self, peer: LoopbackPeer, group: str, html: str) -> dict[str, Any]:
        """``peer``'s user posts to ``group``, signed, as Mastodon does."""
        g = self.groups[group]
        note = peer.note(html, group=g)
        r = self.loop.run(peer.post(g.shared_inbox or g.inbox, peer.create(note)))
        assert r.status_code == 202, (r.status_code, r.text)
        return note


def _kith_cli(kith: Kith, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server", *args],
        env=kith.env,
        cwd=kith.cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _wait_until_serving(proc: subprocess.Popen[bytes], kith: Kith) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"kith serve exited with {proc.returncode}:\n{kith.log()}")
        try:
            if httpx.get(f"{kith.base}/.well-known/nodeinfo", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"kith serve did not answer within 30 s:\n{kith.log()}")
        time.sleep(0.1)


def kith_env(tmp: Path, port: int) -> tuple[Kith, dict[str, str]]:
    """A Kith on ``port`` with its own SQLite file in ``tmp``, allowed to reach loopback peers."""
    domain = f"{LOOPBACK}:{port}"
    env = {
        **os.environ,
        "KITH_DOMAIN": domain,
        "KITH_SCHEME": "http",
        "KITH_DATABASE_URL": f"sqlite:///{tmp / 'kith.db'}",
        "KITH_ALLOW_PRIVATE_ADDRESSES": "1",
    }
    env.pop("KITH_SECRET_KEY", None)
    return Kith(f"http://{domain}", domain, env, tmp, tmp / "kith.log"), env


@contextlib.contextmanager
def serving(
    kith: Kith, env: dict[str, str], port: int, peer_ports: tuple[int, int]
) -> Iterator[tuple[LoopThread, list[LoopbackPeer]]]:
    """``kith serve`` on ``port`` and the loopback servers of alice and bob, stopped at the end."""
    with kith.log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--host", LOOPBACK, "--port", str(port)],
            env=env,
            cwd=kith.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    loop = LoopThread()
    peers: list[LoopbackPeer] = []
    try:
        _wait_until_serving(proc, kith)
        for peer_port, name in zip(peer_ports, ("alice", "bob"), strict=True):
            peer = LoopbackPeer(peer_port, name=name)
            loop.run(peer.start())
            peers.append(peer)
        yield loop, peers
    finally:
        for peer in peers:
            loop.run(peer.stop())
        loop.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """``kith serve`` with groups bookclub (first posts held) and garden, owner olga (nina moderates
    nothing); alice's and bob's servers are members of both."""
    tmp = tmp_path_factory.mktemp("browser")
    port, alice_port, bob_port = free_ports(3)
    kith, env = kith_env(tmp, port)
    for name in ("olga", "nina"):
        _kith_cli(kith, "user", "create", name, "--password-stdin", stdin=PASSWORD + "\n")
    for group in ("bookclub", "garden"):
        _kith_cli(kith, "group", "create", group, "--owner", "olga", "--title", group.title())
    _kith_cli(kith, "mod", "guards", "bookclub", "--as", "olga", "--hold-first-posts", "1")
    with serving(kith, env, port, (alice_port, bob_port)) as (loop, peers):
        groups = {g: loop.run(peers[0].discover(f"{g}@{kith.domain}")) for g in ("bookclub", "garden")}
        w = World(kith, loop, peers[0], peers[1], groups)
        for peer in peers:
            for g in groups.values():
                assert loop.run(peer.post(g.inbox, peer.follow(g.id))).status_code == 202
        w.eventually(lambda: all(len(p.of_type("Accept")) == 2 for p in peers), "both servers' Accepts")
        yield w


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One chromium for this module's tests. Not for the session: Playwright's sync API keeps an
    event loop running in this thread while it is open, which the async tests of the next
    modules could not start beside."""
    assert sync_playwright is not None
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def sign_in(page: Page, world: World, user: str, password: str = PASSWORD) -> None:
    page.goto(f"{world.kith.base}/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def announces_of(peer: LoopbackPeer, group: Group, obj: Any) -> list[Delivery]:
    return [d for d in peer.of_type("Announce") if d.signer == group.id and d.activity["object"] == obj]


def test_moderator_approves_a_held_post_from_a_signed_remote_member(page: Page, world: World):
    note = world.post(world.alice, "bookclub", "<p>My first post here: a review of Middlemarch.</p>")
    sign_in(page, world, "olga")
    expect(page.get_by_role("heading", name="Console")).to_be_visible()
    expect(page.locator(".console-groups li", has_text="Bookclub")).to_contain_text("waiting")
    page.get_by_role("link", name="Bookclub").click()
    item = page.locator("li.item", has_text="a review of Middlemarch")
    expect(item).to_contain_text("Held because: a new member's first posts wait for a moderator")
    item.get_by_label("Reason (optional)").fill("welcome")
    item.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Post approved")
    expect(page.locator("li.item", has_text="a review of Middlemarch")).to_have_count(0)
    group = world.groups["bookclub"]
    world.eventually(lambda: announces_of(world.bob, group, note["id"]), "bob's server to receive the Announce")
    world.eventually(lambda: announces_of(world.alice, group, note["id"]), "alice's server to receive the Announce")
    # At phone width nothing runs off the side of the page.
    page.set_viewport_size({"width": 390, "height": 844})
    for path in (
        "/console",
        "/console/groups/bookclub",
        "/console/groups/bookclub/members",
        "/console/groups/bookclub/log",
    ):
        page.goto(world.kith.base + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path


def test_moderator_resolves_a_report_by_removing_the_post(page: Page, world: World):
    group = world.groups["garden"]
    note = world.post(world.alice, "garden", "<p>Cheap watches at totally-not-spam.example</p>")
    world.eventually(lambda: announces_of(world.bob, group, note["id"]), "the post's Announce")
    flag = world.bob.flag([world.alice.actor_id, note["id"]], "Spam, against rule 1.", to=world.alice.actor_id)
    assert world.loop.run(world.bob.post(group.inbox, flag)).status_code == 202
    sign_in(page, world, "olga")
    item = page.locator("li.item.report", has_text="Spam, against rule 1.")

    def reported() -> bool:
        page.goto(f"{world.kith.base}/console/groups/garden")
        return item.count() == 1

    world.eventually(reported, "the report in the garden's queue")
    expect(item).to_contain_text("Cheap watches")
    item.get_by_role("button", name="Remove").click()
    expect(page.get_by_role("status")).to_contain_text("Report resolved: the reported posts are removed")

    def removal(peer: LoopbackPeer) -> bool:
        return bool(
            [
                d
                for d in peer.of_type("Announce")
                if isinstance(d.activity["object"], dict)
                and d.activity["object"].get("type") == "Delete"
                and d.activity["object"].get("object") == note["id"]
                and d.signer == group.id
            ]
        )

    world.eventually(lambda: removal(world.bob) and removal(world.alice), "the removal at both member servers")
    page.get_by_role("link", name="Log").click()
    expect(page.locator("table.list")).to_contain_text("olga")


def test_who_moderates_nothing_gets_403(page: Page, world: World):
    # Signed in with the keyboard alone: the user name field has the focus, Tab, Enter.
    page.goto(f"{world.kith.base}/login")
    expect(page.get_by_label("User name")).to_be_focused()
    page.keyboard.type("nina")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Console")).to_be_visible()
    expect(page.get_by_text("You moderate no group yet.")).to_be_visible()
    response = page.goto(f"{world.kith.base}/console/groups/bookclub")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="403 Forbidden")).to_be_visible()
    expect(page.get_by_role("link", name="Back to the console")).to_be_visible()


def test_a_post_without_a_csrf_token_changes_nothing(page: Page, world: World):
    note = world.post(world.bob, "bookclub", "<p>bob's first post, held</p>")
    sign_in(page, world, "olga")
    queue = f"{world.kith.base}/console/groups/bookclub"
    item = page.locator("li.item", has_text="bob's first post, held")

    def held() -> bool:
        page.goto(queue)
        return item.count() == 1

    world.eventually(held, "bob's post in the queue")
    # The browser's own cookies, but no token: what a forged cross-site form would send.
    response = page.request.post(f"{queue}/act", form={"action": "approve-post", "target": note["id"]})
    assert response.status == 403
    page.goto(queue)
    expect(item).to_have_count(1)
    still = _kith_cli(world.kith, "mod", "held", "bookclub")
    assert note["id"] in still
    assert not announces_of(world.alice, world.groups["bookclub"], note["id"])


def test_screenshots_of_every_console_page(browser: Browser, world: World):
    out = os.environ.get("KITH_SCREENSHOTS")
    if not out:
        pytest.skip("set KITH_SCREENSHOTS=DIR to save screenshots")
    Path(out).mkdir(parents=True, exist_ok=True)
    world.post(world.alice, "garden", "<p>Tomatoes or peppers first?</p>")
    note = world.post(world.bob, "garden", "<p>Buy my seeds at seeds.example</p>")
    flag = world.alice.flag([world.bob.actor_id, note["id"]], "Advertising.", to=world.bob.actor_id)
    world.loop.run(world.alice.post(world.groups["garden"].inbox, flag))
    time.sleep(2)
    pages = ["/login", "/console", "/console/account"] + [
        f"/console/groups/{g}{p}"
        for g in ("bookclub", "garden")
        for p in ("", "/members", "/bans", "/moderators", "/settings", "/log")
    ]
    for label, (width, height) in {"desktop": (1280, 900), "phone": (390, 844)}.items():
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.goto(f"{world.kith.base}/login")
        page.screenshot(path=f"{out}/login-{label}.png", full_page=True)
        sign_in(page, world, "olga")
        for path in pages[1:]:
            response = page.goto(world.kith.base + path)
            assert response is not None and response.status == 200, path
            slug = path.strip("/").replace("/", "-")
            page.screenshot(path=f"{out}/{slug}-{label}.png", full_page=True)
        page.goto(world.kith.base + "/groups/garden")
        page.screenshot(path=f"{out}/public-garden-{label}.png", full_page=True)
        context.close()


def test_the_eleventh_wrong_password_gets_429(page: Page, world: World):
    # Last in this module: it throttles this address, for every account, for 15 minutes.
    for _ in range(10):
        sign_in(page, world, "olga", "not the password")
        expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as answer:
        sign_in(page, world, "olga", "not the password")
    assert answer.value.status == 429
    assert int(answer.value.headers["retry-after"]) > 0
    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins")
    sign_in(page, world, "olga")  # the right password waits too
    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins")
