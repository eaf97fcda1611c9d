"""Property-based fuzzing of the outbound URL guard (issue 12): no private address in any spelling.

With private addresses off, ``UrlGuard.check`` must refuse every URL whose connection
would land on a loopback, private, link-local or otherwise internal address, however the
address is written: dotted, one decimal number, hex, octal, short forms (``127.1``),
mixed, with a trailing dot, or as IPv6 (mapped, compatible, NAT64, 6to4, zero-padded,
scoped). The oracle is the client's own view: the host as aiohttp's URL parser (yarl)
reads it, resolved by glibc's ``getaddrinfo`` in numeric mode (which accepts every
``inet_aton`` spelling), and names through a fixed table standing in for DNS. The guard
runs its real resolution path with that table as its resolver (the seam it offers).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import yarl
from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.federation.urls import UnsafeUrl, UrlGuard, authority_of, host_of, is_private_address, origin_of

PURE = settings(max_examples=150, deadline=None)

# Stand-in DNS: names a hostile server may point at internal addresses, and public ones.
DNS = {
    "localhost": ["127.0.0.1", "::1"],
    "evil.example": ["93.184.216.34", "10.0.0.1"],
    "internal.example": ["169.254.169.254"],
    "v6.example": ["::ffff:192.168.1.1"],
    "good.example": ["93.184.216.34"],
}


def _numeric(host: str) -> list[str] | None:
    """What getaddrinfo makes of ``host`` as a number (every inet_aton form), else None."""
    try:
        infos = socket.getaddrinfo(host, 80, flags=socket.AI_NUMERICHOST, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return None
    return [str(info[4][0]) for info in infos]


async def table_resolver(host: str, port: int) -> list[str]:
    """The guard's resolver seam: numeric hosts as the system reads them, names from ``DNS``."""
    numeric = _numeric(host)
    if numeric is not None:
        return numeric
    if host in DNS:
        return DNS[host]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def client_addresses(url: str) -> list[str]:
    """Where the outbound client would connect for ``url``, or [] when it could not."""
    try:
        host = yarl.URL(url).host
    except (ValueError, TypeError, UnicodeError):
        return []
    if not host:
        return []
    host = host.rstrip(".") if _numeric(host) is None else host
    try:
        return asyncio.run(table_resolver(host, 80))
    except OSError:
        return []


def _guard_allows(url: str) -> bool:
    guard = UrlGuard(allow_private=False, resolver=table_resolver)
    try:
        asyncio.run(guard.check(url))
    except UnsafeUrl as exc:
        assert exc.reason
        return False
    return True


# ---------------------------------------------------------------------------
# Spellings of internal IPv4 addresses.

PRIVATE_V4 = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
]  # fmt: skip
private_v4 = st.sampled_from(PRIVATE_V4).flatmap(
    lambda net: st.integers(
        int(ipaddress.ip_network(net).network_address), int(ipaddress.ip_network(net).broadcast_address)
    )
)


def _part(value: int, style: str) -> str:
    return {"dec": str(value), "hex": hex(value), "HEX": "0X" + format(value, "X"), "oct": "0" + format(value, "o")}[
        style
    ]


def spell_v4(value: int, form: str, style: str) -> str:
    """One IPv4 address in one of the forms inet_aton accepts."""
    octets = list(value.to_bytes(4, "big"))
    if form == "one":  # 2130706433, 0x7f000001, 017700000001
        return _part(value, style)
    if form == "two":  # 127.1: the last part fills three bytes
        return f"{_part(octets[0], style)}.{_part(value & 0xFFFFFF, style)}"
    if form == "three":  # 127.0.1: the last part fills two bytes
        return f"{_part(octets[0], style)}.{_part(octets[1], style)}.{_part(value & 0xFFFF, style)}"
    return ".".join(_part(o, style) for o in octets)


def spell_v6(value: int, form: str) -> str:
    v4 = ipaddress.IPv4Address(value)
    packed = v4.packed.hex()
    hi, lo = packed[:4], packed[4:]
    return {
        "mapped": f"::ffff:{v4}",
        "mapped-hex": f"::ffff:{hi}:{lo}",
        "mapped-long": f"0:0:0:0:0:ffff:{hi}:{lo}",
        "compat": f"::{v4}",
        "nat64": f"64:ff9b::{v4}",
        "6to4": f"2002:{hi}:{lo}::1",
        "upper": f"::FFFF:{v4}".upper(),
    }[form]


