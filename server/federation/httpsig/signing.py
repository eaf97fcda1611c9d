"""Signing outgoing requests, the way Mastodon does (draft-cavage)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..keys import PrivateKey
from .common import authority, cached_private_key, lower_headers, request_target, requires_digest, utc, wire_bytes
from .digest import digest_header


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
        private_key = cached_private_key(private_key_pem)
    if '"' in key_id:
        raise ValueError("key_id must not contain a double quote")
    lowered = lower_headers(headers)
    parts = urlsplit(url)
    host = lowered.get("host", "").strip() or authority(parts)
    date = format_datetime(utc(now), usegmt=True)
    added = {"Host": host, "Date": date}
    signed = {"(request-target)": f"{method.lower()} {request_target(parts)}", "host": host, "date": date}
    if requires_digest(method, body or b""):
        added["Digest"] = signed["digest"] = digest_header(body or b"")
        if "content-type" in lowered:
            signed["content-type"] = lowered["content-type"].strip()
    data = wire_bytes("\n".join(f"{name}: {value}" for name, value in signed.items()))
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
