"""RFC 9421 signatures (``Signature-Input`` + ``Signature``), which Fedify tries first.

Parsing, the coverage policy, the clock and the digest are checked here; the signature
base itself is built and verified by the ``http-message-signatures`` library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import http_sf
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    HTTPSignatureAlgorithm,
    MappingKeyResolver,
    algorithms,
)

from ..keys import PublicKey
from .common import (
    SCHEME_RFC9421,
    SIGNATURE_CACHE_MAX_LENGTH,
    SIGNATURE_CACHE_SIZE,
    IncomingRequest,
    KeyLookup,
    KeyRejected,
    ResolvedKey,
    SignatureError,
    Verified,
    authority,
    load_key,
    requires_digest,
    same_authority,
    split_url,
    with_key,
)
from .dates import epoch, within
from .digest import check_content_digest

_ALGORITHMS: dict[str, type[HTTPSignatureAlgorithm]] = {
    "rsa-v1_5-sha256": algorithms.RSA_V1_5_SHA256,
    "rsa-pss-sha512": algorithms.RSA_PSS_SHA512,
    "ed25519": algorithms.ED25519,
}


@dataclass(frozen=True)
class Rfc9421Signature:
    """One label of ``Signature-Input``/``Signature``, parsed."""

    label: str
    key_id: str
    alg: str | None
    created: int
    expires: int | None
    components: frozenset[str]
    # The chosen label alone, re-serialised, so the library sees exactly one signature.
    input_field: str
    signature_field: str


def is_rfc9421(headers: Mapping[str, str]) -> bool:
    """Whether lower-cased ``headers`` carry an RFC 9421 signature."""
    return "signature-input" in headers and "signature" in headers


# How many labels one request may make us try. Each may cost a key lookup (and a refetch),
# so a request cannot buy unbounded work with a long Signature-Input.
MAX_LABELS = 5


def find_signatures(headers: Mapping[str, str]) -> tuple[Rfc9421Signature, ...]:
    """Parse ``Signature-Input``/``Signature``: the labels to try, in header order (never empty)."""
    try:
        signature_input, signature = headers["signature-input"], headers["signature"]
    except KeyError:
        raise SignatureError("malformed signature-input") from None
    if len(signature_input) + len(signature) > SIGNATURE_CACHE_MAX_LENGTH:
        return parse_signatures(signature_input, signature)
    return cached_signatures(signature_input, signature)


def parse_signatures(signature_input: str, signature: str) -> tuple[Rfc9421Signature, ...]:
    """The labels that have both an input and a signature (the first MAX_LABELS), parsed.

    A label that does not parse is left out; when none parses, the first one's reason is raised.
    """
    try:
        inputs = http_sf.parse(signature_input.encode("ascii"), tltype="dictionary")
        signatures = http_sf.parse(signature.encode("ascii"), tltype="dictionary")
    except (ValueError, TypeError):
        raise SignatureError("malformed signature-input") from None
    parsed: list[Rfc9421Signature] = []
    reasons: list[str] = []
    for label, member in inputs.items():
        sig_member = signatures.get(label)
        if not isinstance(member[0], list) or sig_member is None or not isinstance(sig_member[0], bytes):
            continue
        try:
            parsed.append(_parse_label(label, member, sig_member))
        except SignatureError as exc:
            reasons.append(exc.reason)
        if len(parsed) + len(reasons) == MAX_LABELS:
            break
    if not parsed:
        raise SignatureError(reasons[0] if reasons else "malformed signature-input")
    return tuple(parsed)


# http_sf's shapes of the two members parse_signatures has checked: an inner list of
# (item, parameters) with its parameters, and a byte sequence with its parameters.
_InputMember = tuple[list[tuple[object, dict[str, object]]], dict[str, object]]
_SignatureMember = tuple[bytes, dict[str, object]]


def _parse_label(label: str, member: _InputMember, sig_member: _SignatureMember) -> Rfc9421Signature:
    """One label, from its ``Signature-Input`` and ``Signature`` dictionary members."""
    items, params = member
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
    return Rfc9421Signature(
        label=label,
        key_id=key_id,
        alg=alg,
        created=created,
        expires=expires,
        components=frozenset(names),
        input_field=http_sf.ser({label: member}),
        signature_field=http_sf.ser({label: sig_member}),
    )


# Cached for the same reason as cavage.cached_signature (see SIGNATURE_CACHE_SIZE).
cached_signatures = lru_cache(maxsize=SIGNATURE_CACHE_SIZE)(parse_signatures)


def _policy(sig: Rfc9421Signature, method: str, body: bytes) -> None:
    if sig.alg is not None and sig.alg not in _ALGORITHMS:
        raise SignatureError("unsupported algorithm")
    if "@method" not in sig.components:
        raise SignatureError("method not signed")
    if "@target-uri" not in sig.components and not {"@authority", "@path"} <= sig.components:
        raise SignatureError("target not signed")
    if requires_digest(method, body) and "content-digest" not in sig.components:
        raise SignatureError("content-digest not signed")


def _check_authority(sig: Rfc9421Signature, req: IncomingRequest, headers: Mapping[str, str], expected: str) -> None:
    """Refuse a covered ``@authority``, ``@target-uri`` or ``host`` that does not name ``expected``."""
    parts = split_url(req.url)
    bound = []
    if "@authority" in sig.components or "@target-uri" in sig.components:
        # The library derives both from the URL, so that is the value the signature covers.
        bound.append(authority(parts))
    if "host" in sig.components and "host" in headers:
        bound.append(headers["host"])
    if any(not same_authority(value, expected, parts.scheme) for value in bound):
        raise SignatureError("signed for another host")


def _algorithm(alg: str | None, key: PublicKey) -> type[HTTPSignatureAlgorithm]:
    if alg is None:
        # RFC 9421 lets the key decide; Fedify's RSA keys mean rsa-v1_5-sha256.
        alg = "rsa-v1_5-sha256" if isinstance(key, rsa.RSAPublicKey) else "ed25519"
    wanted = rsa.RSAPublicKey if alg.startswith("rsa-") else ed25519.Ed25519PublicKey
    if not isinstance(key, wanted):
        raise KeyRejected("algorithm does not match key")
    return _ALGORITHMS[alg]


class _InjectedClockVerifier(HTTPMessageVerifier):
    """The library's verifier minus its own created/expires check.

    The library reads the wall clock with a fixed 5 s skew; we need an injectable
    clock and our own window, so ``verify_rfc9421`` checks the times before calling it.
    """

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        return None


@dataclass
class _LibraryRequest:
    """The message shape http-message-signatures reads: method, absolute url, headers."""

    method: str
    url: str
    headers: dict[str, str]


async def verify_rfc9421(
    req: IncomingRequest,
    headers: dict[str, str],
    lookup: KeyLookup,
    now: datetime,
    max_skew: timedelta,
    expected_authority: str | None,
) -> Verified:
    """Verify an RFC 9421 signed request; ``headers`` are ``req.headers`` lower-cased.

    A request may carry several labels (RFC 9421 section 4.3) and the verifier chooses
    which to check: each parsed label is tried in order, and the first that covers what
    is required and verifies wins. When none does, the reason the first one failed is
    raised. When ``expected_authority`` is given, a covered ``@authority``,
    ``@target-uri`` or ``host`` must name it.
    """
    reasons: list[str] = []
    for sig in find_signatures(headers):
        try:
            return await _verify_label(sig, req, headers, lookup, now, max_skew, expected_authority)
        except SignatureError as exc:
            reasons.append(exc.reason)
    raise SignatureError(reasons[0])


async def _verify_label(
    sig: Rfc9421Signature,
    req: IncomingRequest,
    headers: dict[str, str],
    lookup: KeyLookup,
    now: datetime,
    max_skew: timedelta,
    expected_authority: str | None,
) -> Verified:
    """Every check on one label: coverage, clock, digest, authority, then the key."""
    _policy(sig, req.method, req.body)
    if not within(epoch(sig.created, "created"), now, max_skew):
        raise SignatureError("created outside window")
    if sig.expires is not None and epoch(sig.expires, "expires") < now:
        raise SignatureError("signature expired")
    if "content-digest" in sig.components:
        raw_digest = headers.get("content-digest")
        if raw_digest is None:
            raise SignatureError("missing content-digest")
        check_content_digest(raw_digest, req.body)
    if expected_authority is not None:
        _check_authority(sig, req, headers, expected_authority)
    message = _LibraryRequest(
        method=req.method.upper(),
        url=req.url,
        headers={**headers, "signature-input": sig.input_field, "signature": sig.signature_field},
    )

    def check(resolved: ResolvedKey) -> None:
        key = load_key(resolved)
        verifier = _InjectedClockVerifier(
            signature_algorithm=_algorithm(sig.alg, key),
            key_resolver=MappingKeyResolver(public_keys={sig.key_id: key}, private_keys={}),
        )
        try:
            verifier.verify(message, max_age=None)
        except HTTPMessageSignaturesException as exc:
            # The library wraps everything in InvalidSignature; only a cryptography
            # failure underneath means "wrong key", which a refetch may cure.
            if isinstance(exc.__cause__, CryptoInvalidSignature):
                raise KeyRejected("signature mismatch") from None
            raise SignatureError("invalid signature input") from None
        except (ValueError, TypeError):
            raise SignatureError("invalid signature input") from None

    resolved = await with_key(lookup, sig.key_id, check)
    return Verified(key_id=sig.key_id, owner=resolved.owner, scheme=SCHEME_RFC9421)
