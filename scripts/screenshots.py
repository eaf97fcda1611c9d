"""Take full-page screenshots of Kith's web pages in a real browser and check nothing obvious is broken.

Opens the home page, a group page, one of its threads and a person page with Playwright driving the system
Chromium (``/usr/bin/chromium``, no ``playwright install`` needed), at a desktop viewport
(1280x900) and a phone viewport (390x844). For each page it saves a full-page PNG and
prints the file path, the HTTP status and the page title.

Checks, per page and viewport:

* the document answered 200;
* ``/static/kith.css`` was requested and answered 200 (seen by a response listener);
* on the group page, ``<link rel="alternate" type="application/activity+json">`` is present;
* on the thread page, a link back to the group is present.

The thread is ``--thread POST_ID`` or, without it, the first thread the group page links to
(none when the group has no threads: then the thread page is left out, with a note).

Usage::

    python scripts/screenshots.py [--base-url http://127.0.0.1:8766] [--out ./screenshots]
                                  [--group bookclub] [--user alice] [--thread POST_ID]

Exits 1 (after taking every screenshot) if any check failed.
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

from playwright.sync_api import Browser, Response, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORTS: dict[str, tuple[int, int]] = {"desktop": (1280, 900), "phone": (390, 844)}
CSS_PATH = "/static/kith.css"
ACTIVITY_ALTERNATE = 'link[rel="alternate"][type="application/activity+json"]'


@dataclass
class Page:
    """One page to visit: a short slug for file names, its path, and whether it must advertise ActivityPub JSON."""

    slug: str
    path: str
    needs_alternate: bool = False
    needs: list[str] = field(default_factory=list)  # CSS selectors that must match something


@dataclass
class Result:
    """What one visit produced."""

    file: Path
    status: int | None
    title: str
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def first_thread(base_url: str, group: str) -> int | None:
    """The id of the first thread the group page links to, or None."""
    request = urllib.request.Request(urljoin(base_url, f"groups/{group}"), headers={"Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=10) as response:
        html = response.read().decode("utf-8", "replace")
    found = re.search(rf'href="/groups/{re.escape(group)}/threads/(\d+)"', html)
    return int(found.group(1)) if found else None


def pages(group: str, user: str, thread: int | None = None) -> list[Page]:
    """The pages to screenshot (the thread page only when there is a ``thread``)."""
    listed = [
        Page("home", "/"),
        Page(f"group-{group}", f"/groups/{group}", needs_alternate=True),
        Page(f"user-{user}", f"/users/{user}"),
    ]
    if thread is not None:
        back = f'nav.crumbs a[href="/groups/{group}"]'
        listed.insert(2, Page(f"thread-{group}-{thread}", f"/groups/{group}/threads/{thread}", needs=[back]))
    return listed


def visit(browser: Browser, base_url: str, page: Page, viewport: str, out_dir: Path) -> Result:
    """Open ``page`` at ``viewport``, save a full-page PNG into ``out_dir`` and run the checks."""
    width, height = VIEWPORTS[viewport]
    context = browser.new_context(viewport={"width": width, "height": height})
    css_statuses: list[int] = []

    def on_response(response: Response) -> None:
        if response.url.split("?", 1)[0].endswith(CSS_PATH):
            css_statuses.append(response.status)

    try:
        tab = context.new_page()
        tab.on("response", on_response)
        response = tab.goto(urljoin(base_url, page.path), wait_until="load")
        tab.wait_for_load_state("networkidle")
        file = out_dir / f"{page.slug}-{viewport}.png"
        tab.screenshot(path=str(file), full_page=True)
        result = Result(file=file, status=response.status if response else None, title=tab.title())

        if result.status != 200:
            result.failures.append(f"status {result.status}, expected 200")
        if not css_statuses:
            result.failures.append(f"{CSS_PATH} was never requested")
        elif any(s != 200 for s in css_statuses):
            result.failures.append(f"{CSS_PATH} answered {css_statuses}, expected 200")
        if page.needs_alternate and tab.locator(ACTIVITY_ALTERNATE).count() == 0:
            result.failures.append('no <link rel="alternate" type="application/activity+json">')
        for selector in page.needs:
            if tab.locator(selector).count() == 0:
                result.failures.append(f"nothing matches {selector}")
        overflow = tab.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 0:
            # Reported, not failed: horizontal scrolling is a layout smell worth a look, not a breakage.
            result.notes.append(f"overflows horizontally by {overflow}px")
        return result
    finally:
        context.close()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, take every screenshot, print a line per file; return 1 if any check failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8766", help="where Kith is serving")
    parser.add_argument("--out", type=Path, default=Path("screenshots"), help="directory for the PNGs")
    parser.add_argument("--group", default="bookclub", help="group name for /groups/<name>")
    parser.add_argument("--user", default="alice", help="user name for /users/<name>")
    parser.add_argument(
        "--thread", type=int, help="root post id for /groups/<group>/threads/<id> (default: the group's first thread)"
    )
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    base_url = args.base_url.rstrip("/") + "/"
    failed = False
    thread = args.thread if args.thread is not None else first_thread(base_url, args.group)
    if thread is None:
        print(f"  note: /groups/{args.group} links to no thread: no thread page taken")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for page in pages(args.group, args.user, thread):
                for viewport in VIEWPORTS:
                    result = visit(browser, base_url, page, viewport, args.out)
                    print(f"{result.file}\t{result.status}\t{result.title}")
                    for note in result.notes:
                        print(f"  note: {page.path} at {viewport}: {note}")
                    for failure in result.failures:
                        failed = True
                        print(f"  FAIL: {page.path} at {viewport}: {failure}")
        finally:
            browser.close()
    print("FAILED" if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
