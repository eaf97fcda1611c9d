"""The outbound URL guard: syntax, blocklist hook, private addresses and DNS answers.

No real DNS: every guard that resolves gets a fake resolver.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from server.federation.urls import Resolver, UnsafeUrl, UrlGuard, host_of, is_private_address


class FakeResolver:
    """Answers from a table and records every lookup."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


def guard(
    resolver: Resolver | None = None,
    *,
    is_blocked: Callable[[str], bool] = lambda host: False,
    allowed_schemes: tuple[str, ...] = ("https", "http"),
) -> UrlGuard:
    return UrlGuard(
        allow_private=False,
        resolver=resolver or FakeResolver({}),
        is_blocked=is_blocked,
        allowed_schemes=allowed_schemes,
    )


# host_of


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://Remote.Example/users/a", "remote.example"),
        ("https://remote.example:8443/x", "remote.example"),
        ("https://remote.example./x", "remote.example"),
        ("https://Bücher.example/x", "xn--bcher-kva.example"),
        ("http://[2606:4700::1111]:80/", "2606:4700::1111"),
    ],
)
def test_host_of_normalises(url: str, host: str) -> None:
    assert host_of(url) == host


@pytest.mark.parametrize("url", ["https:///nohost", "http://bad\nhost/"])
def test_host_of_rejects_urls_without_a_usable_host(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        host_of(url)


# is_private_address


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 wrapping 127.0.0.1
        "64:ff9b::7f00:1",  # NAT64 wrapping 127.0.0.1
        "not an address",
    ],
)
def test_private_addresses(ip: str) -> None:
    assert is_private_address(ip) is True


@pytest.mark.parametrize("ip", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses(ip: str) -> None:
    assert is_private_address(ip) is False


# check_syntax


@pytest.mark.parametrize(
    "url", ["ftp://remote.example/x", "file:///etc/passwd", "javascript:alert(1)", "gopher://remote.example/"]
)
def test_other_schemes_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl) as info:
        guard().check_syntax(url)
    assert info.value.reason == "scheme not allowed"


def test_allowed_schemes_can_be_narrowed() -> None:
    with pytest.raises(UnsafeUrl, match="scheme not allowed"):
        guard(allowed_schemes=("https",)).check_syntax("http://remote.example/")
    assert guard(allowed_schemes=("https",)).check_syntax("https://remote.example/") == "remote.example"


@pytest.mark.parametrize("url", ["https://user:pass@remote.example/", "https://user@remote.example/"])
def test_userinfo_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl) as info:
        guard().check_syntax(url)
    assert info.value.reason == "user info not allowed"


def test_backslash_userinfo_trick_refused() -> None:
    # Some parsers read "evil\@127.0.0.1" differently; ours sees user info and stops.
    with pytest.raises(UnsafeUrl, match="user info"):
        guard().check_syntax("http://remote.example\\@127.0.0.1/")


@pytest.mark.parametrize("url", ["https:///x", "https://./x", "//remote.example/x"])
def test_missing_host_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        guard().check_syntax(url)


@pytest.mark.parametrize("url", ["https://remote.example:0/", "https://remote.example:70000/"])
def test_port_out_of_range_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl) as info:
        guard().check_syntax(url)
    assert info.value.reason in {"port out of range", "malformed URL"}


@pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f.1/", "http://127.1/"])
def test_numeric_pseudo_ipv4_hosts_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="numeric host"):
        guard().check_syntax(url)


def test_check_syntax_returns_normalised_host() -> None:
    assert guard().check_syntax("HTTPS://Remote.Example.:443/users/a") == "remote.example"


def test_blocked_hook_gets_lowercased_host_and_refuses() -> None:
    seen: list[str] = []

    def is_blocked(host: str) -> bool:
        seen.append(host)
        return host == "bad.example"

    g = guard(is_blocked=is_blocked)
    with pytest.raises(UnsafeUrl) as info:
        g.check_syntax("https://BAD.Example/inbox")
    assert info.value.reason == "domain is blocked"
    assert g.check_syntax("https://good.example/inbox") == "good.example"
    assert seen == ["bad.example", "good.example"]


def test_unsafe_url_carries_reason_and_url() -> None:
    with pytest.raises(UnsafeUrl) as info:
        guard().check_syntax("ftp://remote.example/x")
    assert info.value.url == "ftp://remote.example/x"
    assert "scheme not allowed" in str(info.value)


# check (with resolution)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.1/",
        "http://100.64.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fc00::1]/",
        "http://[fe80::1%25eth0]/",
    ],
)
async def test_private_ip_literals_refused_without_resolving(url: str) -> None:
    resolver = FakeResolver({})
    with pytest.raises(UnsafeUrl) as info:
        await guard(resolver).check(url)
    assert info.value.reason == "private address"
    assert resolver.calls == []


@pytest.mark.asyncio
async def test_public_ip_literal_allowed_without_resolving() -> None:
    resolver = FakeResolver({})
    await guard(resolver).check("https://93.184.216.34/x")
    await guard(resolver).check("https://[2606:4700::1111]/x")
    assert resolver.calls == []