v4_spellings = st.builds(
    spell_v4,
    private_v4,
    st.sampled_from(["one", "two", "three", "four"]),
    st.sampled_from(["dec", "hex", "HEX", "oct"]),
)
v6_embedding = st.builds(
    spell_v6,
    private_v4,
    st.sampled_from(["mapped", "mapped-hex", "mapped-long", "compat", "nat64", "6to4", "upper"]),
)
v6_native = st.sampled_from(
    ["::1", "0:0:0:0:0:0:0:1", "::0001", "::", "fe80::1", "fe80::1%25eth0", "fc00::1", "fd12:3456::1", "fec0::1",
     "ff02::1", "::ffff:0:0", "64:ff9b:1::1", "100::1", "2001:db8::1", "2001::1", "2002::"]
)  # fmt: skip
schemes = st.sampled_from(["http://", "https://", "HTTPS://"])
ports = st.sampled_from(["", ":443", ":80", ":8080", ":0443"])
paths = st.sampled_from(["/", "/inbox", "", "?q=1", "#f", "/a/../b"])


@st.composite
def private_urls(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        host = draw(v4_spellings) + draw(st.sampled_from(["", "."]))
    else:
        host = "[" + draw(v6_embedding | v6_native) + "]"
    return draw(schemes) + host + draw(ports) + draw(paths)


named_urls = st.builds(
    lambda scheme, name, dot, port, path: scheme + name + dot + port + path,
    schemes,
    st.sampled_from(sorted(DNS)) | st.sampled_from(["LOCALHOST", "localhost.", "Evil.Example"]),
    st.sampled_from(["", "."]),
    ports,
    paths,
)


@PURE
@given(private_urls())
@example("http://2130706433/")
@example("http://0x7f.1/")
@example("http://0177.0.0.1/")
@example("http://127.1/")
@example("http://[::ffff:127.0.0.1]/")
@example("http://[::ffff:7f00:1]/")
@example("http://[::127.0.0.1]/")
@example("http://[64:ff9b::a00:1]/")
@example("http://[2002:a9fe:a9fe::1]/")  # 6to4 of 169.254.169.254
def test_private_addresses_are_refused_in_every_spelling(url: str) -> None:
    assert not _guard_allows(url), url


@PURE
@given(private_urls() | named_urls | st.text(max_size=40).map(lambda t: "http://" + t))
@example("http://localhost./")
@example("http://evil.example/")
@example("http://%31%32%37.0.0.1/")
@example("http://127.0.0.1%2e/")
@example("http://user@127.0.0.1/")
@example("http://good.example\\@127.0.0.1/")
def test_what_the_guard_allows_the_client_reaches_publicly(url: str) -> None:
    """Whatever passes the guard, the client connects only to public addresses."""
    if _guard_allows(url):
        addresses = client_addresses(url)
        assert addresses, url
        assert not any(is_private_address(a) for a in addresses), (url, addresses)


public_v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address).filter(lambda a: a.is_global)


@settings(max_examples=50, deadline=None)  # a sanity check on the other side, not the property itself
@given(public_v4, schemes, ports, paths)
def test_a_public_dotted_address_is_allowed(address: ipaddress.IPv4Address, scheme: str, port: str, path: str) -> None:
    """The guard is not simply refusing everything: a plain public address passes."""
    if is_private_address(str(address)):  # the extra ranges ipaddress's is_global misses
        return
    assert _guard_allows(f"{scheme}{address}{port}{path}")


@PURE
@given(st.text(max_size=60) | private_urls() | named_urls)
@example("http://[::1")
@example("http://a.example:99999/")
@example("http://\udcff.example/")
@example("http://" + "a" * 64 + ".example/")
def test_url_helpers_answer_or_refuse(url: str) -> None:
    for helper in (host_of, authority_of, origin_of):
        try:
            helper(url)
        except UnsafeUrl as exc:
            assert exc.reason
    guard = UrlGuard(allow_private=True)
    try:
        host = guard.check_syntax(url)
    except UnsafeUrl:
        return
    assert host == host_of(url)
