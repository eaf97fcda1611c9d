"""What both signature schemes share: the types and errors, header and URL helpers, key loading.

Pure, like the whole package: no network and no database.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol
from urllib.parse import SplitResult, urlsplit

from ..keys import KeyFormatError, PrivateKey, PublicKey, load_private_key, load_public_key

SCHEME_CAVAGE = "draft-cavage"
SCHEME_RFC9421 = "rfc9421"

# The inbox reads the key id first (to refuse blocked domains before any key fetch),
# then verifies: the same header would be parsed twice per request. Parsing is pure and
# the result frozen, so a small cache of the latest headers serves the second call.
# Headers longer than any real signature are parsed uncached (bounded memory).
SIGNATURE_CACHE_SIZE = 256
SIGNATURE_CACHE_MAX_LENGTH = 8192


class SignatureError(Exception):
    """A request whose signature cannot be accepted.

    ``reason`` is short and safe to show to the peer (it never echoes header values).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class IncomingRequest:
    """What an inbox or endpoint hands in for verification.

    ``url`` is the full URL as received, including the query string and the raw
    (still percent-encoded) path. ``headers`` is read case-insensitively.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class ResolvedKey:
    """A public key and the actor that owns it."""

    key_id: str
    owner: str
    public_key_pem: str


class KeyLookup(Protocol):
    """Resolve a key id; ``refresh=True`` means bypass the cache and refetch."""

    async def __call__(self, key_id: str, *, refresh: bool) -> ResolvedKey | None: ...


@dataclass(frozen=True)
class Verified:
    """A verified signature: which key signed, who owns it, and which scheme was used."""

    key_id: str
    owner: str
    scheme: str


class KeyRejected(Exception):
    """The key did not verify the signature: the one failure a key refetch can cure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------
# Headers, bytes and URLs


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case header names; merge names that differ only in case as HTTP would."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def utc(now: datetime | None) -> datetime:
    """``now`` in UTC, or the current time when None."""
    if now is None:
        return datetime.now(UTC)
    # A naive datetime is taken as UTC: the clock this package compares against is UTC.
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def b64decode(value: str) -> bytes | None:
    """Strict base64, or None when ``value`` is not base64."""
    try:
        # Strict alphabet, but tolerate folding whitespace some senders leave in.
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def wire_bytes(text: str) -> bytes:
    """The bytes a signing string stands for."""
    # Servers decode header bytes as latin-1; encoding back gives the bytes that were signed.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def split_url(url: str) -> SplitResult:
    """``urlsplit``, with a malformed URL as a SignatureError."""
    try:
        return urlsplit(url)
    except ValueError:
        raise SignatureError("malformed url") from None


def request_target(parts: SplitResult, *, with_query: bool = True) -> str:
    """The path (and query) as the ``(request-target)`` pseudo-header carries it."""
    path = parts.path or "/"
    return f"{path}?{parts.query}" if with_query and parts.query else path


_DEFAULT_PORTS = {"https": ":443", "http": ":80"}


def _without_default_port(authority: str, scheme: str) -> str:
    default = _DEFAULT_PORTS.get(scheme.lower())
    return authority[: -len(default)] if default and authority.endswith(default) else authority


def authority(parts: SplitResult) -> str:
    """The Host header value a client would send for this URL (default port omitted)."""
    return _without_default_port(parts.netloc.rpartition("@")[2].lower(), parts.scheme)


def same_authority(signed: str, expected: str, scheme: str) -> bool:
    """Whether a signed ``host[:port]`` names ``expected``, case and ``scheme``'s default port aside."""
    ours = _without_default_port(expected.strip().lower(), scheme)
    return _without_default_port(signed.strip().lower(), scheme) == ours


def requires_digest(method: str, body: bytes) -> bool:
    """Whether the signature must cover a digest of the body."""
    # Mastodon requires a signed digest on every POST, even an empty one.
    return method.upper() == "POST" or bool(body)


# ---------------------------------------------------------------------------
# Keys, with one refetch on key rotation


@lru_cache(maxsize=1024)
def cached_public_key(pem: str) -> PublicKey:
    """A peer's public key from PEM."""
    # Cached because the same few thousand peer keys verify every incoming request.
    return load_public_key(pem)


@lru_cache(maxsize=64)
def cached_private_key(pem: str) -> PrivateKey:
    """One of our private keys from PEM."""
    # Cached so callers that pass PEM text do not re-parse it per request.
    return load_private_key(pem)


def load_key(resolved: ResolvedKey) -> PublicKey:
    """The resolved key, loaded; an unusable PEM is a :class:`KeyRejected`."""
    try:
        return cached_public_key(resolved.public_key_pem)
    except (KeyFormatError, TypeError):
        # A garbled cached key may be fixed by refetching, so this counts as a key failure.
        raise KeyRejected("unusable key") from None


async def with_key(lookup: KeyLookup, key_id: str, check: Callable[[ResolvedKey], None]) -> ResolvedKey:
    """Run ``check`` with the cached key, and once more with a refetched key if the key failed.

    Only :class:`KeyRejected` (the signature did not verify with this key) triggers the
    refetch: a stale date or a bad digest will not get better with a new key, and each
    refetch is a request to the peer.
    """
    resolved = await lookup(key_id, refresh=False)
    if resolved is None:
        raise SignatureError("unknown key")
    try:
        check(resolved)
        return resolved
    except KeyRejected:
        pass
    resolved = await lookup(key_id, refresh=True)
    if resolved is None:
        raise SignatureError("unknown key")
    try:
        check(resolved)
    except KeyRejected as exc:
        raise SignatureError(exc.reason) from None
    return resolved
