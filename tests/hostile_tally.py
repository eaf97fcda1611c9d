"""A pytest plugin that prints the hostile suite's figures for SECURITY.md.

    KITH_REQUIRE_POSTGRES=1 python -m pytest -q -p no:cacheprovider -n 0 -p tests.hostile_tally tests/test_hostile_*.py

(``-n 0``: the counts live in one process.) It counts every request sent to Kith's app
(``kith.test``) through an in-process ASGI transport, and the 5xx answers among them; the
tests themselves count forgeries and private targets in ``tests.hostile.TALLY``. The
summary is one line at the end of the run:

    hostile suite: N requests tried, 0 5xx seen, 0 of N forgeries accepted, 0 private fetches attempted ...
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.hostile import DOMAIN, TALLY

_original = httpx.ASGITransport.handle_async_request


async def _counting(self: httpx.ASGITransport, request: httpx.Request) -> httpx.Response:
    ours = request.url.host == DOMAIN
    TALLY.requests += ours
    try:
        response = await _original(self, request)
    except Exception:  # the app raised: what a server would answer with a 500
        TALLY.server_errors += ours
        raise
    TALLY.server_errors += ours and response.status_code >= 500
    return response


def pytest_configure(config: pytest.Config) -> None:
    httpx.ASGITransport.handle_async_request = _counting  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    httpx.ASGITransport.handle_async_request = _original  # type: ignore[method-assign]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(TALLY.line())