@pytest.mark.asyncio
async def test_localhost_resolving_to_loopback_refused() -> None:
    resolver = FakeResolver({"localhost": ["127.0.0.1", "::1"]})
    with pytest.raises(UnsafeUrl) as info:
        await guard(resolver).check("http://localhost:8080/inbox")
    assert info.value.reason == "resolves to a private address"
    assert resolver.calls == [("localhost", 8080)]


@pytest.mark.asyncio
async def test_public_resolution_allowed_with_default_port() -> None:
    resolver = FakeResolver({"remote.example": ["93.184.216.34", "2606:2800:220:1::1"]})
    await guard(resolver).check("https://Remote.Example./users/a")
    await guard(resolver).check("http://remote.example/users/a")
    assert resolver.calls == [("remote.example", 443), ("remote.example", 80)]


@pytest.mark.asyncio
async def test_any_private_answer_among_many_refused() -> None:
    resolver = FakeResolver({"sneaky.example": ["93.184.216.34", "10.0.0.7", "8.8.8.8"]})
    with pytest.raises(UnsafeUrl, match="resolves to a private address"):
        await guard(resolver).check("https://sneaky.example/")


@pytest.mark.asyncio
async def test_resolution_failure_refused() -> None:
    with pytest.raises(UnsafeUrl) as info:
        await guard(FakeResolver({})).check("https://nowhere.example/")
    assert info.value.reason == "does not resolve"


@pytest.mark.asyncio
async def test_empty_resolution_refused() -> None:
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        await guard(FakeResolver({"empty.example": []})).check("https://empty.example/")


@pytest.mark.asyncio
async def test_slow_resolution_times_out() -> None:
    async def hanging(host: str, port: int) -> list[str]:
        await asyncio.sleep(10)
        return ["93.184.216.34"]

    with pytest.raises(UnsafeUrl, match="does not resolve"):
        await UrlGuard(allow_private=False, resolver=hanging, resolve_timeout=0.01).check("https://slow.example/")


@pytest.mark.asyncio
async def test_check_runs_syntax_and_block_checks_before_resolving() -> None:
    resolver = FakeResolver({"bad.example": ["93.184.216.34"]})
    g = guard(resolver, is_blocked=lambda host: host == "bad.example")
    with pytest.raises(UnsafeUrl, match="domain is blocked"):
        await g.check("https://bad.example/")
    with pytest.raises(UnsafeUrl, match="scheme not allowed"):
        await g.check("file:///etc/passwd")
    assert resolver.calls == []


@pytest.mark.asyncio
async def test_allow_private_skips_dns_entirely() -> None:
    resolver = FakeResolver({})
    g = UrlGuard(allow_private=True, resolver=resolver)
    await g.check("http://127.0.0.1:8000/inbox")
    await g.check("http://localhost:8000/inbox")
    await g.check("http://unresolvable.example/")
    assert resolver.calls == []


@pytest.mark.asyncio
async def test_allow_private_still_enforces_syntax_and_blocklist() -> None:
    g = UrlGuard(allow_private=True, is_blocked=lambda host: host == "bad.example", resolver=FakeResolver({}))
    with pytest.raises(UnsafeUrl, match="domain is blocked"):
        await g.check("http://bad.example/")
    with pytest.raises(UnsafeUrl, match="scheme not allowed"):
        await g.check("ftp://127.0.0.1/")


@pytest.mark.parametrize(
    ("url", "authority"),
    [
        ("https://Example.COM/users/a", "example.com"),
        ("https://example.com:8443/users/a", "example.com:8443"),
        ("http://127.0.0.1:8701/users/a", "127.0.0.1:8701"),
        ("http://[::1]:8080/x", "[::1]:8080"),
        ("https://example.com:443/x", "example.com"),
    ],
)
def test_authority_keeps_a_non_default_port(url, authority):
    from server.federation.urls import authority_of

    assert authority_of(url) == authority


# The caches on host_of / authority_of / origin_of


@pytest.mark.parametrize("value", [None, 42, ["https://a.example/"], {"id": "https://a.example/"}])
def test_url_helpers_refuse_non_strings_as_unsafe(value) -> None:
    from server.federation.urls import authority_of, origin_of

    for helper in (host_of, authority_of, origin_of):
        with pytest.raises(UnsafeUrl):
            helper(value)


def test_url_helpers_answer_the_same_from_the_cache() -> None:
    from server.federation.urls import authority_of, origin_of

    url = "https://Cache.Example:8443/users/a"
    first = (host_of(url), authority_of(url), origin_of(url))
    assert first == ("cache.example", "cache.example:8443", ("https", "cache.example:8443"))
    assert (host_of(url), authority_of(url), origin_of(url)) == first
    for _ in range(2):  # failures are not cached: each call raises
        with pytest.raises(UnsafeUrl):
            origin_of("https:///nohost")


def test_long_urls_are_parsed_without_the_cache() -> None:
    from server.federation import urls

    url = "https://Long.Example:8443/" + "x" * 5000
    before = urls._cached_origin_of.cache_info().currsize
    assert host_of(url) == "long.example"
    assert urls.authority_of(url) == "long.example:8443"
    assert urls.origin_of(url) == ("https", "long.example:8443")
    assert urls._cached_origin_of.cache_info().currsize == before
