"""HTTP signatures: sign outgoing requests, verify incoming ones.

Two schemes are in use on the fediverse:

* draft-cavage (``Signature: keyId=...,headers=...,signature=...``), which every
  peer speaks; Kith signs with it, the way Mastodon does.
* RFC 9421 (``Signature-Input`` + ``Signature``), which Fedify tries first. Verification
  of the signature base is delegated to the ``http-message-signatures`` library.

This module is pure: no network and no database. The caller injects a
:class:`KeyLookup` that turns a key id into a PEM (from its cache, or by fetching
when asked to refresh) and checks that ``Verified.owner`` is the activity's actor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import SplitResult, urlsplit

import http_sf
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    HTTPSignatureAlgorithm,
    MappingKeyResolver,
    algorithms,
)

from .keys import KeyFormatError, PrivateKey, PublicKey, load_private_key, load_public_key

SCHEME_CAVAGE = "draft-cavage"
SCHEME_RFC9421 = "rfc9421"

# Digest algorithms we can check, keyed by their lower-cased name (Mastodon sends
# "SHA-256=", bovine "sha-256="; RFC 9530 Content-Digest keys are lower-case).
_DIGEST_HASHES: dict[str, Callable[[bytes], Any]] = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}

_CAVAGE_ALGORITHMS = frozenset({"rsa-sha256", "hs2019"})

_RFC9421_ALGORITHMS: dict[str, type[HTTPSignatureAlgorithm]] = {
    "rsa-v1_5-sha256": algorithms.RSA_V1_5_SHA256,
    "rsa-pss-sha512": algorithms.RSA_PSS_SHA512,
    "ed25519": algorithms.ED25519,
}


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


class _KeyRejected(Exception):
    """The key did not verify the signature: the one failure a key refetch can cure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------
# Small shared helpers


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case header names; merge names that differ only in case as HTTP would."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    # A naive datetime is taken as UTC: the clock this module compares against is UTC.
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _b64decode(value: str) -> bytes | None:
    try:
        # Strict alphabet, but tolerate folding whitespace some senders leave in.
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _wire_bytes(text: str) -> bytes:
    # Servers decode header bytes as latin-1; encoding back gives the bytes that were signed.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _request_target(parts: SplitResult, *, with_query: bool = True) -> str:
    path = parts.path or "/"
    return f"{path}?{parts.query}" if with_query and parts.query else path


def _authority(parts: SplitResult) -> str:
    """The Host header value a client would send for this URL (default port omitted)."""
    netloc = parts.netloc.rpartition("@")[2].lower()
    default = {"https": ":443", "http": ":80"}.get(parts.scheme.lower())
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return netloc


@lru_cache(maxsize=1024)
def _public_key(pem: str) -> PublicKey:
    # Cached because the same few thousand peer keys verify every incoming request.
    return load_public_key(pem)


@lru_cache(maxsize=64)
def _private_key(pem: str) -> PrivateKey:
    # Cached so callers that pass PEM text do not re-parse it per request.
    return load_private_key(pem)


def _within(moment: datetime, now: datetime, max_skew: timedelta) -> bool:
    return now - max_skew <= moment <= now + max_skew


_TIMESTAMP = re.compile(r"\d{1,12}(?:\.\d{1,9})?")


def _timestamp(raw: str, what: str) -> datetime:
    """A unix timestamp as sent in cavage ``created``/``expires`` (integer, or decimal)."""
    if not _TIMESTAMP.fullmatch(raw):
        raise SignatureError(f"malformed {what}")
    try:
        return datetime.fromtimestamp(float(raw), UTC)
    except (OverflowError, OSError, ValueError):
        raise SignatureError(f"malformed {what}") from None


_MONTHS = {
    name: number
    for number, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1
    )
}
# The three HTTP-date forms of RFC 7231 section 7.1.1.1 (IMF-fixdate, RFC 850, asctime).
# Matched by hand rather than strptime, whose day and month names depend on the locale.
_IMF_FIXDATE = re.compile(
    r"(?:mon|tue|wed|thu|fri|sat|sun), (\d{2}) ([a-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) gmt", re.I
)
_RFC850_DATE = re.compile(
    r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday), "
    r"(\d{2})-([a-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) gmt",
    re.I,
)
_ASCTIME_DATE = re.compile(
    r"(?:mon|tue|wed|thu|fri|sat|sun) ([a-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})", re.I
)


