"""Signers and key lookups shared by the HTTP signature tests (test_httpsig*.py).

Independent signers (a hand-written draft-cavage one, and http-message-signatures for RFC
9421) let the tests sign shapes that Kith's own ``sign_request`` never makes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

from server.federation.httpsig import (
    IncomingRequest,
    ResolvedKey,
    SignatureError,
    Verified,
    digest_header,
    verify_request,
)
from server.federation.keys import generate_rsa_keypair, load_private_key, public_pem_of

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
KEY_ID = "https://remote.example/users/alice#main-key"
OWNER = "https://remote.example/users/alice"
INBOX = "https://kith.example/groups/g/inbox"
BODY = b'{"type":"Follow","actor":"https://remote.example/users/alice"}'

ALICE = generate_rsa_keypair()
OTHER = generate_rsa_keypair()
ED_PRIVATE = ed25519.Ed25519PrivateKey.generate()
ED_PRIVATE_PEM = ED_PRIVATE.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
ED_PUBLIC_PEM = public_pem_of(ED_PRIVATE)


class FakeLookup:
    """Hands out one key from the cache and (optionally) another on refresh; records calls."""

    def __init__(self, cached: str | None, refreshed: str | None = None, owner: str = OWNER) -> None:
        self.cached = cached
        self.refreshed = refreshed if refreshed is not None else cached
        self.owner = owner
        self.calls: list[tuple[str, bool]] = []

    async def __call__(self, key_id: str, *, refresh: bool) -> ResolvedKey | None:
        self.calls.append((key_id, refresh))
        pem = self.refreshed if refresh else self.cached
        return None if pem is None else ResolvedKey(key_id=key_id, owner=self.owner, public_key_pem=pem)


def http_date(moment: datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def cavage_sign(
    private_pem: str,
    method: str,
    url: str,
    headers: dict[str, str],
    names: list[str],
    *,
    key_id: str = KEY_ID,
    algorithm: str | None = "rsa-sha256",
    created: int | None = None,
    expires: int | None = None,
    header_name: str = "Signature",
) -> dict[str, str]:
    """An independent draft-cavage signer, so tests can sign shapes sign_request never makes."""
    key = load_private_key(private_pem)
    path = url.split("://", 1)[1]
    target = path[path.index("/") :] if "/" in path else "/"
    lowered = {k.lower(): v for k, v in headers.items()}
    lines = []
    for name in names:
        if name == "(request-target)":
            lines.append(f"{name}: {method.lower()} {target}")
        elif name == "(created)":
            lines.append(f"{name}: {created}")
        elif name == "(expires)":
            lines.append(f"{name}: {expires}")
        else:
            lines.append(f"{name}: {lowered[name]}")
    data = "\n".join(lines).encode()
    rsa_args = (padding.PKCS1v15(), hashes.SHA256()) if isinstance(key, rsa.RSAPrivateKey) else ()
    raw = key.sign(data, *rsa_args)
    params = [f'keyId="{key_id}"']
    if algorithm is not None:
        params.append(f'algorithm="{algorithm}"')
    params.append(f'headers="{" ".join(names)}"')
    if created is not None:
        params.append(f"created={created}")
    if expires is not None:
        params.append(f"expires={expires}")
    params.append(f'signature="{b64(raw)}"')
    value = ",".join(params)
    if header_name.lower() == "authorization":
        value = "Signature " + value
    return {**headers, header_name: value}


def post_headers(body: bytes = BODY, *, date: datetime = NOW, digest: str | None = None) -> dict[str, str]:
    return {
        "Host": "kith.example",
        "Date": http_date(date),
        "Digest": digest if digest is not None else digest_header(body),
        "Content-Type": "application/activity+json",
    }


POST_NAMES = ["(request-target)", "host", "date", "digest", "content-type"]
GET_NAMES = ["(request-target)", "host", "date"]


async def verify(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes = b"",
    lookup: FakeLookup | None = None,
    *,
    authority: str | None = None,
) -> Verified:
    """verify_request at NOW, with ALICE's key unless ``lookup`` says otherwise."""
    return await verify_request(
        IncomingRequest(method=method, url=url, headers=headers, body=body),
        lookup if lookup is not None else FakeLookup(ALICE.public_pem),
        now=NOW,
        authority=authority,
    )


async def rejected(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes = b"",
    lookup: FakeLookup | None = None,
    *,
    authority: str | None = None,
) -> str:
    """The reason :func:`verify` refuses the request (the test fails if it is accepted)."""
    with pytest.raises(SignatureError) as info:
        await verify(method, url, headers, body, lookup, authority=authority)
    return info.value.reason


@dataclass
class LibMessage:
    method: str
    url: str
    headers: dict[str, str]


def rfc9421_sign(
    private_key: Any,
    method: str,
    url: str,
    body: bytes | None,
    *,
    algorithm: Any = algorithms.RSA_V1_5_SHA256,
    components: tuple[str, ...] = ("@method", "@target-uri", "@authority"),
    created: datetime = NOW,
    expires: datetime | None = None,
    include_alg: bool = True,
    key_id: str = KEY_ID,
    host: str | None = None,
) -> dict[str, str]:
    """The headers of a request signed with RFC 9421 (label ``sig1``); ``host`` overrides the Host header."""
    host = host if host is not None else url.split("/")[2]
    message = LibMessage(method, url, {"Host": host, "Content-Type": "application/activity+json"})
    signer = HTTPMessageSigner(
        signature_algorithm=algorithm,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: private_key}),
    )
    signer.sign(
        message,
        key_id=key_id,
        created=created,
        expires=expires,
        label="sig1",
        include_alg=include_alg,
        covered_component_ids=components,
        body=body,
    )
    return message.headers


RSA_KEY = load_private_key(ALICE.private_pem)


class StrictLookup(FakeLookup):
    """Knows only KEY_ID: in draft-cavage the keyId itself is not covered by the signature."""

    async def __call__(self, key_id: str, *, refresh: bool) -> ResolvedKey | None:
        return await super().__call__(key_id, refresh=refresh) if key_id == KEY_ID else None
