"""An in-process internet: an httpx transport that routes each request by host.

A host is served either by an ASGI app (another Kith instance, a fake Mastodon)
or by a plain handler function. Every request is recorded, so tests can assert
what was sent and where. Unknown hosts fail like an unreachable server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

Handler = Callable[[httpx.Request], Awaitable[httpx.Response] | httpx.Response]


class Network(httpx.AsyncBaseTransport):
    """Routes requests to registered hosts; records them in ``self.requests``."""

    def __init__(self) -> None:
        self.hosts: dict[str, httpx.AsyncBaseTransport | Handler] = {}
        self.requests: list[httpx.Request] = []

    def add_app(self, host: str, app: Any) -> None:
        """Serve ``host`` with an ASGI app."""
        self.hosts[host] = httpx.ASGITransport(app=app)

    def add_handler(self, host: str, handler: Handler) -> None:
        """Serve ``host`` with a function of the request."""
        self.hosts[host] = handler

    def sent_to(self, host: str, method: str | None = None) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.host == host and (method is None or r.method == method)]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        target = self.hosts.get(request.url.netloc.decode()) or self.hosts.get(request.url.host)
        if target is None:
            raise httpx.ConnectError(f"no route to {request.url.host}", request=request)
        if isinstance(target, httpx.AsyncBaseTransport):
            return await target.handle_async_request(request)
        result = target(request)
        if not isinstance(result, httpx.Response):
            result = await result
        return result