def _parse_http_date(value: str) -> datetime | None:
    """Parse an HTTP-date; None when it is not one (Mastodon rejects such requests)."""
    text = value.strip()
    if m := _IMF_FIXDATE.fullmatch(text):
        day, month, year, hh, mm, ss = m.groups()
    elif m := _RFC850_DATE.fullmatch(text):
        day, month, yy, hh, mm, ss = m.groups()
        year = str(1900 + int(yy) if int(yy) >= 70 else 2000 + int(yy))
    elif m := _ASCTIME_DATE.fullmatch(text):
        month, day, hh, mm, ss, year = m.groups()
    else:
        return None
    month_no = _MONTHS.get(month.lower())
    if month_no is None:
        return None
    try:
        return datetime(int(year), month_no, int(day), int(hh), int(mm), int(ss), tzinfo=UTC)
    except ValueError:
        return None


def digest_header(body: bytes) -> str:
    """The draft-cavage ``Digest`` header value for a body: ``SHA-256=<base64>``."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def _check_digest(value: str, body: bytes) -> None:
    """Check a ``Digest`` header: every algorithm we know must match; unknown ones are skipped."""
    known = 0
    for part in value.split(","):
        name, sep, encoded = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed digest")
        hasher = _DIGEST_HASHES.get(name.strip().lower())
        if hasher is None:
            continue
        expected = _b64decode(encoded)
        if expected is None:
            raise SignatureError("malformed digest")
        if not hmac.compare_digest(expected, hasher(body).digest()):
            raise SignatureError("digest mismatch")
        known += 1
    if not known:
        raise SignatureError("unsupported digest algorithm")


def _check_content_digest(value: str, body: bytes) -> None:
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


def _requires_digest(method: str, body: bytes) -> bool:
    # Mastodon requires a signed digest on every POST, even an empty one.
    return method.upper() == "POST" or bool(body)


# ---------------------------------------------------------------------------
# Key lookup with one refetch on key rotation


async def _with_key(lookup: KeyLookup, key_id: str, check: Callable[[ResolvedKey], None]) -> ResolvedKey:
    """Run ``check`` with the cached key, and once more with a refetched key if the key failed.

    Only :class:`_KeyRejected` (the signature did not verify with this key) triggers the
    refetch: a stale date or a bad digest will not get better with a new key, and each
    refetch is a request to the peer.
    """
    resolved = await lookup(key_id, refresh=False)
    if resolved is None:
        raise SignatureError("unknown key")
    try:
        check(resolved)
        return resolved
    except _KeyRejected:
        pass
    resolved = await lookup(key_id, refresh=True)
    if resolved is None:
        raise SignatureError("unknown key")
    try:
        check(resolved)
    except _KeyRejected as exc:
        raise SignatureError(exc.reason) from None
    return resolved


def _load_key(resolved: ResolvedKey) -> PublicKey:
    try:
        return _public_key(resolved.public_key_pem)
    except (KeyFormatError, TypeError):
        # A garbled cached key may be fixed by refetching, so this counts as a key failure.
        raise _KeyRejected("unusable key") from None


# ---------------------------------------------------------------------------
# draft-cavage


@dataclass(frozen=True)
class _CavageSignature:
    key_id: str
    algorithm: str | None
    headers: tuple[str, ...]
    signature: str
    created: str | None
    expires: str | None


_CAVAGE_ESCAPE = re.compile(r"\\(.)")
# A quoted value is written [^"\\]*(?:\\.[^"\\]*)* ("unrolled"), the same strings as
# (?:[^"\\]|\\.)* but matched in runs instead of one alternation per character: the
# base64 signature is several hundred characters long.
_CAVAGE_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^",\s]*))\s*')


def _parse_cavage_params(value: str) -> dict[str, str]:
    """Parse ``name="value",name=value`` pairs; names are lower-cased (keyId -> keyid)."""
    params: dict[str, str] = {}
    pos = 0
    while pos < len(value):
        m = _CAVAGE_PARAM.match(value, pos)
        if m is None:
            raise SignatureError("malformed signature header")
        name = m.group(1).lower()
        if name in params:
            raise SignatureError("malformed signature header")
        quoted = m.group(2)
        if quoted is None:
            params[name] = m.group(3)
        else:
            params[name] = _CAVAGE_ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
        pos = m.end()
        if pos < len(value):
            if value[pos] != ",":
                raise SignatureError("malformed signature header")
            pos += 1
    return params


def _cavage_signature(headers: Mapping[str, str]) -> _CavageSignature:
    """Find and parse the cavage signature (``Signature``, else ``Authorization: Signature``)."""
    raw = headers.get("signature")
    if raw is None:
        auth = headers.get("authorization", "")
        scheme, _, rest = auth.strip().partition(" ")
        if scheme.lower() != "signature":
            raise SignatureError("missing signature")
        raw = rest
    if len(raw) > _SIGNATURE_CACHE_MAX_LENGTH:
        return _parse_cavage_signature(raw)
    return _cached_cavage_signature(raw)


# The inbox reads the key id first (to refuse blocked domains before any key fetch),
# then verifies: the same header would be parsed twice per request. Parsing is pure and
# the result frozen, so a small cache of the latest headers serves the second call.
# Headers longer than any real signature are parsed uncached (bounded memory).
_SIGNATURE_CACHE_SIZE = 256
_SIGNATURE_CACHE_MAX_LENGTH = 8192


def _parse_cavage_signature(raw: str) -> _CavageSignature:
    params = _parse_cavage_params(raw)
    key_id = params.get("keyid")
    signature = params.get("signature")
    if not key_id:
        raise SignatureError("missing keyId")
    if not signature:
        raise SignatureError("missing signature value")
    # The spec's default when "headers" is absent is just "date".
    names = tuple(params.get("headers", "date").lower().split())
    algorithm = params.get("algorithm")
    return _CavageSignature(
        key_id=key_id,
        algorithm=algorithm.lower() if algorithm else None,
        headers=names,
        signature=signature,
        created=params.get("created"),
        expires=params.get("expires"),
    )


_cached_cavage_signature = lru_cache(maxsize=_SIGNATURE_CACHE_SIZE)(_parse_cavage_signature)


def _cavage_policy(sig: _CavageSignature, method: str, body: bytes) -> None:
    """Refuse signatures that cover too little, as Mastodon does (plus request-target)."""
    if sig.algorithm is not None and sig.algorithm not in _CAVAGE_ALGORITHMS:
        raise SignatureError("unsupported algorithm")
    names = set(sig.headers)
    # Without the target a signed GET or POST could be replayed to another URL.
    if "(request-target)" not in names:
        raise SignatureError("request-target not signed")
    if "date" not in names and "(created)" not in names:
        raise SignatureError("date not signed")
    if _requires_digest(method, body) and "digest" not in names:
        raise SignatureError("digest not signed")
    if method.upper() == "GET" and "host" not in names:
        raise SignatureError("host not signed")


def _cavage_freshness(sig: _CavageSignature, headers: Mapping[str, str], now: datetime, max_skew: timedelta) -> None:
    names = set(sig.headers)
    if "date" in names:
        raw_date = headers.get("date")
        if raw_date is None:
            raise SignatureError("missing date header")
        date = _parse_http_date(raw_date)
        if date is None:
            raise SignatureError("invalid date")
        if not _within(date, now, max_skew):
            raise SignatureError("date outside window")
    if "(created)" in names:
        if sig.created is None:
            raise SignatureError("missing created")
        if not _within(_timestamp(sig.created, "created"), now, max_skew):
            raise SignatureError("created outside window")
    if "(expires)" in names and sig.expires is None:
        raise SignatureError("missing expires")
    # Honoured even when unsigned: refusing an expired request can only be stricter.
    if sig.expires is not None and _timestamp(sig.expires, "expires") < now:
        raise SignatureError("signature expired")


def _cavage_signing_strings(sig: _CavageSignature, req: IncomingRequest, headers: Mapping[str, str]) -> list[bytes]:
    """The signing string; a second one without the query string when the URL has one.

    Mastodon accepts a (request-target) signed without the query string, so some peers do it.
    """
    try:
        parts = urlsplit(req.url)
    except ValueError:
        raise SignatureError("malformed url") from None
    targets = [_request_target(parts)]
    if parts.query and "(request-target)" in sig.headers:
        targets.append(_request_target(parts, with_query=False))
    strings = []
    for target in targets:
        lines = []
        for name in sig.headers:
            if name == "(request-target)":
                value = f"{req.method.lower()} {target}"
            elif name == "(created)":
                value = sig.created or ""
            elif name == "(expires)":
                value = sig.expires or ""
            elif name in headers:
                value = headers[name].strip()
            elif name == "host":
                # HTTP/2 carries :authority instead of Host; the URL holds the same value.
                value = _authority(parts)
            else:
                raise SignatureError("missing signed header")
            lines.append(f"{name}: {value}")
        strings.append(_wire_bytes("\n".join(lines)))
    return strings


def _verify_cavage_crypto(key: PublicKey, algorithm: str | None, signature: bytes, candidates: list[bytes]) -> None:
    """Verify ``signature`` over any of ``candidates``; raise _KeyRejected if none matches."""
    # rsa-sha256 names the key type; hs2019 (or no algorithm) means "whatever the key is".
    if isinstance(key, rsa.RSAPublicKey):

        def verify(data: bytes) -> None:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())

    elif isinstance(key, ed25519.Ed25519PublicKey) and algorithm != "rsa-sha256":

        def verify(data: bytes) -> None:
            key.verify(signature, data)

    else:
        raise _KeyRejected("algorithm does not match key")
    for data in candidates:
        try:
            verify(data)
            return
        except (CryptoInvalidSignature, ValueError):
            continue
    raise _KeyRejected("signature mismatch")


async def _verify_cavage(
    req: IncomingRequest, headers: dict[str, str], lookup: KeyLookup, now: datetime, max_skew: timedelta
) -> Verified:
    sig = _cavage_signature(headers)
    _cavage_policy(sig, req.method, req.body)
    _cavage_freshness(sig, headers, now, max_skew)
    if "digest" in sig.headers:
        raw_digest = headers.get("digest")
        if raw_digest is None:
            raise SignatureError("missing digest")
        _check_digest(raw_digest, req.body)
    signature = _b64decode(sig.signature)
    if signature is None:
        raise SignatureError("malformed signature")
    candidates = _cavage_signing_strings(sig, req, headers)

    def check(resolved: ResolvedKey) -> None:
        _verify_cavage_crypto(_load_key(resolved), sig.algorithm, signature, candidates)

    resolved = await _with_key(lookup, sig.key_id, check)
    return Verified(key_id=sig.key_id, owner=resolved.owner, scheme=SCHEME_CAVAGE)


# ---------------------------------------------------------------------------
# RFC 9421


@dataclass(frozen=True)
class _Rfc9421Signature:
    label: str
    key_id: str
    alg: str | None
    created: int
    expires: int | None
    components: frozenset[str]
    # The chosen label alone, re-serialised, so the library sees exactly one signature.
    input_field: str
    signature_field: str


def _rfc9421_signature(headers: Mapping[str, str]) -> _Rfc9421Signature:
    """Parse ``Signature-Input``/``Signature`` and pick the first complete label."""
    try:
        signature_input, signature = headers["signature-input"], headers["signature"]
    except KeyError:
        raise SignatureError("malformed signature-input") from None
    if len(signature_input) + len(signature) > _SIGNATURE_CACHE_MAX_LENGTH:
        return _parse_rfc9421_signature(signature_input, signature)
    return _cached_rfc9421_signature(signature_input, signature)


def _parse_rfc9421_signature(signature_input: str, signature: str) -> _Rfc9421Signature:
    try:
        inputs = http_sf.parse(signature_input.encode("ascii"), tltype="dictionary")
        signatures = http_sf.parse(signature.encode("ascii"), tltype="dictionary")
    except (ValueError, TypeError):
        raise SignatureError("malformed signature-input") from None
    for label, member in inputs.items():
        items, params = member
        sig_member = signatures.get(label)
        if not isinstance(items, list) or sig_member is None or not isinstance(sig_member[0], bytes):
            continue
        break
    else:
        raise SignatureError("malformed signature-input")
    names = []
    for item, _item_params in items:
        if not isinstance(item, str):
            raise SignatureError("malformed signature-input")
        names.append(item)
    key_id = params.get("keyid")
    if not isinstance(key_id, str) or not key_id:
        raise SignatureError("missing keyid")
    alg = params.get("alg")
    if alg is not None and not isinstance(alg, str):
        raise SignatureError("malformed signature-input")
    created = params.get("created")
    if type(created) is not int:
        raise SignatureError("missing created")
    expires = params.get("expires")
    if expires is not None and type(expires) is not int:
        raise SignatureError("malformed signature-input")
    return _Rfc9421Signature(
        label=label,
        key_id=key_id,
        alg=alg,
        created=created,
        expires=expires,
        components=frozenset(names),
        input_field=http_sf.ser({label: member}),
        signature_field=http_sf.ser({label: sig_member}),
    )


# Cached for the same reason as _cached_cavage_signature.
_cached_rfc9421_signature = lru_cache(maxsize=_SIGNATURE_CACHE_SIZE)(_parse_rfc9421_signature)


def _rfc9421_policy(sig: _Rfc9421Signature, method: str, body: bytes) -> None:
    if sig.alg is not None and sig.alg not in _RFC9421_ALGORITHMS:
        raise SignatureError("unsupported algorithm")
    if "@method" not in sig.components:
        raise SignatureError("method not signed")
    if "@target-uri" not in sig.components and not {"@authority", "@path"} <= sig.components:
        raise SignatureError("target not signed")
    if _requires_digest(method, body) and "content-digest" not in sig.components:
        raise SignatureError("content-digest not signed")


def _epoch(value: int, what: str) -> datetime:
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise SignatureError(f"malformed {what}") from None


def _rfc9421_algorithm(alg: str | None, key: PublicKey) -> type[HTTPSignatureAlgorithm]:
    if alg is None:
        # RFC 9421 lets the key decide; Fedify's RSA keys mean rsa-v1_5-sha256.
        alg = "rsa-v1_5-sha256" if isinstance(key, rsa.RSAPublicKey) else "ed25519"
    wanted = rsa.RSAPublicKey if alg.startswith("rsa-") else ed25519.Ed25519PublicKey
    if not isinstance(key, wanted):
        raise _KeyRejected("algorithm does not match key")
    return _RFC9421_ALGORITHMS[alg]


class _InjectedClockVerifier(HTTPMessageVerifier):
    """The library's verifier minus its own created/expires check.

    The library reads the wall clock with a fixed 5 s skew; we need an injectable
    clock and our own window, so ``_verify_rfc9421`` checks the times before calling it.
    """

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        return None


@dataclass
class _LibraryRequest:
    """The message shape http-message-signatures reads: method, absolute url, headers."""

    method: str
    url: str
    headers: dict[str, str]


async def _verify_rfc9421(
    req: IncomingRequest, headers: dict[str, str], lookup: KeyLookup, now: datetime, max_skew: timedelta
) -> Verified:
    sig = _rfc9421_signature(headers)
    _rfc9421_policy(sig, req.method, req.body)
    if not _within(_epoch(sig.created, "created"), now, max_skew):
        raise SignatureError("created outside window")
    if sig.expires is not None and _epoch(sig.expires, "expires") < now:
        raise SignatureError("signature expired")
    if "content-digest" in sig.components:
        raw_digest = headers.get("content-digest")
        if raw_digest is None:
            raise SignatureError("missing content-digest")
        _check_content_digest(raw_digest, req.body)
    message = _LibraryRequest(
        method=req.method.upper(),
        url=req.url,
        headers={**headers, "signature-input": sig.input_field, "signature": sig.signature_field},
    )

    def check(resolved: ResolvedKey) -> None:
        key = _load_key(resolved)
        verifier = _InjectedClockVerifier(
            signature_algorithm=_rfc9421_algorithm(sig.alg, key),
            key_resolver=MappingKeyResolver(public_keys={sig.key_id: key}, private_keys={}),
        )
        try:
            verifier.verify(message, max_age=None)
        except HTTPMessageSignaturesException as exc:
            # The library wraps everything in InvalidSignature; only a cryptography
            # failure underneath means "wrong key", which a refetch may cure.
            if isinstance(exc.__cause__, CryptoInvalidSignature):
                raise _KeyRejected("signature mismatch") from None
            raise SignatureError("invalid signature input") from None
        except (ValueError, TypeError):
            raise SignatureError("invalid signature input") from None

    resolved = await _with_key(lookup, sig.key_id, check)
    return Verified(key_id=sig.key_id, owner=resolved.owner, scheme=SCHEME_RFC9421)


# ---------------------------------------------------------------------------
# Public entry points


def _is_rfc9421(headers: Mapping[str, str]) -> bool:
    return "signature-input" in headers and "signature" in headers


def signature_key_id(headers: Mapping[str, str]) -> str | None:
    """The key id a request claims to be signed with, without any crypto; None if unreadable.

    Cheap enough to run before anything else, to drop requests from blocked domains.
    Picks the same signature that :func:`verify_request` would verify.
    """
    lowered = _lower_headers(headers)
    try:
        if _is_rfc9421(lowered):
            return _rfc9421_signature(lowered).key_id
        return _cavage_signature(lowered).key_id
    except SignatureError:
        return None


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    key_id: str,
    private_key_pem: str | None = None,
    now: datetime | None = None,
    private_key: PrivateKey | None = None,
) -> dict[str, str]:
    """Sign a request the way Mastodon does; return the headers to add.

    Returns ``Host``, ``Date``, ``Digest`` (POST, or any request with a body) and
    ``Signature``. Signed headers: ``(request-target) host date`` plus ``digest`` and
    ``content-type`` (when ``headers`` has one) on requests with a body. The
    request-target includes the query string. Pass either ``private_key_pem`` or an
    already loaded ``private_key`` (faster when signing many requests).
    """
    if private_key is None:
        if private_key_pem is None:
            raise ValueError("sign_request needs private_key_pem or private_key")
        private_key = _private_key(private_key_pem)
    if '"' in key_id:
        raise ValueError("key_id must not contain a double quote")
    lowered = _lower_headers(headers)
    parts = urlsplit(url)
    host = lowered.get("host", "").strip() or _authority(parts)
    date = format_datetime(_utc(now), usegmt=True)
    added = {"Host": host, "Date": date}
    signed = {"(request-target)": f"{method.lower()} {_request_target(parts)}", "host": host, "date": date}
    if _requires_digest(method, body or b""):
        added["Digest"] = signed["digest"] = digest_header(body or b"")
        if "content-type" in lowered:
            signed["content-type"] = lowered["content-type"].strip()
    data = _wire_bytes("\n".join(f"{name}: {value}" for name, value in signed.items()))
    if isinstance(private_key, rsa.RSAPrivateKey):
        raw = private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        algorithm = "rsa-sha256"
    else:
        # "rsa-sha256" would be a lie for Ed25519; hs2019 tells the verifier to ask the key.
        raw = private_key.sign(data)
        algorithm = "hs2019"
    added["Signature"] = (
        f'keyId="{key_id}",algorithm="{algorithm}",headers="{" ".join(signed)}",'
        f'signature="{base64.b64encode(raw).decode("ascii")}"'
    )
    return added


async def verify_request(
    req: IncomingRequest,
    lookup: KeyLookup,
    *,
    now: datetime | None = None,
    max_skew: timedelta = timedelta(hours=1),
) -> Verified:
    """Verify an incoming request's HTTP signature (RFC 9421 if present, else draft-cavage).

    Checks, before touching any key: the signature covers the method/target, a date or
    creation time, the host on GET and the body digest on POST; the time lies within
    ``max_skew`` of ``now`` and has not expired; the digest matches the body. Then it
    asks ``lookup`` for the key, and once more with ``refresh=True`` if that key does
    not verify (the peer may have rotated it). Raises :class:`SignatureError` on any
    failure; exceptions raised by ``lookup`` itself propagate unchanged.
    """
    current = _utc(now)
    headers = _lower_headers(req.headers)
    if _is_rfc9421(headers):
        return await _verify_rfc9421(req, headers, lookup, current, max_skew)
    return await _verify_cavage(req, headers, lookup, current, max_skew)
