"""draft-cavage signatures (``Signature: keyId=...,headers=...,signature=...``): parse and verify.

Every fediverse peer speaks this scheme; Mastodon's rules decide what it must cover.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import SplitResult

from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from ..keys import PublicKey
from .common import (
    SCHEME_CAVAGE,
    SIGNATURE_CACHE_MAX_LENGTH,
    SIGNATURE_CACHE_SIZE,
    IncomingRequest,
    KeyLookup,
    KeyRejected,
    ResolvedKey,
    SignatureError,
    Verified,
    authority,
    b64decode,
    load_key,
    request_target,
    requires_digest,
    same_authority,
    split_url,
    wire_bytes,
    with_key,
)
from .dates import parse_http_date, timestamp, within
from .digest import check_digest

_ALGORITHMS = frozenset({"rsa-sha256", "hs2019"})


@dataclass(frozen=True)
class CavageSignature:
    """A parsed ``Signature`` header; ``headers`` are the signed names, lower-cased."""

    key_id: str
    algorithm: str | None
    headers: tuple[str, ...]
    signature: str
    created: str | None
    expires: str | None


_ESCAPE = re.compile(r"\\(.)")
# A quoted value is written [^"\\]*(?:\\.[^"\\]*)* ("unrolled"), the same strings as
# (?:[^"\\]|\\.)* but matched in runs instead of one alternation per character: the
# base64 signature is several hundred characters long.
_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^",\s]*))\s*')


def parse_params(value: str) -> dict[str, str]:
    """Parse ``name="value",name=value`` pairs; names are lower-cased (keyId -> keyid)."""
    params: dict[str, str] = {}
    pos = 0
    while pos < len(value):
        m = _PARAM.match(value, pos)
        if m is None:
            raise SignatureError("malformed signature header")
        name = m.group(1).lower()
        if name in params:
            raise SignatureError("malformed signature header")
        quoted = m.group(2)
        if quoted is None:
            params[name] = m.group(3)
        else:
            params[name] = _ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
        pos = m.end()
        if pos < len(value):
            if value[pos] != ",":
                raise SignatureError("malformed signature header")
            pos += 1
    return params


def find_signature(headers: Mapping[str, str]) -> CavageSignature:
    """Find and parse the cavage signature (``Signature``, else ``Authorization: Signature``)."""
    raw = headers.get("signature")
    if raw is None:
        auth = headers.get("authorization", "")
        scheme, _, rest = auth.strip().partition(" ")
        if scheme.lower() != "signature":
            raise SignatureError("missing signature")
        raw = rest
    if len(raw) > SIGNATURE_CACHE_MAX_LENGTH:
        return parse_signature(raw)
    return cached_signature(raw)


def parse_signature(raw: str) -> CavageSignature:
    """Parse a ``Signature`` header value (without any ``Signature`` auth-scheme prefix)."""
    params = parse_params(raw)
    key_id = params.get("keyid")
    signature = params.get("signature")
    if not key_id:
        raise SignatureError("missing keyId")
    if not signature:
        raise SignatureError("missing signature value")
    # The spec's default when "headers" is absent is just "date".
    names = tuple(params.get("headers", "date").lower().split())
    algorithm = params.get("algorithm")
    return CavageSignature(
        key_id=key_id,
        algorithm=algorithm.lower() if algorithm else None,
        headers=names,
        signature=signature,
        created=params.get("created"),
        expires=params.get("expires"),
    )


# See SIGNATURE_CACHE_SIZE: the inbox parses the same header for the key id, then to verify.
cached_signature = lru_cache(maxsize=SIGNATURE_CACHE_SIZE)(parse_signature)


def _policy(sig: CavageSignature, method: str, body: bytes) -> None:
    """Refuse signatures that cover too little, as Mastodon does (plus request-target)."""
    if sig.algorithm is not None and sig.algorithm not in _ALGORITHMS:
        raise SignatureError("unsupported algorithm")
    names = set(sig.headers)
    # Without the target a signed GET or POST could be replayed to another URL.
    if "(request-target)" not in names:
        raise SignatureError("request-target not signed")
    if "date" not in names and "(created)" not in names:
        raise SignatureError("date not signed")
    if requires_digest(method, body) and "digest" not in names:
        raise SignatureError("digest not signed")
    if method.upper() == "GET" and "host" not in names:
        raise SignatureError("host not signed")


def _freshness(sig: CavageSignature, headers: Mapping[str, str], now: datetime, max_skew: timedelta) -> None:
    names = set(sig.headers)
    if "date" in names:
        raw_date = headers.get("date")
        if raw_date is None:
            raise SignatureError("missing date header")
        date = parse_http_date(raw_date)
        if date is None:
            raise SignatureError("invalid date")
        if not within(date, now, max_skew):
            raise SignatureError("date outside window")
    if "(created)" in names:
        if sig.created is None:
            raise SignatureError("missing created")
        if not within(timestamp(sig.created, "created"), now, max_skew):
            raise SignatureError("created outside window")
    if "(expires)" in names and sig.expires is None:
        raise SignatureError("missing expires")
    # Honoured even when unsigned: refusing an expired request can only be stricter.
    if sig.expires is not None and timestamp(sig.expires, "expires") < now:
        raise SignatureError("signature expired")


def _signed_host(parts: SplitResult, headers: Mapping[str, str]) -> str:
    """The value a signed ``host`` stands for: the Host header, else the URL's authority."""
    # HTTP/2 carries :authority instead of Host; the URL holds the same value.
    return headers["host"].strip() if "host" in headers else authority(parts)


