"""Security headers on every console page (``/console``, ``/login``, ``/logout``), error pages too.

A plain ASGI wrapper (cheap on the inbox, which it only looks at): the Content-Security-Policy
allows no inline script and no framing; the referrer never leaves the site; nothing is cached.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
PREFIXES = ("/console", "/login", "/logout")


def is_console_path(path: str) -> bool:
    """A path the console serves."""
    return any(path == p or path.startswith(p + "/") for p in PREFIXES)


class ConsoleHeaders:
    """Adds ``HEADERS`` to every response on a console path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_console_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)
