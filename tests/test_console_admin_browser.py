"""The admin console in a real browser: Debian's chromium under Playwright, against a Kith on loopback.

An admin blocks a domain from the form and that domain's next signed inbox request gets
403; an admin imports a CSV of 1,000 blocks and watches the progress bar reach 100 %; a
user who is no admin gets a 403 page at /console/admin. Skipped without chromium unless
``KITH_REQUIRE_BROWSER=1`` (fixtures in ``tests/browser.py``).
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa

from server.accounts import create_user
from server.groups.membership import GroupSpec, create_group
from server.tables import domain_blocks
from tests.fakes.mastodon import FakeMastodon

if TYPE_CHECKING:  # imported by pytest_plugins below, so that pytest rewrites its asserts
    from tests.browser import LiveKith

pytest_plugins = ("tests.browser",)  # the fixtures: chromium, page, live_kith

PASSWORD = "correct horse battery"


def sign_in(page: Any, live: LiveKith, name: str) -> None:
    """Through the form, with the keyboard: the name, the password, Enter."""
    page.goto(live.url("/login"))
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(re.compile(r".*/console$"))


def block_count(live: LiveKith) -> int:
    async def count() -> int:
        async with live.services.db.read() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(domain_blocks))).scalar_one())

    return live.run(count())


def test_an_admin_blocks_a_domain_and_its_next_signed_inbox_request_gets_403(live_kith: LiveKith, page: Any):
    live = live_kith
    live.run(create_user(live.services.db, "ada", admin=True, password=PASSWORD))
    live.run(create_group(live.services.db, GroupSpec(name="bookclub")))
    inbox = live.url("/groups/bookclub/inbox")
    group = live.url("/groups/bookclub")

    async def follow() -> int:
        fake = FakeMastodon("mastodon.example", live.network)
        fake.add_user("alice")
        async with httpx.AsyncClient() as http:  # real HTTP to the server on loopback
            r = await fake.post(http, "alice", inbox, fake.follow("alice", group))
        await fake.http.aclose()
        return r.status_code

    assert live.run(follow()) == 202  # signed and accepted before the block

    sign_in(page, live, "ada")
    page.get_by_role("link", name="Admin", exact=True).first.click()
    page.get_by_role("link", name="Domains").click()
    page.locator("#domain").fill("mastodon.example")  # (the allowlist form has a "Domain" field too)
    page.get_by_label("Severity").select_option("suspend")
    page.get_by_label("Public comment").fill("spam wave")
    page.get_by_role("button", name="Block", exact=True).click()
    page.wait_for_url(re.compile(r".*/console/admin/domains\?notice=blocked.*"))
    assert page.get_by_role("status").inner_text() == "Blocked mastodon.example."
    assert page.locator("table.list").get_by_text("mastodon.example").count() == 1

    assert live.run(follow()) == 403


def test_an_admin_imports_1000_blocks_and_watches_it_complete(live_kith: LiveKith, page: Any, tmp_path: Path):
    live = live_kith
    live.run(create_user(live.services.db, "ada", admin=True, password=PASSWORD))
    csv = tmp_path / "blocklist.csv"
    lines = [f"spam{i:04}.example,suspend,false,false,bulk,false" for i in range(1000)]
    csv.write_text("#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n" + "\n".join(lines))

    sign_in(page, live, "ada")
    page.goto(live.url("/console/admin/import"))
    page.get_by_label("CSV file").set_input_files(str(csv))
    page.get_by_role("button", name="Preview").click()
    page.wait_for_url(re.compile(r".*/console/admin/imports/\d+$"))
    assert page.get_by_role("heading", name="Added (1000)").count() == 1
    assert page.get_by_role("heading", name="Refused (0)").count() == 1
    assert block_count(live) == 0  # the preview changed nothing

    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if request.url.endswith("/progress") else None)
    page.get_by_role("button", name="Apply 1000 lines").click()
    bar = page.locator("progress#import-bar")
    seen: list[int] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if page.get_by_text("Done: 1000 blocks added").count():
            break
        if bar.count():
            with contextlib.suppress(Exception):  # the page reloading under us
                seen.append(int(float(bar.get_attribute("value") or 0)))
        page.wait_for_timeout(250)
    assert page.get_by_text("Done: 1000 blocks added, 0 updated").count() == 1, seen
    assert page.locator(".import-progress .percent").inner_text() == "100"
    assert bar.get_attribute("value") == bar.get_attribute("max") == "1000"
    assert block_count(live) == 1000
    assert seen == sorted(seen)  # the bar only ever moved forward
    assert polls  # static/admin.js moved it, polling the JSON progress


def test_without_javascript_the_import_page_refreshes_itself_until_done(live_kith: LiveKith, chromium: Any):
    live = live_kith
    live.run(create_user(live.services.db, "ada", admin=True, password=PASSWORD))
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        sign_in(page, live, "ada")
        page.goto(live.url("/console/admin/import"))
        page.get_by_label("Or paste it").fill("\n".join(f"nojs{i}.example" for i in range(400)))
        page.get_by_role("button", name="Preview").click()
        page.get_by_role("button", name="Apply 400 lines").click()
        assert page.get_by_text("Importing…").count() == 1  # still running when the page first shows
        page.get_by_text("Done: 400 blocks added").wait_for(timeout=90_000)  # by <noscript> meta refresh alone
        assert block_count(live) == 400
    finally:
        context.close()


def test_a_user_who_is_no_admin_gets_403_at_the_admin_console(live_kith: LiveKith, page: Any):
    live = live_kith
    live.run(create_user(live.services.db, "mara", password=PASSWORD))
    sign_in(page, live, "mara")
    assert page.get_by_role("link", name="Admin", exact=True).count() == 0
    response = page.goto(live.url("/console/admin"))
    assert response is not None and response.status == 403
    assert page.get_by_role("heading", name="403 Forbidden").count() == 1
    assert "admins only" in page.get_by_role("alert").inner_text()
