"""The pure side of federation policy: what a blockable domain is, and which blocks cover a host.

``normalize_domain`` is the one validator every door uses (the CLI, the admin API, the
CSV import). It accepts what a server's host can be and nothing else:

- a host name of at least two labels, each a valid IDNA 2008 label (UTS 46 mapping, so
  ``MÜNCHEN.de`` is ``xn--mnchen-3ya.de``; an ``xn--`` label must decode), letters,
  digits and inner hyphens only, at most 63 characters a label and 253 in all, and a
  top-level label that is not all digits (RFC 3696 2: ``123`` and ``example.123`` are
  not names);
- an IP literal (``203.0.113.9``, ``2001:db8::1``): Kith federates with servers at
  public addresses, so an admin must be able to cut one off; such a block covers that
  address only.

Mastodon's DomainValidator takes any host Addressable parses, one label included. Kith
refuses a single label (``com``, ``localhost``) on purpose: a block covers every
subdomain, and one mistyped word would cut off a whole top-level domain and remove all
its members from every group in one transaction. ``*.example.com`` (Mastodon's CSV
wildcard) means ``example.com``; a URL or a ``host:port`` is taken for its host.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import idna

from server.errors import Unprocessable

SEVERITIES = ("suspend", "silence", "noop")
MODES = ("open", "allowlist")
MAX_DOMAIN = 253  # DNS's limit; the column holds 255


def normalize_domain(value: str) -> str:
    """A domain as blocks store it: IDNA (punycode), lowercase, no scheme, port, path or trailing dot.

    Raises ``Unprocessable`` saying why for anything that is not a host name or an IP literal.
    """
    host = _bare_host(value or "")
    if not host:
        raise _refused(value, "it is blank")
    address = _ip_literal(host)
    if address is not None:
        return address
    if "*" in host:
        raise _refused(value, "'*' may only begin it, as in *.example.com")
    if len(host) > MAX_DOMAIN:  # checked before IDNA too, so that a huge value costs nothing
        raise _refused(value, f"a domain is at most {MAX_DOMAIN} characters")
    try:
        domain = idna.encode(host, uts46=True, std3_rules=True).decode("ascii")
    except UnicodeError as exc:  # idna.IDNAError and its kinds are UnicodeErrors
        raise _refused(value, _sentence(str(exc))) from None
    labels = domain.split(".")
    if labels[-1].isdigit():
        raise _refused(value, "its top-level label is all digits")
    if len(labels) < 2:
        raise _refused(value, "a domain has at least two labels (a block would cover a whole top-level domain)")
    if len(domain) > MAX_DOMAIN:
        raise _refused(value, f"a domain is at most {MAX_DOMAIN} characters")
    return domain


def _bare_host(value: str) -> str:
    """The host part of what an admin typed: no scheme, path, port, trailing dot or ``*.``."""
    host = value.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    if host.startswith("[") and "]" in host:  # [2001:db8::1]:443
        host = host[1 : host.index("]")]
    elif host.count(":") == 1 and host.rsplit(":", 1)[1].isdigit():  # example.com:8443
        host = host.rsplit(":", 1)[0]
    host = host.rstrip(".")
    return host[2:] if host.startswith("*.") else host


def _ip_literal(host: str) -> str | None:
    """The canonical form of an IP address, or None when ``host`` is not one."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _refused(value: str, why: str) -> Unprocessable:
    return Unprocessable(f"{value!r} is not a domain: {why}")


def _sentence(message: str) -> str:
    # idna's messages start with a capital ("Label must not start or end with a hyphen").
    return message[:1].lower() + message[1:] if message else "not a valid IDNA name"


def host_of_authority(authority: str) -> str:
    """``example.com:8443`` -> ``example.com``; ``[::1]:80`` -> ``::1``."""
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def parents(host: str) -> Iterable[str]:
    """``a.b.example.com`` -> itself, ``b.example.com``, ``example.com``, ``com``.

    An IP literal has no parents: a block on ``203.0.113.9`` covers that address only
    (``0.113.9`` is no domain that could hold it).
    """
    host = host.lower().rstrip(".")
    labels = host.split(".")
    if ":" in host or labels[-1].isdigit():  # a name's top-level label is never all digits
        yield _ip_literal(host) or host
        return
    for i in range(len(labels)):
        yield ".".join(labels[i:])


def obfuscated(domain: str) -> str:
    """The domain as Mastodon shows an obfuscated block: the middle half starred, dots kept."""
    length = len(domain)
    visible = length // 4
    return "".join("*" if visible < i < length - visible and ch != "." else ch for i, ch in enumerate(domain))


def digest(domain: str) -> str:
    """SHA-256 of the domain, published beside obfuscated entries so others can match them."""
    return hashlib.sha256(domain.encode()).hexdigest()


@dataclass(frozen=True)
class Block:
    """One domain block as the matcher needs it."""

    domain: str
    severity: str
    reject_media: bool = False
    reject_reports: bool = False


@dataclass(frozen=True)
class DomainPolicy:
    """The pure matcher over the instance's blocks, allows and suspended accounts."""

    blocks: Mapping[str, Block] = field(default_factory=dict)
    allows: frozenset[str] = frozenset()
    allowlist_mode: bool = False
    suspended_actors: frozenset[str] = frozenset()

    def block_for(self, host: str) -> Block | None:
        """The block covering ``host`` (itself or a parent domain), most specific first."""
        for candidate in parents(host):
            block = self.blocks.get(candidate)
            if block is not None:
                return block
        return None

    def is_allowed_in_allowlist(self, host: str) -> bool:
        """Whether ``host`` or a parent domain is on the allowlist."""
        return any(candidate in self.allows for candidate in parents(host))

    def is_suspended(self, host: str) -> bool:
        """Nothing in, nothing out: a suspend block, or outside the allowlist in limited mode."""
        if self.allowlist_mode and not self.is_allowed_in_allowlist(host):
            return True
        block = self.block_for(host)
        return block is not None and block.severity == "suspend"

    def is_silenced(self, host: str) -> bool:
        """Posts from ``host`` are held for moderators instead of announced."""
        block = self.block_for(host)
        return block is not None and block.severity == "silence"

    def rejects_media(self, host: str) -> bool:
        """Whether media from ``host`` is refused (a flag of its block, or a suspension)."""
        block = self.block_for(host)
        return block is not None and (block.reject_media or block.severity == "suspend")

    def rejects_reports(self, host: str) -> bool:
        """Whether reports (Flags) from ``host`` are dropped."""
        block = self.block_for(host)
        return block is not None and (block.reject_reports or block.severity == "suspend")

    def actor_suspended(self, uri: str) -> bool:
        """Whether this one remote account is suspended instance-wide."""
        return uri in self.suspended_actors
