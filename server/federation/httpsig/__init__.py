"""HTTP signatures: sign outgoing requests, verify incoming ones.

Two schemes are in use on the fediverse:

* draft-cavage (``Signature: keyId=...,headers=...,signature=...``), which every
  peer speaks; Kith signs with it, the way Mastodon does (``cavage``, ``signing``).
* RFC 9421 (``Signature-Input`` + ``Signature``), which Fedify tries first. Verification
  of the signature base is delegated to the ``http-message-signatures`` library
  (``rfc9421``).

``common`` holds the types and helpers both share, ``dates`` the clocks, ``digest``
the body digests. The package is pure: no network and no database. The caller injects
a :class:`KeyLookup` that turns a key id into a PEM (from its cache, or by fetching
when asked to refresh) and checks that ``Verified.owner`` is the activity's actor.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from .cavage import find_signature as _cavage_signature
from .cavage import verify_cavage as _verify_cavage
from .common import (
    SCHEME_CAVAGE,
    SCHEME_RFC9421,
    IncomingRequest,
    KeyLookup,
    ResolvedKey,
    SignatureError,
    Verified,
    lower_headers,
    utc,
)
from .digest import digest_header
from .rfc9421 import find_signatures as _rfc9421_signatures
from .rfc9421 import is_rfc9421 as _is_rfc9421
from .rfc9421 import verify_rfc9421 as _verify_rfc9421
from .signing import sign_request

__all__ = [
    "SCHEME_CAVAGE",
    "SCHEME_RFC9421",
    "IncomingRequest",
    "KeyLookup",
    "ResolvedKey",
    "SignatureError",
    "Verified",
    "digest_header",
    "sign_request",
    "signature_key_id",
    "verify_request",
]


def signature_key_id(headers: Mapping[str, str]) -> str | None:
    """The key id a request claims to be signed with, without any crypto; None if unreadable.

    Cheap enough to run before anything else, to drop requests from blocked domains.
    Picks the signature :func:`verify_request` checks first (with RFC 9421, the first
    label that parses; later labels are tried only when it fails).
    """
    lowered = lower_headers(headers)
    try:
        if _is_rfc9421(lowered):
            return _rfc9421_signatures(lowered)[0].key_id
        return _cavage_signature(lowered).key_id
    except SignatureError:
        return None


async def verify_request(
    req: IncomingRequest,
    lookup: KeyLookup,
    *,
    now: datetime | None = None,
    max_skew: timedelta = timedelta(hours=1),
    authority: str | None = None,
) -> Verified:
    """Verify an incoming request's HTTP signature (RFC 9421 if present, else draft-cavage).

    Checks, before touching any key: the signature covers the method/target, a date or
    creation time, the host on GET and the body digest on POST; the time lies within
    ``max_skew`` of ``now`` and has not expired; the digest matches the body; when
    ``authority`` (this server's ``host[:port]``) is given, a signed ``host`` (draft-cavage)
    or a covered ``@authority``, ``@target-uri`` or ``host`` (RFC 9421) names it, so a
    request signed for another server is refused ("signed for another host"). Then it
    asks ``lookup`` for the key, and once more with ``refresh=True`` if that key does
    not verify (the peer may have rotated it). Raises :class:`SignatureError` on any
    failure; exceptions raised by ``lookup`` itself propagate unchanged.
    """
    current = utc(now)
    headers = lower_headers(req.headers)
    if _is_rfc9421(headers):
        return await _verify_rfc9421(req, headers, lookup, current, max_skew, authority)
    return await _verify_cavage(req, headers, lookup, current, max_skew, authority)
