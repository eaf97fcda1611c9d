"""One guard for every outbound URL: fetches of remote objects and deliveries alike.

Anything a remote server tells us (an actor id, an inbox, a ``Location`` header) is
attacker-controlled, so before we connect we check that the URL is http(s), names a
host that is not on the blocklist, and does not lead into our own network (SSRF).

URLs are parsed with ``httpx.URL``, the same parser that later sends the request, so
the guard and the client cannot disagree about which host a tricky URL names.

Known limit (DNS rebinding, a time-of-check/time-of-use gap): ``UrlGuard.check``
resolves the name, then httpx resolves it again when it connects, and a hostile DNS
server may answer differently the second time. Closing that gap needs a transport
that connects to the very addresses we checked (a pinned-IP transport).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from functools import lru_cache

import httpx

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Look up a host name for a port; returns IP address strings."""

_DEFAULT_PORTS = {"http": 80, "https": 443}

# Ranges that ``ipaddress``'s own flags miss or that vary between Python versions;
# listed explicitly so the answer does not depend on the interpreter.
_EXTRA_PRIVATE_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("0.0.0.0/8"),  # "this network"; 0.0.0.0 reaches localhost on Linux
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT (RFC 6598)
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.ip_network("198.18.0.0/15"),  # benchmarking
    ipaddress.ip_network("fc00::/7"),  # unique local addresses
    ipaddress.ip_network("fec0::/10"),  # deprecated site-local
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64 (RFC 8215)
    ipaddress.ip_network("100::/64"),  # discard-only
    ipaddress.ip_network("2001:db8::/32"),  # documentation
)
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")


class UnsafeUrl(Exception):
    """An outbound URL we refuse to use; ``reason`` is short and safe to log or show."""

    def __init__(self, reason: str, url: str | None = None) -> None:
        super().__init__(reason if url is None else f"{reason}: {url}")
        self.reason = reason
        self.url = url


class UnresolvedHost(UnsafeUrl):
    """The host's name did not resolve (or not in time): a fault of the moment, not a refusal.

    Callers retry it like any network error; a name that never resolves again runs
    out of retries like a server that never answers.
    """


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the operating system's resolver (``getaddrinfo``).

    Returns the distinct addresses in the order the system gave them.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _parse(url: str) -> httpx.URL:
    if isinstance(url, str) and len(url) <= _URL_CACHE_MAX_LENGTH:
        return parse_url(url)
    return _parse_uncached(url)


def parse_url(url: str) -> httpx.URL:
    """``httpx.URL(url)``, cached (httpx.URL is immutable); raises ``UnsafeUrl`` if it cannot be parsed.

    Every delivery parses its inbox's URL in the guard and again to build the request;
    a post's Announces go to the same inboxes one after another.
    """
    if len(url) > _URL_CACHE_MAX_LENGTH:
        return _parse_uncached(url)
    return _cached_parse(url)


def _parse_uncached(url: str) -> httpx.URL:
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise UnsafeUrl("malformed URL", url) from None


def _host_of_parsed(parsed: httpx.URL, url: str) -> str:
    try:
        # raw_host is already IDNA-encoded (punycode) and lowercased by httpx.
        host = parsed.raw_host.decode("ascii").lower()
    except UnicodeDecodeError:
        raise UnsafeUrl("malformed host", url) from None
    # "example.com." and "example.com" are the same host; the blocklist must see one form.
    host = host.rstrip(".")
    if not host:
        raise UnsafeUrl("no host", url)
    return host


# host_of, authority_of and origin_of are pure and called on the same few thousand actor
# and key URLs by every request; httpx.URL parsing is the costly part, so their answers
# are cached (exceptions are not, so a bad URL is parsed again each time, as before).
# Only URLs of ordinary length are cached, so that a peer sending huge URLs cannot make
# the cache hold gigabytes; those are parsed each time. The public functions check the
# type first: lru_cache would raise TypeError on an unhashable value (a JSON list or
# object) where the parser raises UnsafeUrl.
_URL_CACHE_SIZE = 16_384
_URL_CACHE_MAX_LENGTH = 2048  # the longest URL a column holds


def _text(url: str) -> str:
    if not isinstance(url, str):
        raise UnsafeUrl("malformed URL")
    return url


def host_of(url: str) -> str:
    """The URL's host: lowercased, IDNA (punycode) form, no port, no trailing dot.

    IPv6 literals come back without brackets. Raises ``UnsafeUrl`` when the URL
    cannot be parsed or has no host.
    """
    if len(_text(url)) > _URL_CACHE_MAX_LENGTH:
        return _host_of_parsed(_parse(url), url)
    return _cached_host_of(url)


def authority_of(url: str) -> str:
    """The host with its port when the port is not the scheme's default: the server's name.

    ``http://127.0.0.1:8701`` and ``http://127.0.0.1:8702`` are two servers, and a
    handle or a per-server queue must tell them apart (Mastodon keeps the port too).
    """
    if len(_text(url)) > _URL_CACHE_MAX_LENGTH:
        return _authority_of_parsed(_parse(url), url)
    return _cached_authority_of(url)


def origin_of(url: str) -> tuple[str, str]:
    """(scheme, authority): what two URLs must share to be trusted as one origin."""
    if len(_text(url)) > _URL_CACHE_MAX_LENGTH:
        return _origin_of_parsed(_parse(url), url)
    return _cached_origin_of(url)