def _check_host(sig: CavageSignature, parts: SplitResult, headers: Mapping[str, str], expected: str) -> None:
    """Refuse a signed ``host`` that is not ``expected``: a request signed for another server.

    Without this, a request a peer really sent to another instance could be replayed
    here within the clock window, since the path of a shared inbox is the same everywhere.
    """
    if "host" in sig.headers and not same_authority(_signed_host(parts, headers), expected, parts.scheme):
        raise SignatureError("signed for another host")


def _signing_strings(sig: CavageSignature, method: str, parts: SplitResult, headers: Mapping[str, str]) -> list[bytes]:
    """The signing string; a second one without the query string when the URL has one.

    Mastodon accepts a (request-target) signed without the query string, so some peers do it.
    """
    targets = [request_target(parts)]
    if parts.query and "(request-target)" in sig.headers:
        targets.append(request_target(parts, with_query=False))
    strings = []
    for target in targets:
        lines = []
        for name in sig.headers:
            if name == "(request-target)":
                value = f"{method.lower()} {target}"
            elif name == "(created)":
                value = sig.created or ""
            elif name == "(expires)":
                value = sig.expires or ""
            elif name == "host":
                value = _signed_host(parts, headers)
            elif name in headers:
                value = headers[name].strip()
            else:
                raise SignatureError("missing signed header")
            lines.append(f"{name}: {value}")
        strings.append(wire_bytes("\n".join(lines)))
    return strings


def _verify_crypto(key: PublicKey, algorithm: str | None, signature: bytes, candidates: list[bytes]) -> None:
    """Verify ``signature`` over any of ``candidates``; raise KeyRejected if none matches."""
    # rsa-sha256 names the key type; hs2019 (or no algorithm) means "whatever the key is".
    if isinstance(key, rsa.RSAPublicKey):

        def verify(data: bytes) -> None:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())

    elif isinstance(key, ed25519.Ed25519PublicKey) and algorithm != "rsa-sha256":

        def verify(data: bytes) -> None:
            key.verify(signature, data)

    else:
        raise KeyRejected("algorithm does not match key")
    for data in candidates:
        try:
            verify(data)
            return
        except (CryptoInvalidSignature, ValueError):
            continue
    raise KeyRejected("signature mismatch")


async def verify_cavage(
    req: IncomingRequest,
    headers: dict[str, str],
    lookup: KeyLookup,
    now: datetime,
    max_skew: timedelta,
    expected_authority: str | None,
) -> Verified:
    """Verify a draft-cavage signed request; ``headers`` are ``req.headers`` lower-cased.

    When ``expected_authority`` is given, a signed ``host`` must name it.
    """
    sig = find_signature(headers)
    _policy(sig, req.method, req.body)
    _freshness(sig, headers, now, max_skew)
    if "digest" in sig.headers:
        raw_digest = headers.get("digest")
        if raw_digest is None:
            raise SignatureError("missing digest")
        check_digest(raw_digest, req.body)
    signature = b64decode(sig.signature)
    if signature is None:
        raise SignatureError("malformed signature")
    parts = split_url(req.url)
    if expected_authority is not None:
        _check_host(sig, parts, headers, expected_authority)
    candidates = _signing_strings(sig, req.method, parts, headers)

    def check(resolved: ResolvedKey) -> None:
        _verify_crypto(load_key(resolved), sig.algorithm, signature, candidates)

    resolved = await with_key(lookup, sig.key_id, check)
    return Verified(key_id=sig.key_id, owner=resolved.owner, scheme=SCHEME_CAVAGE)
