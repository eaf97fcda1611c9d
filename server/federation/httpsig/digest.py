"""Body digests: draft-cavage ``Digest`` and RFC 9530 ``Content-Digest``."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import http_sf

from .common import SignatureError, b64decode

# Digest algorithms we can check, keyed by their lower-cased name (Mastodon sends
# "SHA-256=", bovine "sha-256="; RFC 9530 Content-Digest keys are lower-case).
_DIGEST_HASHES: dict[str, Callable[[bytes], Any]] = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def digest_header(body: bytes) -> str:
    """The draft-cavage ``Digest`` header value for a body: ``SHA-256=<base64>``."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def check_digest(value: str, body: bytes) -> None:
    """Check a ``Digest`` header: every algorithm we know must match; unknown ones are skipped."""
    known = 0
    for part in value.split(","):
        name, sep, encoded = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed digest")
        hasher = _DIGEST_HASHES.get(name.strip().lower())
        if hasher is None:
            continue
        expected = b64decode(encoded)
        if expected is None:
            raise SignatureError("malformed digest")
        if not hmac.compare_digest(expected, hasher(body).digest()):
            raise SignatureError("digest mismatch")
        known += 1
    if not known:
        raise SignatureError("unsupported digest algorithm")


def check_content_digest(value: str, body: bytes) -> None:
    """Check an RFC 9530 ``Content-Digest`` (``sha-256=:b64:``) the same way as ``Digest``.

    Done here rather than by the library because it rejects unknown algorithms outright
    and only checks digests after the crypto, which would blur "bad body" with "bad key".
    """
    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except (ValueError, TypeError):
        raise SignatureError("malformed content-digest") from None
    known = 0
    for name, (member, _params) in parsed.items():
        hasher = _DIGEST_HASHES.get(name)
        if hasher is None:
            continue
        if not isinstance(member, bytes):
            raise SignatureError("malformed content-digest")
        if not hmac.compare_digest(member, hasher(body).digest()):
            raise SignatureError("digest mismatch")
        known += 1
    if not known:
        raise SignatureError("unsupported digest algorithm")