def _authority_of_parsed(parsed: httpx.URL, url: str) -> str:
    host = _host_of_parsed(parsed, url)
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{parsed.port}" if parsed.port is not None else shown


def _origin_of_parsed(parsed: httpx.URL, url: str) -> tuple[str, str]:
    return parsed.scheme.lower(), _authority_of_parsed(parsed, url)


# Small: the reuse it serves is immediate (the guard, then the request; one inbox, then
# the same inbox again for a post's second Announce), and an httpx.URL is ~1 KiB.
@lru_cache(maxsize=2048)
def _cached_parse(url: str) -> httpx.URL:
    return _parse_uncached(url)


@lru_cache(maxsize=_URL_CACHE_SIZE)
def _cached_host_of(url: str) -> str:
    return _host_of_parsed(_parse(url), url)


@lru_cache(maxsize=_URL_CACHE_SIZE)
def _cached_authority_of(url: str) -> str:
    return _authority_of_parsed(_parse(url), url)


@lru_cache(maxsize=_URL_CACHE_SIZE)
def _cached_origin_of(url: str) -> tuple[str, str]:
    return _origin_of_parsed(_parse(url), url)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_private_address(ip: str) -> bool:
    """Whether ``ip`` is somewhere we must never connect to on a remote's behalf.

    True for loopback, private, link-local, multicast, reserved, unspecified,
    carrier-grade NAT, site-local and unique-local addresses, and for IPv6 forms
    that embed such an IPv4 address. Unparseable input counts as private: fail closed.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return True
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and is_private_address(str(embedded)):
            return True
        if address.ipv4_mapped is not None or address in _NAT64_WELL_KNOWN:
            # These stand for the IPv4 address and nothing more; judge them as such.
            # (On an IPv6-only host behind DNS64 every remote resolves to 64:ff9b::/96.)
            return False
    if (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    ):
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return True
    return any(address in network for network in _EXTRA_PRIVATE_NETWORKS if network.version == address.version)


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _looks_numeric(host: str) -> bool:
    """Whether the last label is a number, as in "2130706433" or "0x7f.1".

    No real top-level domain is numeric, but browsers and some resolvers read such
    names as IPv4 addresses in odd notations, which would slip past a literal check.
    """
    last = host.rsplit(".", 1)[-1]
    return last.isdigit() or (last[:2] == "0x" and all(c in "0123456789abcdef" for c in last[2:]))


class UrlGuard:
    """Decides whether the server may connect to a URL.

    ``allow_private`` is for development and tests against local instances; in
    production it is False and every name is resolved and checked.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        is_blocked: Callable[[str], bool] = lambda host: False,
        resolver: Resolver | None = None,
        allowed_schemes: Iterable[str] = ("https", "http"),
        resolve_timeout: float = 5.0,
    ) -> None:
        self.allow_private = allow_private
        self._is_blocked = is_blocked
        self._resolver: Resolver = resolver if resolver is not None else system_resolver
        self._allowed_schemes = frozenset(scheme.lower() for scheme in allowed_schemes)
        self._resolve_timeout = resolve_timeout

    def check_syntax(self, url: str) -> str:
        """Check what can be checked without the network; returns the host.

        Refuses other schemes, URLs without a host, user info (``user@host`` is a
        classic way to disguise the real host), ports outside 1-65535, numeric
        pseudo-IPv4 names, and blocked hosts.
        """
        parsed = _parse(url)
        if parsed.scheme.lower() not in self._allowed_schemes:
            raise UnsafeUrl("scheme not allowed", url)
        if parsed.userinfo:
            raise UnsafeUrl("user info not allowed", url)
        host = _host_of_parsed(parsed, url)
        port = parsed.port
        if port is not None and not 1 <= port <= 65535:
            raise UnsafeUrl("port out of range", url)
        if _ip_literal(host) is None and _looks_numeric(host):
            raise UnsafeUrl("numeric host is not an IP address", url)
        if self._is_blocked(host):
            raise UnsafeUrl("domain is blocked", url)
        return host

    async def check(self, url: str) -> None:
        """Check the URL fully; raises ``UnsafeUrl`` if we must not connect to it.

        Unless private addresses are allowed, an IP literal must be public and a
        name must resolve only to public addresses: one private answer is enough
        to refuse, since the client may connect to any of them.
        """
        host = self.check_syntax(url)
        if self.allow_private:
            return
        if _ip_literal(host) is not None:
            if is_private_address(host):
                raise UnsafeUrl("private address", url)
            return
        parsed = httpx.URL(url)
        port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme.lower(), 443)
        try:
            async with asyncio.timeout(self._resolve_timeout):
                addresses = await self._resolver(host, port)
        except (OSError, UnicodeError, ValueError, TimeoutError):
            # socket.gaierror is an OSError; UnicodeError covers over-long labels.
            raise UnresolvedHost("does not resolve", url) from None
        if not addresses:
            raise UnresolvedHost("does not resolve", url)
        # TOCTOU: httpx resolves the name again when it connects, so a rebinding DNS
        # server can still switch to a private address; a pinned-IP transport would fix it.
        if any(is_private_address(address) for address in addresses):
            raise UnsafeUrl("resolves to a private address", url)
