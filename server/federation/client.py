"""The shared outbound HTTP client, and fetching with caps, timeouts and typed errors.

Every request to a remote server goes through ``Fetcher``: it runs the ``UrlGuard``
on the URL and on every redirect hop, caps how much of a body we read, and turns the
many ways a request can fail into a few ``FetchError`` subclasses the caller can act on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
import httpx_aiohttp

from server import __version__, metrics
from server.federation.urls import UnresolvedHost, UnsafeUrl, UrlGuard, parse_url
from server.jsondoc import JsonRefused, parse_json

if TYPE_CHECKING:
    from server.federation.auth import HttpSignatureAuth

USER_AGENT = f"Kith/{__version__} (+https://github.com/kith)"
ACTIVITY_ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'

# Enough for any error message a remote inbox sends back; the rest is not worth the memory.
POST_RESPONSE_CAP = 64 * 1024
# The most one request may take, start to end (each GET hop, each POST). The client's
# timeouts bound each connect and each read, so a server that sends a byte every few
# seconds would otherwise hold a delivery (and its slot) for as long as it likes.
REQUEST_DEADLINE = 30.0

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers that describe the wire body; they are wrong for the capped, decoded copy we keep.
_BODY_HEADERS = ("content-length", "content-encoding", "transfer-encoding")


class _BoundedConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that keeps idle connections to at most ``max_idle`` servers.

    aiohttp counts only connections in use against ``limit``; idle keep-alive ones stay
    open until ``keepalive_timeout``, so a fan-out to 10,000 servers held ~6,400 sockets
    open (``python -m bench.fanout``), past a default ``ulimit -n`` of 1024. Beyond
    ``max_idle`` servers, those whose idle connections were kept first are closed.
    """

    def __init__(self, *, max_idle: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_idle = max_idle

    def _release(self, key: Any, protocol: Any, *, should_close: bool = False) -> None:
        super()._release(key, protocol, should_close=should_close)
        idle = getattr(self, "_conns", None)  # aiohttp's idle connections per server, oldest server first
        while idle is not None and len(idle) > self._max_idle:
            for proto, _since in idle.pop(next(iter(idle))):
                proto.close()


class AiohttpTransport(httpx_aiohttp.AiohttpTransport):
    """httpx's API on aiohttp's connection pool, which holds up under concurrency.

    httpx's own pool (httpcore) collapses with many requests in flight: measured by
    ``python -m bench.transport`` on a 2-core machine, 100 POSTs in flight to one
    loopback server ran at ~160/s through httpcore and 1,000-1,600/s through this
    transport (to 50 servers: 310-390/s against 1,300-1,400/s); with one in flight,
    ~500-650/s against ~1,000/s. Deliveries keep 100 requests in flight.

    The session keeps no cookies, reads no proxy settings from the environment, and
    resolves names with the system resolver (``getaddrinfo``), as ``UrlGuard`` does.
    aiohttp errors that httpx-aiohttp does not map come out as ``httpx.TransportError``,
    so callers only ever see httpx's exceptions.
    """

    def __init__(self, *, max_connections: int, max_idle: int, keepalive_expiry: float) -> None:
        super().__init__(
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_idle, keepalive_expiry=keepalive_expiry
            ),
            trust_env=False,
            client=self._session,
        )
        self._max_connections = max_connections
        self._max_idle = max_idle
        self._keepalive_expiry = keepalive_expiry

    def _session(self) -> aiohttp.ClientSession:
        # Built on the first request, inside the running event loop, as aiohttp requires.
        connector = _BoundedConnector(
            max_idle=self._max_idle,
            limit=self._max_connections,
            keepalive_timeout=self._keepalive_expiry,
            ssl=self.ssl_context,
            resolver=aiohttp.ThreadedResolver(),
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except aiohttp.ClientError as exc:
            raise httpx.TransportError(f"{type(exc).__name__}: {exc}", request=request) from exc


# Servers whose idle keep-alive connection is kept: a busy group's member servers get every
# post, so the connection to each is worth keeping (with 50, a group on 100 servers opened
# 64 new connections a post, with 200 about none: python -m bench.busy); bounded so a
# fan-out to ten thousand servers keeps no more than this many sockets open, far below a
# default ``ulimit -n`` of 1024 (``_BoundedConnector``).
IDLE_SERVERS = 200


def default_transport(*, max_connections: int = 200) -> AiohttpTransport:
    """The transport outbound requests take outside tests: aiohttp's pool (see ``AiohttpTransport``)."""
    return AiohttpTransport(
        max_connections=max_connections, max_idle=min(IDLE_SERVERS, max_connections), keepalive_expiry=30.0
    )


def make_http_client(
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float = 10.0,
    max_connections: int = 200,
) -> httpx.AsyncClient:
    """Build the one ``httpx.AsyncClient`` the server shares for outbound requests.

    Redirects are not followed by httpx: ``Fetcher`` follows them by hand so that
    each hop passes the URL guard. ``transport`` is for tests (``httpx.MockTransport``);
    by default requests go through ``AiohttpTransport``.
    """
    if transport is None:
        transport = default_transport(max_connections=max_connections)
    return httpx.AsyncClient(
        transport=transport,
        # A slow handshake usually means a dead server; fail fast and let retries handle it.
        timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=min(50, max_connections),
            keepalive_expiry=30.0,
        ),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        # No proxy or .netrc from the environment: a proxy would resolve names itself
        # (bypassing the guard's address check) and .netrc could leak credentials.
        trust_env=False,
    )


