"""A group's avatar in a real browser: Debian's chromium under Playwright, against a Kith on loopback.

The owner signs in, picks a PNG in the console's "Avatar and header" form and presses
**Upload**; the group's public page then shows it, decoded by the browser at 400x400 from
its content-addressed URL. Skipped without chromium unless ``KITH_REQUIRE_BROWSER=1``
(fixtures in ``tests/browser.py``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from server.accounts import create_user
from server.groups.membership import GroupSpec, create_group

if TYPE_CHECKING:  # imported by pytest_plugins below, so that pytest rewrites its asserts
    from tests.browser import LiveKith

pytest_plugins = ("tests.browser",)  # the fixtures: chromium, page, live_kith

PASSWORD = "correct horse battery"


def test_the_owner_uploads_an_avatar_and_the_group_page_shows_it(live_kith: LiveKith, page: Any, tmp_path: Path):
    live = live_kith
    live.run(create_user(live.services.db, "olga", password=PASSWORD))
    live.run(create_group(live.services.db, GroupSpec(name="bookclub", title="Book Club", owner="olga")))
    avatar = tmp_path / "avatar.png"
    Image.new("RGB", (900, 600), (220, 20, 30)).save(avatar)

    page.goto(live.url("/login"))
    page.get_by_label("User name").fill("olga")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(re.compile(r".*/console$"))
    page.goto(live.url("/console/groups/bookclub/settings"))
    page.get_by_label("New avatar").set_input_files(str(avatar))
    page.locator("form:has(#m-icon)").get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r".*/settings\?done=avatar$"))
    assert page.get_by_role("status").inner_text() == "Avatar saved. Member servers are sent the change."
    preview = page.get_by_role("img", name="The group's avatar now")
    assert preview.evaluate("img => img.complete && img.naturalWidth") == 400

    page.goto(live.url("/groups/bookclub"))
    shown = page.get_by_role("img", name="Book Club's avatar")
    assert shown.is_visible()
    assert shown.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]") == [True, 400, 400]
    assert re.fullmatch(r".*/groups/bookclub/media/icon-[0-9a-f]{64}\.jpg", shown.get_attribute("src"))
