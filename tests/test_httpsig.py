"""HTTP signatures: Mastodon's golden vectors, round trips, key ids, captured peers, bovine.

Scheme-specific rejections live in test_httpsig_cavage.py and test_httpsig_rfc9421.py.
Fixtures come from tests/fixtures/ only (see tests/fixtures/README.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bovine.clients.utils import host_target_from_url
from bovine.crypto import build_validate_http_signature_raw
from bovine.crypto.helper import content_digest_sha256
from bovine.crypto.http_signature import build_signature
from bovine.crypto.types import CryptographicIdentifier, CryptographicSecret
from bovine.utils import get_gmt_now
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from server.federation.httpsig import (
    IncomingRequest,
    SignatureError,
    Verified,
    cavage,
    digest_header,
    sign_request,
    signature_key_id,
    verify_request,
)
from server.federation.keys import load_private_key, public_pem_of
from tests.signers import (
    ALICE,
    BODY,
    ED_PRIVATE_PEM,
    ED_PUBLIC_PEM,
    INBOX,
    KEY_ID,
    NOW,
    OTHER,
    OWNER,
    POST_NAMES,
    RSA_KEY,
    FakeLookup,
    StrictLookup,
    b64,
    cavage_sign,
    http_date,
    post_headers,
    rejected,
    rfc9421_sign,
    verify,
)

FIXTURES = Path(__file__).parent / "fixtures"
VECTORS = json.loads((FIXTURES / "signatures" / "mastodon-vectors.json").read_text())
BOB_PRIVATE_PEM = (FIXTURES / "signatures" / "mastodon_bob_private.pem").read_text()
BOB_PUBLIC_PEM = public_pem_of(load_private_key(BOB_PRIVATE_PEM))
MASTODON_CLOCK = datetime(2023, 12, 20, 10, 0, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------
# Mastodon's golden vectors

VECTOR_REASONS = {
    "unparsable date": "invalid date",
    "older than a day": "date outside window",
    "Digest is not among signed headers": "digest not signed",
}


def vector_request(case: dict[str, Any]) -> IncomingRequest:
    signature = (
        f'keyId="{VECTORS["keyId"]}",algorithm="rsa-sha256",'
        f'headers="{case["signed_headers"]}",signature="{case["signature"]}"'
    )
    return IncomingRequest(
        method=case["method"].upper(),
        url="https://www.example.com" + case["path"],
        headers={**case["headers"], "Signature": signature},
        body=case.get("body", "").encode(),
    )


def test_vector_source_is_the_stated_clock_and_key() -> None:
    assert "2023-12-20T10:00:00Z" in VECTORS["source"]
    assert "mastodon_bob_private.pem" in VECTORS["source"]
    assert len(VECTORS["cases"]) == 7


@pytest.mark.asyncio
@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
async def test_mastodon_vector(case: dict[str, Any]) -> None:
    lookup = FakeLookup(BOB_PUBLIC_PEM, owner="https://remote.domain/users/bob")
    req = vector_request(case)
    if case["expect"].startswith("valid"):
        result = await verify_request(req, lookup, now=MASTODON_CLOCK)
        assert result == Verified(
            key_id=VECTORS["keyId"], owner="https://remote.domain/users/bob", scheme="draft-cavage"
        )
        assert lookup.calls == [(VECTORS["keyId"], False)]
    else:
        with pytest.raises(SignatureError) as info:
            await verify_request(req, lookup, now=MASTODON_CLOCK)
        expected = next(reason for fragment, reason in VECTOR_REASONS.items() if fragment in case["name"])
        assert info.value.reason == expected
        # Refused before any key work.
        assert lookup.calls == []


def test_quirk_vector_only_verifies_without_the_query_string() -> None:
    """The quirk case really needs the query-less retry: the signature does not cover the query."""
    case = next(c for c in VECTORS["cases"] if c["expect"] == "valid-quirk")
    public = load_private_key(BOB_PRIVATE_PEM).public_key()
    signature = base64.b64decode(case["signature"])

    def signing_string(target: str) -> bytes:
        return f"date: {case['headers']['Date']}\nhost: www.example.com\n(request-target): get {target}".encode()

    public.verify(signature, signing_string("/activitypub/success"), padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        public.verify(signature, signing_string(case["path"]), padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.asyncio
async def test_query_quirk_does_not_allow_a_different_path() -> None:
    case = next(c for c in VECTORS["cases"] if c["expect"] == "valid-quirk")
    req = vector_request({**case, "path": "/activitypub/other?foo=42"})
    with pytest.raises(SignatureError) as info:
        await verify_request(req, FakeLookup(BOB_PUBLIC_PEM), now=MASTODON_CLOCK)
    assert info.value.reason == "signature mismatch"


# ---------------------------------------------------------------------------
# sign_request -> verify_request round trips


@pytest.mark.asyncio
async def test_round_trip_get_with_query() -> None:
    url = "https://kith.example/groups/g/outbox?page=2"
    added = sign_request("GET", url, {}, None, key_id=KEY_ID, private_key_pem=ALICE.private_pem, now=NOW)
    assert set(added) == {"Host", "Date", "Signature"}
    assert added["Host"] == "kith.example"
    assert added["Date"] == "Fri, 02 Jan 2026 03:04:05 GMT"
    assert 'headers="(request-target) host date"' in added["Signature"]
    assert 'algorithm="rsa-sha256"' in added["Signature"]
    result = await verify("GET", url, added)
    assert result == Verified(key_id=KEY_ID, owner=OWNER, scheme="draft-cavage")


@pytest.mark.asyncio
async def test_round_trip_post_signs_digest_and_content_type() -> None:
    headers = {"Content-Type": "application/activity+json"}
    added = sign_request("POST", INBOX, headers, BODY, key_id=KEY_ID, private_key_pem=ALICE.private_pem, now=NOW)
    assert added["Digest"] == "SHA-256=" + b64(hashlib.sha256(BODY).digest())
    assert 'headers="(request-target) host date digest content-type"' in added["Signature"]
    result = await verify("POST", INBOX, {**headers, **added}, BODY)
    assert result.owner == OWNER and result.scheme == "draft-cavage"


@pytest.mark.asyncio
async def test_round_trip_post_without_content_type_and_with_port() -> None:
    url = "http://localhost:8701/groups/g/inbox?x=1"
    added = sign_request("POST", url, {}, BODY, key_id=KEY_ID, private_key_pem=ALICE.private_pem, now=NOW)
    assert added["Host"] == "localhost:8701"
    assert 'headers="(request-target) host date digest"' in added["Signature"]
    assert (await verify("POST", url, added, BODY)).key_id == KEY_ID


@pytest.mark.asyncio
async def test_round_trip_ed25519_uses_hs2019() -> None:
    added = sign_request("POST", INBOX, {}, BODY, key_id=KEY_ID, private_key_pem=ED_PRIVATE_PEM, now=NOW)
    assert 'algorithm="hs2019"' in added["Signature"]
    assert (await verify("POST", INBOX, added, BODY, FakeLookup(ED_PUBLIC_PEM))).owner == OWNER


@pytest.mark.asyncio
async def test_sign_request_accepts_a_loaded_key() -> None:
    key = load_private_key(ALICE.private_pem)
    added = sign_request("GET", INBOX, {}, None, key_id=KEY_ID, private_key=key, now=NOW)
    assert (await verify("GET", INBOX, added)).owner == OWNER


def test_sign_request_needs_a_key() -> None:
    with pytest.raises(ValueError):
        sign_request("GET", INBOX, {}, None, key_id=KEY_ID)


def test_sign_request_default_clock_is_now() -> None:
    added = sign_request("GET", INBOX, {}, None, key_id=KEY_ID, private_key_pem=ALICE.private_pem)
    sent = datetime.strptime(added["Date"], "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - sent) < timedelta(seconds=5)


def test_digest_header() -> None:
    assert digest_header(b"Hello world") == "SHA-256=ZOyIygCyaOW6GjVnihtTFtIS9PNmskdyMlNKiuyjfzw="


@pytest.mark.asyncio
async def test_header_names_are_case_insensitive() -> None:
    added = sign_request("POST", INBOX, {}, BODY, key_id=KEY_ID, private_key_pem=ALICE.private_pem, now=NOW)
    shouty = {name.upper(): value for name, value in added.items()}
    assert (await verify("POST", INBOX, shouty, BODY)).owner == OWNER


# ---------------------------------------------------------------------------
# signature_key_id


def test_signature_key_id_shapes() -> None:
    cavage = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES)
    assert signature_key_id(cavage) == KEY_ID
    auth = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES, header_name="Authorization")
    assert signature_key_id({k.lower(): v for k, v in auth.items()}) == KEY_ID
    # No crypto: a garbled signature value still yields the key id (for domain blocks).
    garbled = {"Signature": 'keyId="https://blocked.example/k",signature="!!!"'}
    assert signature_key_id(garbled) == "https://blocked.example/k"
    rfc = {
        "Signature-Input": 'sig1=("@method");keyid="https://f.example/k";created=1',
        "Signature": "sig1=:AAAA:",
    }
    assert signature_key_id(rfc) == "https://f.example/k"
    assert signature_key_id({}) is None
    assert signature_key_id({"Signature": "garbage"}) is None
    assert signature_key_id({"Signature-Input": "((", "Signature": "sig1=:AAAA:"}) is None
    assert signature_key_id({"Authorization": "Bearer abc"}) is None


def test_signature_key_id_picks_the_label_that_will_be_verified() -> None:
    """A first label without a Signature member must not hide the key actually used."""
    headers = {
        "Signature-Input": 'a=("@method");keyid="https://good.example/k";created=1, '
        'b=("@method");keyid="https://blocked.example/k";created=1',
        "Signature": "b=:AAAA:",
    }
    assert signature_key_id(headers) == "https://blocked.example/k"


# ---------------------------------------------------------------------------
# Captured real peers (keys gone: parsing, policy, window and digest only)

CAPTURED = json.loads((FIXTURES / "captured" / "representative-inbox-posts.json").read_text())


def captured_body(entry: dict[str, Any]) -> bytes:
    """The body bytes: default json.dumps for the Python peers, compact for Fedify (checked by digest)."""
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    wanted = (headers.get("digest") or headers.get("content-digest") or "").split("=", 1)[-1].strip(":")
    for separators in ((", ", ": "), (",", ":")):
        body = json.dumps(entry["body"], separators=separators).encode()
        if b64(hashlib.sha256(body).digest()) == wanted:
            return body
    raise AssertionError(f"cannot reproduce the body of {entry['peer']}")


def captured_key_id(entry: dict[str, Any]) -> str | None:
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    if "signature-input" in headers:
        return re.search(r'keyid="([^"]+)"', headers["signature-input"]).group(1)  # type: ignore[union-attr]
    if m := re.match(r"ok keyId=(\S+)", entry["stub_verdict"]):
        return m.group(1)
    return None


def test_captured_peers_key_ids() -> None:
    seen = {entry["peer"]: signature_key_id(entry["headers"]) for entry in CAPTURED}
    for entry in CAPTURED:
        assert seen[entry["peer"]] == captured_key_id(entry), entry["peer"]
    assert seen["fedify-2.3.6-rfc9421-first-knock"] == "http://127.0.0.1:8702/users/alice#main-key"
    assert seen["apsig-0.6.0(apkit-0.3.8)"] == "http://127.0.0.1:8704/users/carol#main-key"
    assert sum(key is None for key in seen.values()) == 3


@pytest.mark.asyncio
@pytest.mark.parametrize("entry", [e for e in CAPTURED if captured_key_id(e)], ids=lambda e: e["peer"])
async def test_captured_peers_pass_every_check_before_the_key(entry: dict[str, Any]) -> None:
    """Real header shapes get through parsing, policy, window and digest; only the key is missing."""
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    req = IncomingRequest("POST", f"http://{headers['host']}{entry['path']}", entry["headers"], captured_body(entry))
    sent = datetime.strptime(headers["date"], "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    lookup = FakeLookup(cached=None)
    with pytest.raises(SignatureError) as info:
        await verify_request(req, lookup, now=sent)
    assert info.value.reason == "unknown key"
    assert lookup.calls == [(captured_key_id(entry), False)]
    # With some other key it reaches the crypto, fails, and refetches exactly once.
    lookup = FakeLookup(cached=ALICE.public_pem)
    with pytest.raises(SignatureError) as info:
        await verify_request(req, lookup, now=sent)
    assert info.value.reason == "signature mismatch"
    assert [refresh for _, refresh in lookup.calls] == [False, True]


@pytest.mark.asyncio
async def test_captured_unsigned_posts_are_refused() -> None:
    for entry in (e for e in CAPTURED if not captured_key_id(e)):
        req = IncomingRequest("POST", "http://127.0.0.1:8701" + entry["path"], entry["headers"], b"{}")
        with pytest.raises(SignatureError) as info:
            await verify_request(req, FakeLookup(ALICE.public_pem))
        assert info.value.reason == "missing signature"


# ---------------------------------------------------------------------------
# bovine as an independent implementation


@pytest.mark.asyncio
async def test_bovine_signed_post_verifies_with_ours() -> None:
    url = "https://kith.example/groups/g/inbox"
    host, target = host_target_from_url(url)
    helper = (
        build_signature(host, "post", target)
        .with_field("date", get_gmt_now())
        .with_field("digest", content_digest_sha256(BODY))
        .with_field("content-type", "application/activity+json")
    )
    header = helper.sign_for_http_draft(CryptographicSecret.from_pem(KEY_ID, ALICE.private_pem))
    headers = {**helper.headers, "signature": header}
    assert headers["digest"].startswith("sha-256=")  # bovine's lower-case digest
    result = await verify_request(IncomingRequest("POST", url, headers, BODY), FakeLookup(ALICE.public_pem))
    assert result == Verified(key_id=KEY_ID, owner=OWNER, scheme="draft-cavage")
    with pytest.raises(SignatureError):
        await verify_request(IncomingRequest("POST", url, headers, BODY + b"x"), FakeLookup(ALICE.public_pem))


@pytest.mark.asyncio
async def test_bovine_signed_get_verifies_with_ours() -> None:
    url = "https://kith.example/groups/g"
    host, target = host_target_from_url(url)
    helper = (
        build_signature(host, "get", target)
        .with_field("date", get_gmt_now())
        .with_field("accept", "application/activity+json")
    )
    header = helper.sign_for_http_draft(CryptographicSecret.from_pem(KEY_ID, ALICE.private_pem))
    headers = {**helper.headers, "signature": header}
    result = await verify_request(IncomingRequest("GET", url, headers, b""), FakeLookup(ALICE.public_pem))
    assert result.owner == OWNER


async def bovine_verify(method: str, url: str, headers: dict[str, str], body: bytes, public_pem: str) -> str | None:
    async def retrieve(key_id: str) -> CryptographicIdentifier:
        assert key_id == KEY_ID
        return CryptographicIdentifier.from_pem(public_pem, OWNER)

    async def get_body() -> bytes:
        return body

    validate = build_validate_http_signature_raw(retrieve)
    return await validate(method, url, {k.lower(): v for k, v in headers.items()}, get_body)


@pytest.mark.asyncio
async def test_ours_verifies_with_bovine() -> None:
    # bovine checks Date against the real clock (5 minutes), so sign with the real clock.
    post = sign_request(
        "POST",
        INBOX,
        {"Content-Type": "application/activity+json"},
        BODY,
        key_id=KEY_ID,
        private_key_pem=ALICE.private_pem,
    )
    post = {"Content-Type": "application/activity+json", **post}
    assert await bovine_verify("POST", INBOX, post, BODY, ALICE.public_pem) == OWNER
    assert await bovine_verify("POST", INBOX, post, BODY + b"x", ALICE.public_pem) is None
    assert await bovine_verify("POST", INBOX, post, BODY, OTHER.public_pem) is None
    get = sign_request("GET", INBOX, {}, None, key_id=KEY_ID, private_key_pem=ALICE.private_pem)
    assert await bovine_verify("GET", INBOX, get, b"", ALICE.public_pem) == OWNER


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["draft-cavage", "rfc9421"])
async def test_mutated_headers_only_ever_raise_signature_error(scheme: str) -> None:
    """Corrupt the signature headers one character at a time: always SignatureError, nothing else."""
    if scheme == "rfc9421":
        base = rfc9421_sign(RSA_KEY, "POST", INBOX, BODY)
        fields = ["Signature-Input", "Signature", "Content-Digest"]
    else:
        # No algorithm parameter: it is not signed, and a misspelt name would rightly read as absent.
        base = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES, algorithm=None)
        fields = ["Signature", "Digest", "Date"]
    reasons: set[str] = set()
    for field in fields:
        value = base[field]
        for index in range(0, len(value), 3):
            for replacement in ('"', ",", "=", ";", "(", ":", "\\", "é", ""):
                changed = value[:index] + replacement + value[index + 1 :]
                # Dropping base64 "=" padding leaves the same bytes (RFC 8941 parsers tolerate it).
                if changed == value or (value[index] == "=" and replacement == ""):
                    continue
                with pytest.raises(SignatureError) as info:
                    await verify("POST", INBOX, {**base, field: changed}, BODY, StrictLookup(ALICE.public_pem))
                reasons.add(info.value.reason)
    assert len(reasons) >= 3


# ---------------------------------------------------------------------------
# The parsed-signature cache (the inbox reads the key id, then verifies the same header)


@pytest.mark.asyncio
async def test_key_id_then_verify_gives_the_same_answers_as_verify_alone() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES)
    cavage.cached_signature.cache_clear()
    alone = await verify("POST", INBOX, headers, BODY)
    assert signature_key_id(headers) == KEY_ID
    assert await verify("POST", INBOX, headers, BODY) == alone
    assert cavage.cached_signature.cache_info().hits >= 2
    # The cache is keyed by the whole header: a tampered value is parsed afresh and fails.
    tampered = {**headers, "Signature": headers["Signature"].replace('signature="', 'signature="AAAA')}
    assert await rejected("POST", INBOX, tampered, BODY) == "signature mismatch"
    assert await verify("POST", INBOX, headers, BODY) == alone


@pytest.mark.asyncio
async def test_a_garbled_header_fails_every_time() -> None:
    headers = {"Host": "kith.example", "Date": http_date(NOW), "Signature": 'keyId="a",keyId="b",signature="c"'}
    for _ in range(3):
        assert signature_key_id(headers) is None
        assert await rejected("GET", INBOX, headers) == "malformed signature header"


@pytest.mark.asyncio
async def test_an_overlong_signature_header_is_parsed_without_the_cache() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES)
    headers["Signature"] += ',padding="' + "x" * 10_000 + '"'  # unknown parameters are ignored
    cavage.cached_signature.cache_clear()
    assert signature_key_id(headers) == KEY_ID
    assert (await verify("POST", INBOX, headers, BODY)).key_id == KEY_ID
    assert cavage.cached_signature.cache_info().currsize == 0
