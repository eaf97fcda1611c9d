"""Helpers for the console's tests: signing in over HTTP, reading a form's CSRF token."""

from __future__ import annotations

import re

import httpx

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = CSRF_RE.search(html)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    """GET /login for the form's token, then POST it; the client keeps the session cookie."""
    page = await client.get("/login")
    return await client.post(
        "/login", data={"username": username, "password": password, "csrf": csrf_of(page.text), "next": "/console"}
    )


async def page_csrf(client: httpx.AsyncClient, path: str = "/console") -> str:
    """The signed-in session's CSRF token, read from a console page."""
    page = await client.get(path)
    assert page.status_code == 200, page.text[:500]
    return csrf_of(page.text)
