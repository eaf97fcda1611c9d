"""Browser tests' fixtures: Playwright driving Debian's chromium against a real Kith on loopback.

Never downloads a browser: it launches ``/usr/bin/chromium``. Without it (or without the
playwright package) the browser tests skip, unless ``KITH_REQUIRE_BROWSER=1`` (set by
``.ci/run``), which makes a missing browser a failure.

``live_kith`` serves a real Kith with uvicorn on a free loopback port, in a thread with its
own event loop, on a fresh SQLite database, with its in-process worker running. Its
outbound requests go through an in-process ``Network`` (fake remote servers, as in the
other tests); ``LiveKith.run`` runs a coroutine on the server's loop (to set data up, or
to send a signed request from a fake remote server to it over real HTTP).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from server.services import Services
from server.settings import Settings
from tests.fakes.network import Network

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
REQUIRE_BROWSER = os.environ.get("KITH_REQUIRE_BROWSER") == "1"
T = TypeVar("T")


def _unavailable(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"a browser is required (KITH_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(f"browser tests skipped: {reason} (set KITH_REQUIRE_BROWSER=1 to make this a failure)")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's chromium under Playwright, for one test module.

    Not for the session: Playwright's sync API keeps its own event loop running on the main
    thread while it is open, and the asyncio tests that a worker runs next could not start theirs.
    """
    if not shutil.which(CHROMIUM):
        _unavailable(f"{CHROMIUM} is not installed (apt install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and a page in it, at desktop width."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveKith:
    """A Kith served over real HTTP on loopback."""

    base_url: str
    settings: Settings
    network: Network
    loop: asyncio.AbstractEventLoop
    services: Services

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        """Run ``coro`` on the server's event loop (its database connections live there)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture
def live_kith(tmp_path: Path) -> Iterator[LiveKith]:
    """A real Kith (web and worker) on a free loopback port, on a fresh SQLite database."""
    import uvicorn

    from server.app import create_app

    port = _free_port()
    settings = Settings(
        domain=f"127.0.0.1:{port}",
        scheme="http",
        database_url=f"sqlite:///{tmp_path / 'kith.db'}",
        allow_private_addresses=True,
        secret_key="browser-test-secret-0123456789",
    )
    network = Network()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        services = await Services.open(settings, transport=network)
        app = create_app(settings, services=services, run_worker=True)
        network.add_app(settings.domain, app)  # fake remotes reach it (its keys, its objects) in-process too
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
        box.update(loop=asyncio.get_running_loop(), server=server, services=services)
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        ready.set()
        try:
            await task
        finally:
            await services.close()

    def main() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # surfaced to the test below
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=main, name="live-kith", daemon=True)
    thread.start()
    if not ready.wait(60) or "error" in box:
        raise RuntimeError(f"Kith did not start: {box.get('error')!r}")
    yield LiveKith(f"http://127.0.0.1:{port}", settings, network, box["loop"], box["services"])
    box["server"].should_exit = True
    thread.join(30)
