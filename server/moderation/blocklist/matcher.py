"""The pure side of federation policy: what a blockable domain is, and which blocks cover a host."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from server.errors import Unprocessable

SEVERITIES = ("suspend", "silence", "noop")
MODES = ("open", "allowlist")
MAX_DOMAIN = 253  # DNS's limit; the column holds 255


def normalize_domain(value: str) -> str:
    """A domain as blocks store it: lowercase, IDNA, no scheme, port, path or trailing dot.

    ``*.example.com`` (Mastodon's CSV wildcard) means ``example.com``: a block covers
    every subdomain anyway. Raises ``Unprocessable`` for anything that is not a domain.
    """
    domain = (value or "").strip().lower()
    if "://" in domain:
        domain = domain.split("://", 1)[1]
    domain = domain.split("/", 1)[0].rstrip(".")
    if domain.startswith("*."):
        domain = domain[2:]
    if not domain or "*" in domain or " " in domain or ".." in domain or domain.startswith("."):
        raise Unprocessable(f"{value!r} is not a domain")
    if len(domain) > MAX_DOMAIN:
        raise Unprocessable("a domain is at most 253 characters")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise Unprocessable(f"{value!r} is not a domain") from None
    return domain


def host_of_authority(authority: str) -> str:
    """``example.com:8443`` -> ``example.com``; ``[::1]:80`` -> ``::1``."""
    if authority.startswith("["):
        return authority[1 : authority.index("]")]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def parents(host: str) -> Iterable[str]:
    """``a.b.example.com`` -> itself, ``b.example.com``, ``example.com``, ``com``."""
    labels = host.lower().rstrip(".").split(".")
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
