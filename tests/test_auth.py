"""HttpSignatureAuth: requests sent through httpx verify with ours and with bovine's verifier."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
from bovine.crypto import build_validate_http_signature_raw
from bovine.crypto.types import CryptographicIdentifier

import server.federation.httpsig as httpsig
from server.federation.auth import HttpSignatureAuth
from server.federation.httpsig import IncomingRequest, ResolvedKey, SignatureError, common, verify_request
from server.federation.keys import KeyFormatError, generate_rsa_keypair

KEY_ID = "https://kith.example/actor#main-key"
OWNER = "https://kith.example/actor"
ALICE = generate_rsa_keypair()
OTHER = generate_rsa_keypair()
BODY = json.dumps({"type": "Follow", "actor": OWNER}).encode()


class Lookup:
    def __init__(self, pem: str) -> None:
        self.pem = pem
        self.calls: list[tuple[str, bool]] = []

    async def __call__(self, key_id: str, *, refresh: bool) -> ResolvedKey | None:
        self.calls.append((key_id, refresh))
        return ResolvedKey(key_id=key_id, owner=OWNER, public_key_pem=self.pem)


Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def ours(public_pem: str) -> tuple[Handler, list[httpx.Request]]:
    """A mock peer that verifies with verify_request; answers 200 with the owner, or 401."""
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        incoming = IncomingRequest(
            method=request.method, url=str(request.url), headers=request.headers, body=await request.aread()
        )
        try:
            verified = await verify_request(incoming, Lookup(public_pem))
        except SignatureError as exc:
            return httpx.Response(401, json={"error": exc.reason})
        return httpx.Response(200, json={"owner": verified.owner, "scheme": verified.scheme})

    return handler, seen


def bovines(public_pem: str) -> Handler:
    """A mock peer that verifies with bovine's draft-cavage checker."""

    async def retrieve(key_id: str) -> CryptographicIdentifier:
        return CryptographicIdentifier.from_pem(public_pem, OWNER)

    validate = build_validate_http_signature_raw(retrieve)

    async def handler(request: httpx.Request) -> httpx.Response:
        body = await request.aread()

        async def get_body() -> bytes:
            return body

        # bovine's (request-target) uses the path only, so compare without the query string.
        url = str(request.url.copy_with(query=None))
        headers = {k.lower(): v for k, v in request.headers.items()}
        owner = await validate(request.method, url, headers, get_body)
        return httpx.Response(200 if owner else 401, json={"owner": owner})

    return handler


def client(handler: Handler, private_pem: str = ALICE.private_pem) -> httpx.AsyncClient:
    return httpx.AsyncClient(auth=HttpSignatureAuth(KEY_ID, private_pem), transport=httpx.MockTransport(handler))


@pytest.mark.asyncio
async def test_get_verifies_with_ours() -> None:
    handler, seen = ours(ALICE.public_pem)
    async with client(handler) as http:
        response = await http.get("https://remote.example/users/bob?page=1")
    assert response.status_code == 200, response.text
    assert response.json() == {"owner": OWNER, "scheme": "draft-cavage"}
    sent = seen[0].headers
    assert "Digest" not in sent
    assert 'headers="(request-target) host date"' in sent["Signature"]
    date = datetime.strptime(sent["Date"], "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - date).total_seconds()) < 5


@pytest.mark.asyncio
async def test_post_verifies_with_ours() -> None:
    handler, seen = ours(ALICE.public_pem)
    async with client(handler) as http:
        response = await http.post(
            "https://remote.example/inbox",
            content=BODY,
            headers={"Content-Type": "application/activity+json"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["owner"] == OWNER
    sent = seen[0].headers
    assert sent["Digest"] == httpsig.digest_header(BODY)
    assert 'headers="(request-target) host date digest content-type"' in sent["Signature"]


@pytest.mark.asyncio
async def test_wrong_key_is_refused_by_ours() -> None:
    handler, _ = ours(OTHER.public_pem)
    async with client(handler) as http:
        response = await http.post("https://remote.example/inbox", content=BODY)
    assert response.status_code == 401
    assert response.json() == {"error": "signature mismatch"}


@pytest.mark.asyncio
async def test_get_and_post_verify_with_bovine() -> None:
    async with client(bovines(ALICE.public_pem)) as http:
        got = await http.get("https://remote.example/users/bob")
        posted = await http.post(
            "https://remote.example/inbox",
            content=BODY,
            headers={"Content-Type": "application/activity+json"},
        )
    assert got.status_code == 200 and got.json() == {"owner": OWNER}
    assert posted.status_code == 200 and posted.json() == {"owner": OWNER}


@pytest.mark.asyncio
async def test_bovine_refuses_a_wrong_key() -> None:
    async with client(bovines(OTHER.public_pem)) as http:
        response = await http.post("https://remote.example/inbox", content=BODY)
    assert response.status_code == 401


@pytest.mark.asyncio
async def test_each_send_is_signed_afresh() -> None:
    handler, seen = ours(ALICE.public_pem)
    async with client(handler) as http:
        first = await http.post("https://remote.example/inbox", content=BODY)
        second = await http.post("https://remote.example/other/inbox", content=b"{}")
    assert first.status_code == second.status_code == 200
    assert seen[0].headers["Signature"] != seen[1].headers["Signature"]
    assert seen[1].headers["Digest"] == httpsig.digest_header(b"{}")


@pytest.mark.asyncio
async def test_private_key_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    auth = HttpSignatureAuth(KEY_ID, ALICE.private_pem)
    parses: list[str] = []
    original = common.load_private_key

    def counting(pem: str) -> object:
        parses.append(pem)
        return original(pem)

    monkeypatch.setattr(common, "load_private_key", counting)
    common.cached_private_key.cache_clear()
    handler, _ = ours(ALICE.public_pem)
    async with httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(handler)) as http:
        for _ in range(3):
            assert (await http.post("https://remote.example/inbox", content=BODY)).status_code == 200
    assert parses == []


def test_bad_private_key_fails_at_construction() -> None:
    with pytest.raises(KeyFormatError):
        HttpSignatureAuth(KEY_ID, "not a pem")
