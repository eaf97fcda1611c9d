"""httpx authentication that signs each request with a draft-cavage HTTP signature."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from .httpsig import sign_request
from .keys import load_private_key


class HttpSignatureAuth(httpx.Auth):
    """Sign every request sent through an httpx client with the given actor key.

    Used for deliveries (POST) and signed fetches with the instance actor (GET). The
    signature is made at send time, so a retried request gets a fresh Date. Redirects
    are not re-signed by httpx: send signed requests with ``follow_redirects=False``.
    """

    # The Digest header needs the body bytes before the request is sent.
    requires_request_body = True

    def __init__(self, key_id: str, private_key_pem: str) -> None:
        """Parse the PEM once here: deliveries sign thousands of requests a second."""
        self.key_id = key_id
        self._private_key = load_private_key(private_key_pem)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add Host, Date, Digest (with a body) and Signature to the request, then send it."""
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Add Host, Date, Digest (with a body) and Signature to ``request``, now."""
        added = sign_request(
            request.method,
            str(request.url),
            request.headers,
            request.content,
            key_id=self.key_id,
            private_key=self._private_key,
        )
        for name, value in added.items():
            request.headers[name] = value