class FetchError(Exception):
    """A request to a remote server that did not give us what we asked for."""

    def __init__(self, reason: str, url: str, status: int | None = None) -> None:
        detail = f"{reason} ({status})" if status is not None else reason
        super().__init__(f"{detail}: {url}")
        self.reason = reason
        self.url = url
        self.status = status


class FetchRefused(FetchError):
    """The URL guard refused the URL (or a redirect hop); nothing was sent there."""


class FetchTooLarge(FetchError):
    """The response body was over the cap."""


class FetchGone(FetchError):
    """410 Gone: the caller treats the object as deleted."""


class FetchNotFound(FetchError):
    """404 Not Found."""


class FetchFailed(FetchError):
    """Any other failure: status, network error, timeout, bad JSON, not a JSON object."""


@dataclass(frozen=True)
class FetchedJson:
    """A fetched JSON object and the URL it finally came from, after redirects.

    Callers that check an object's ``id`` against where it came from need ``url``.
    """

    url: str
    data: dict[str, Any]


class Fetcher:
    """Guarded, capped GETs of remote JSON and POSTs to remote inboxes."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        guard: UrlGuard,
        *,
        transport: httpx.AsyncBaseTransport,
        auth: httpx.Auth | None = None,
        max_bytes: int = 1_048_576,
        max_redirects: int = 3,
        deadline: float = REQUEST_DEADLINE,
    ) -> None:
        """``transport`` is the one ``http`` sends through: deliveries go to it directly (see ``post``).

        ``deadline`` bounds each request as a whole, in seconds (see ``REQUEST_DEADLINE``).
        """
        self._http = http
        self._transport = transport
        self._timeout = http.timeout.as_dict()
        self._guard = guard
        self._auth = auth
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._deadline = deadline

    async def _check(self, url: str) -> None:
        try:
            await self._guard.check(url)
        except UnresolvedHost as exc:  # DNS trouble: worth trying again, unlike a refusal
            raise FetchFailed(exc.reason, url) from exc
        except UnsafeUrl as exc:
            raise FetchRefused(exc.reason, url) from exc

    async def get_json(self, url: str, *, accept: str = ACTIVITY_ACCEPT) -> dict[str, Any]:
        """GET ``url`` and return its body as a JSON object.

        Follows up to ``max_redirects`` redirects, checking each hop with the guard
        before anything is sent to it. Raises a ``FetchError`` subclass on failure.
        """
        return (await self.fetch_json(url, accept=accept)).data

    @metrics.counted_fetch
    async def fetch_json(self, url: str, *, accept: str = ACTIVITY_ACCEPT) -> FetchedJson:
        """Like ``get_json``, but also says which URL the object finally came from."""
        current = url
        seen = {current}
        for _hop in range(self._max_redirects + 1):
            await self._check(current)
            location = await self._get_once(current, accept)
            if isinstance(location, FetchedJson):
                return location
            if location in seen:
                raise FetchFailed("redirect loop", url)
            seen.add(location)
            current = location
        raise FetchFailed("too many redirects", url)

    async def _get_once(self, url: str, accept: str) -> FetchedJson | str:
        """One GET: the parsed object, or the absolute URL a redirect points to."""
        try:
            async with (
                asyncio.timeout(self._deadline),
                self._http.stream("GET", url, headers={"Accept": accept}, auth=self._auth) as response,
            ):
                if response.status_code in _REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchFailed("redirect without Location", url, response.status_code)
                    # Location may be relative; resolve it against the URL we asked for.
                    return str(response.url.join(location))
                _raise_for_status(response, url)
                body = await self._read_body(response, url)
        except TimeoutError:
            raise FetchFailed("timed out", url) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _failed(exc, url) from None
        return FetchedJson(url=url, data=_parse_object(body, url, response.status_code))

    async def _read_body(self, response: httpx.Response, url: str) -> bytes:
        """Read the body, giving up as soon as it is over ``max_bytes``."""
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
            # Refuse before reading a byte when the server admits the size up front.
            raise FetchTooLarge("response too large", url, response.status_code)
        chunks: list[bytes] = []
        size = 0
        # The cap is on decoded bytes, which is what we hold in memory; a compressed
        # body can only grow past the cap by one decoded chunk before we stop.
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self._max_bytes:
                raise FetchTooLarge("response too large", url, response.status_code)
            chunks.append(chunk)
        return b"".join(chunks)

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        auth: HttpSignatureAuth,
        content_type: str = "application/activity+json",
    ) -> httpx.Response:
        """POST ``body`` to ``url`` (an inbox), signed by ``auth``; return the response.

        Redirects are not followed: a 3xx comes back for the caller to classify like
        any other status. The returned response holds at most 64 KiB of the body.
        Raises ``FetchRefused`` if the guard refuses and ``FetchFailed`` (status None)
        when no response arrived (network error, timeout, a name that did not resolve).
        The whole request has ``deadline`` seconds: a status not in by then is a
        timeout; a body still arriving then is cut short (the status is the answer).

        The request goes straight to the client's transport: a delivery needs none of
        what ``AsyncClient.send`` adds around it (redirects, cookies, the auth flow,
        merged defaults), and at thousands of deliveries a second that cost ~15 % of
        the worker's CPU (``python -m bench.fanout``).
        """
        await self._check(url)
        try:
            request = httpx.Request(
                "POST",
                parse_url(url),  # parsed once for the guard and the request
                content=body,
                headers={"Content-Type": content_type, "User-Agent": USER_AGENT},
                extensions={"timeout": self._timeout},
            )
        except (httpx.InvalidURL, UnsafeUrl):
            raise FetchFailed("invalid URL", url) from None
        auth.sign(request)
        deadline = asyncio.get_running_loop().time() + self._deadline
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._transport.handle_async_request(request)
            response.request = request
            try:
                captured = await _read_capped(response, POST_RESPONSE_CAP, deadline)
            finally:
                await response.aclose()
        except TimeoutError:
            raise FetchFailed("timed out", url) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _failed(exc, url) from None
        headers = response.headers.copy()
        for name in _BODY_HEADERS:
            headers.pop(name, None)
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=captured,
            request=response.request,
        )


async def _read_capped(response: httpx.Response, cap: int, deadline: float) -> bytes:
    """Up to ``cap`` bytes of the body, read until the loop time ``deadline``; a failure mid-body keeps what arrived.

    The status is what the caller needs, and it has already arrived: a remote that
    answered 202 and then stalled (or sends its body a byte at a time) has still
    accepted the delivery.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in response.aiter_bytes():
                chunks.append(chunk[: cap - size])
                size += len(chunks[-1])
                if size >= cap:
                    break
    except (httpx.HTTPError, TimeoutError):
        pass
    return b"".join(chunks)


def _failed(exc: httpx.HTTPError | httpx.InvalidURL, url: str) -> FetchFailed:
    """The one mapping of httpx's errors to ours: no answer came (status None)."""
    if isinstance(exc, httpx.TimeoutException):
        return FetchFailed("timed out", url)
    if isinstance(exc, httpx.InvalidURL):
        return FetchFailed("invalid URL", url)
    return FetchFailed(f"network error: {type(exc).__name__}", url)


def _raise_for_status(response: httpx.Response, url: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 404:
        raise FetchNotFound("not found", url, status)
    if status == 410:
        raise FetchGone("gone", url, status)
    raise FetchFailed("unexpected status", url, status)


def _parse_object(body: bytes, url: str, status: int) -> dict[str, Any]:
    try:
        data = parse_json(body)
    except JsonRefused as exc:
        raise FetchFailed("invalid JSON", url, status) from exc
    if not isinstance(data, dict):
        raise FetchFailed("not a JSON object", url, status)
    return data
