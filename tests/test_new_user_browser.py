"""A new server's first hour, in a real browser: Playwright driving Debian's chromium against ``kith serve``.

One shell command makes the admin account (``kith user create ada --admin --password-stdin``);
everything after it is done in the browser: sign in at ``/login``, create a group from the
admin console, give it a purpose and rules in the profile form, make its guard hold each
new member's first post. Then two member servers (real signing loopback peers, as in
``tests/test_console_browser.py``) discover the group and follow it, one posts, and the
admin approves the held post from ``/console/groups/NAME``; both member servers receive
the group's signed ``Announce``.

Skipped without Playwright or ``/usr/bin/chromium`` unless ``KITH_REQUIRE_BROWSER=1``.
``KITH_SCREENSHOTS=DIR`` also saves the profile form at 1280 and 390 px wide.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.loopback_peer import LoopbackPeer
from tests.test_console_browser import (  # skips this module too when Playwright or chromium is missing
    CHROMIUM,
    CHROMIUM_ARGS,
    Browser,
    Page,
    World,
    _kith_cli,
    expect,
    kith_env,
    serving,
    sync_playwright,
)
from tests.test_loopback import free_ports

PASSWORD = "a long admin password"
PURPOSE = "We walk the old railway line every Sunday morning."


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[World]:
    """``kith serve`` on a fresh SQLite database whose only account is the admin ada, made by one
    shell command; alice's and bob's servers are up but know no group yet (``groups`` is empty)."""
    port, alice_port, bob_port = free_ports(3)
    kith, env = kith_env(tmp_path, port)
    _kith_cli(kith, "user", "create", "ada", "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    with serving(kith, env, port, (alice_port, bob_port)) as (loop, peers):
        yield World(kith, loop, peers[0], peers[1], {})


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def screenshots(browser: Browser, base: str, path: str, prefix: str) -> None:
    """The page at ``path`` at desktop and phone width, signed in as ada, into ``KITH_SCREENSHOTS``."""
    out = os.environ.get("KITH_SCREENSHOTS")
    if not out:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    for label, (width, height) in {"1280": (1280, 900), "390": (390, 844)}.items():
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        sign_in(page, base)
        page.goto(base + path)
        page.screenshot(path=f"{out}/{prefix}-{label}.png", full_page=True)
        context.close()


def sign_in(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Console")).to_be_visible()


def test_a_new_admin_starts_a_group_and_approves_its_first_post(browser: Browser, fresh: World):
    base = fresh.kith.base
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(20_000)
    sign_in(page, base)

    # The admin console's groups section: create the group.
    page.get_by_role("link", name="Admin", exact=True).first.click()
    page.get_by_role("navigation", name="Admin sections").get_by_role("link", name="Groups").click()
    page.get_by_label("Name (in its address").fill("walkers")
    page.get_by_label("Title").fill("Sunday Walkers")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("status")).to_have_text("Created the group walkers.")

    # Its console: the purpose and rules in the profile form, then the guard on first posts.
    page.get_by_role("link", name="Sunday Walkers").click()
    page.wait_for_url(re.compile(r".*/console/groups/walkers$"))
    page.get_by_role("link", name="Profile and guards").click()
    page.get_by_label("Purpose").fill(PURPOSE)
    page.get_by_label("Rules (one per line)").fill("Be kind.\nLeave no litter.")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("status")).to_have_text("Profile saved. Member servers are sent any change.")
    expect(page.get_by_label("Purpose")).to_have_value(PURPOSE)
    page.get_by_label("Hold each new member's first posts").fill("1")
    page.get_by_role("button", name="Save guards").click()
    expect(page.get_by_role("status")).to_have_text("Guards saved.")
    expect(page.get_by_label("Hold each new member's first posts")).to_have_value("1")
    screenshots(browser, base, "/console/groups/walkers/settings", "profile-form")
    # A value the domain refuses: its reason on the page, what was typed kept, nothing saved.
    page.get_by_label("What members gain").fill("x" * 2001)
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("alert")).to_have_text("Not saved: the benefits must be at most 2000 characters")
    expect(page.get_by_label("Purpose")).to_have_value(PURPOSE)
    for width in (390, 1280):  # nothing runs off the side at phone width, the reason shown or not
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        if os.environ.get("KITH_SCREENSHOTS"):
            page.screenshot(path=f"{os.environ['KITH_SCREENSHOTS']}/profile-form-refused-{width}.png", full_page=True)
    page.goto(f"{base}/console/groups/walkers/settings")
    expect(page.get_by_label("What members gain")).to_have_value("")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})

    # Two member servers find the group (its purpose is in what they fetch) and follow it.
    group = fresh.loop.run(fresh.alice.discover(f"walkers@{fresh.kith.domain}"))
    fresh.groups["walkers"] = group
    assert {f["name"]: f["value"] for f in group.doc["attachment"]}["Purpose"] == PURPOSE
    for peer in (fresh.alice, fresh.bob):
        assert fresh.loop.run(peer.post(group.inbox, peer.follow(group.id))).status_code == 202
    fresh.eventually(lambda: all(p.of_type("Accept") for p in (fresh.alice, fresh.bob)), "both Accepts")

    # alice's first post is held; the admin approves it from the group's queue.
    note = fresh.post(fresh.alice, "walkers", "<p>Hello walkers, see you on Sunday at the old station.</p>")
    item = page.locator("li.item", has_text="see you on Sunday at the old station")

    def held() -> bool:
        page.goto(f"{base}/console/groups/walkers")
        return item.count() == 1

    fresh.eventually(held, "the post in the queue")
    expect(item).to_contain_text("Held because: a new member's first posts wait for a moderator")
    item.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Post approved")

    def announced(peer: LoopbackPeer) -> bool:
        return any(d.signer == group.id and d.activity["object"] == note["id"] for d in peer.of_type("Announce"))

    fresh.eventually(lambda: announced(fresh.alice) and announced(fresh.bob), "the Announce at both member servers")
    page.get_by_role("link", name="Log").click()
    log = page.locator("table.list")
    expect(log).to_contain_text("edit")
    expect(log).to_contain_text("approve")
    page.context.close()


def test_a_peer_made_moderator_approves_a_held_post_by_replying(browser: Browser, fresh: World):
    """The admin lists bob's Mastodon-rules account as a moderator in the console; alice's first
    post is held; bob gets the group's direct message on his own server and answers ``approve``
    from there; both member servers receive the Announce, and the log names bob."""
    base = fresh.kith.base
    _kith_cli(fresh.kith, "group", "create", "walkers", "--title", "Sunday Walkers", "--owner", "ada")
    _kith_cli(fresh.kith, "mod", "guards", "walkers", "--as", "ada", "--hold-first-posts", "1")
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(20_000)
    sign_in(page, base)
    page.goto(f"{base}/console/groups/walkers/moderators")
    page.get_by_label("A local user name, or a remote account's URI").fill(fresh.bob.actor_id)
    page.get_by_role("button", name="Add").click()
    expect(page.locator("table.list")).to_contain_text(fresh.bob.actor_id)

    group = fresh.loop.run(fresh.alice.discover(f"walkers@{fresh.kith.domain}"))
    fresh.groups["walkers"] = group
    for peer in (fresh.alice, fresh.bob):
        assert fresh.loop.run(peer.post(group.inbox, peer.follow(group.id))).status_code == 202
    fresh.eventually(lambda: all(p.of_type("Accept") for p in (fresh.alice, fresh.bob)), "both Accepts")

    note = fresh.post(fresh.alice, "walkers", "<p>First walk: meet at the old station at nine.</p>")

    def notices() -> list[dict]:
        return [
            d.activity
            for d in fresh.bob.of_type("Create")
            if d.signer == group.id
            and d.path == "/users/bob/inbox"
            and d.activity["object"]["to"] == [fresh.bob.actor_id]
        ]

    fresh.eventually(lambda: len(notices()) == 1, "the notice in bob's inbox")
    [notice] = notices()
    content = notice["object"]["content"]
    assert "Post held for approval by @alice@" in content and "meet at the old station" in content
    assert "https://www.w3.org/ns/activitystreams#Public" not in str(notice)

    # bob answers from his Mastodon: a direct reply to the group's message, the group mentioned first.
    reply = {
        "id": f"{fresh.bob.actor_id}/statuses/{uuid.uuid4().int >> 64}",
        "type": "Note",
        "attributedTo": fresh.bob.actor_id,
        "inReplyTo": notice["object"]["id"],
        "to": [group.id],
        "cc": [],
        "content": (
            f'<p><span class="h-card"><a href="{group.id}" class="u-url mention">@<span>walkers</span></a></span>'
            " approve</p>"
        ),
        "tag": [{"type": "Mention", "href": group.id, "name": f"@walkers@{fresh.kith.domain}"}],
        "published": "2026-12-08T10:00:00Z",
    }
    fresh.bob.objects[reply["id"]] = reply
    assert fresh.loop.run(fresh.bob.post(group.inbox, fresh.bob.create(reply))).status_code == 202

    def announced(peer: LoopbackPeer) -> bool:
        return any(d.signer == group.id and d.activity["object"] == note["id"] for d in peer.of_type("Announce"))

    fresh.eventually(lambda: announced(fresh.alice) and announced(fresh.bob), "the Announce at both member servers")
    fresh.eventually(lambda: len(notices()) == 2, "the group's answer to bob")
    assert "Approved the post" in notices()[1]["object"]["content"]
    page.goto(f"{base}/console/groups/walkers/log")
    expect(page.locator("table.list")).to_contain_text(fresh.bob.actor_id)
    page.context.close()
