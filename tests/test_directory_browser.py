"""The home page's directory in a real browser: Debian's chromium through Playwright, against a real
``kith serve`` whose groups got their posts from signed remote members (alice's and bob's
loopback servers, ``tests/test_console_browser.py``'s ``serving``).

Three groups: garden (three posts this week), bookclub (one) and chess (none, the newest).
The directory sorts them by activity, then newest first when asked, and the owner sees the
Stats tab of a group with those posts counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

# First: without playwright or chromium, importing it skips this module too (or fails it under
# KITH_REQUIRE_BROWSER=1), before playwright is imported below.
from tests import test_console_browser as console_browser
from tests.test_console_browser import PASSWORD, World, _kith_cli, kith_env, serving, sign_in
from tests.test_loopback import free_ports

from playwright.sync_api import Page, expect  # isort: skip

# The console tests' fixtures: one chromium for the module, a desktop-sized page per test.
browser = console_browser.browser
page = console_browser.page

GROUPS = {  # name: title, summary, posts this week; created in this order (chess the newest)
    "garden": ("Community Garden", "Plots, seeds and swaps on Saturdays.", 3),
    "bookclub": ("Book Club", "One book a month, discussed slowly.", 1),
    "chess": ("Chess Club", "Casual games and puzzles.", 0),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("directory")
    port, alice_port, bob_port = free_ports(3)
    kith, env = kith_env(tmp, port)
    _kith_cli(kith, "user", "create", "olga", "--password-stdin", stdin=PASSWORD + "\n")
    for name, (title, summary, _) in GROUPS.items():
        _kith_cli(kith, "group", "create", name, "--owner", "olga", "--title", title, "--summary", summary)
    with serving(kith, env, port, (alice_port, bob_port)) as (loop, peers):
        groups = {g: loop.run(peers[0].discover(f"{g}@{kith.domain}")) for g in GROUPS}
        w = World(kith, loop, peers[0], peers[1], groups)
        for peer in peers:
            for g in groups.values():
                assert loop.run(peer.post(g.inbox, peer.follow(g.id))).status_code == 202
        w.eventually(lambda: all(len(p.of_type("Accept")) == len(GROUPS) for p in peers), "the Accepts")
        for name, (_, _, count) in GROUPS.items():
            for n in range(count):
                w.post(peers[n % 2], name, f"<p>Post {n + 1} in {name}</p>")
        yield w


def listed(page: Page) -> list[str]:
    return page.locator("li.community h2").all_inner_texts()


def test_the_directory_lists_groups_and_sorts_by_activity(page: Page, world: World):
    def counted() -> bool:  # the worker takes the posts in a moment
        page.goto(world.kith.base + "/")
        garden = page.locator("li.community", has_text="Community Garden").inner_text()
        return "3 posts and replies in the last 7 days" in garden

    world.eventually(counted, "the garden's posts counted")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Communities on {world.kith.domain}")
    assert listed(page) == ["Community Garden", "Book Club", "Chess Club"]
    garden = page.locator("li.community", has_text="Community Garden")
    expect(garden).to_contain_text(f"@garden@{world.kith.domain}")
    expect(garden).to_contain_text("2 members")
    expect(garden).to_contain_text("Plots, seeds and swaps on Saturdays.")
    expect(page.locator("li.community", has_text="Book Club")).to_contain_text("1 post or reply in the last 7 days")
    expect(page.get_by_role("link", name="Most active")).to_have_attribute("aria-current", "page")
    page.get_by_role("link", name="Newest").click()
    expect(page.get_by_role("link", name="Newest")).to_have_attribute("aria-current", "page")
    assert listed(page) == ["Chess Club", "Book Club", "Community Garden"]
    page.get_by_role("link", name="Most active").click()
    assert listed(page) == ["Community Garden", "Book Club", "Chess Club"]
    page.get_by_role("link", name="Book Club").click()
    expect(page).to_have_url(world.kith.base + "/groups/bookclub")
    # At phone width nothing runs off the side.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(world.kith.base + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_owner_reads_the_groups_figures(page: Page, world: World):
    sign_in(page, world, "olga")
    page.goto(world.kith.base + "/console/groups/garden")
    page.get_by_role("link", name="Stats").click()
    expect(page.get_by_role("heading", name="How the group is doing")).to_be_visible()
    facts: Any = page.locator("dl.facts")
    expect(facts).to_contain_text("Members2")
    expect(facts).to_contain_text("Active, last 7 days2")  # alice and bob posted
    table = page.locator("table.figures tbody tr").first  # the current week, newest first
    expect(table.locator('td[data-label="New threads"]')).to_have_text("3")
    expect(table.locator('td[data-label="Joined"]')).to_have_text("2")
    expect(page.locator("svg#chart-posts")).to_be_visible()
