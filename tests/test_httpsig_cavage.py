"""draft-cavage verification: every rejection, the variants peers send, the header parser."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from server.federation.httpsig import IncomingRequest, SignatureError, cavage, sign_request, verify_request
from server.federation.keys import load_private_key
from tests.signers import (
    ALICE,
    BODY,
    ED_PRIVATE_PEM,
    ED_PUBLIC_PEM,
    GET_NAMES,
    INBOX,
    KEY_ID,
    NOW,
    OTHER,
    OWNER,
    POST_NAMES,
    FakeLookup,
    b64,
    cavage_sign,
    http_date,
    post_headers,
    rejected,
    verify,
)

# ---------------------------------------------------------------------------
# draft-cavage rejections and accepted variants


@pytest.mark.asyncio
async def test_wrong_digest_is_rejected_without_key_lookup() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(b"other body"), POST_NAMES)
    lookup = FakeLookup(ALICE.public_pem)
    assert await rejected("POST", INBOX, headers, BODY, lookup) == "digest mismatch"
    assert lookup.calls == []


@pytest.mark.asyncio
async def test_digest_not_signed_on_post() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), ["(request-target)", "host", "date"])
    assert await rejected("POST", INBOX, headers, BODY) == "digest not signed"


@pytest.mark.asyncio
async def test_host_not_signed_on_get() -> None:
    headers = cavage_sign(
        ALICE.private_pem,
        "GET",
        INBOX,
        {"Host": "kith.example", "Date": http_date(NOW)},
        ["(request-target)", "date"],
    )
    assert await rejected("GET", INBOX, headers) == "host not signed"


@pytest.mark.asyncio
async def test_request_target_not_signed() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), ["host", "date", "digest"])
    assert await rejected("POST", INBOX, headers, BODY) == "request-target not signed"


@pytest.mark.asyncio
@pytest.mark.parametrize("offset", [timedelta(hours=-2), timedelta(hours=2)], ids=["stale", "future"])
async def test_date_outside_window(offset: timedelta) -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(date=NOW + offset), POST_NAMES)
    lookup = FakeLookup(ALICE.public_pem)
    assert await rejected("POST", INBOX, headers, BODY, lookup) == "date outside window"
    assert lookup.calls == []


@pytest.mark.asyncio
@pytest.mark.parametrize("offset", [timedelta(minutes=-59), timedelta(minutes=59)], ids=["past", "future"])
async def test_date_inside_window(offset: timedelta) -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(date=NOW + offset), POST_NAMES)
    assert (await verify("POST", INBOX, headers, BODY)).owner == OWNER


@pytest.mark.asyncio
async def test_max_skew_is_configurable() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(date=NOW - timedelta(hours=5)), POST_NAMES)
    req = IncomingRequest("POST", INBOX, headers, BODY)
    with pytest.raises(SignatureError):
        await verify_request(req, FakeLookup(ALICE.public_pem), now=NOW)
    result = await verify_request(req, FakeLookup(ALICE.public_pem), now=NOW, max_skew=timedelta(hours=12))
    assert result.owner == OWNER


@pytest.mark.asyncio
async def test_rfc850_and_asctime_dates_are_accepted() -> None:
    for date in ("Friday, 02-Jan-26 03:04:05 GMT", "Fri Jan  2 03:04:05 2026"):
        headers = cavage_sign(ALICE.private_pem, "GET", INBOX, {"Host": "kith.example", "Date": date}, GET_NAMES)
        assert (await verify("GET", INBOX, headers)).owner == OWNER


@pytest.mark.asyncio
async def test_created_instead_of_date() -> None:
    created = int(NOW.timestamp()) - 30
    headers = cavage_sign(
        ALICE.private_pem,
        "GET",
        INBOX,
        {"Host": "kith.example"},
        ["(request-target)", "host", "(created)"],
        algorithm="hs2019",
        created=created,
    )
    assert (await verify("GET", INBOX, headers)).owner == OWNER


@pytest.mark.asyncio
async def test_created_outside_window() -> None:
    created = int((NOW - timedelta(hours=3)).timestamp())
    headers = cavage_sign(
        ALICE.private_pem,
        "GET",
        INBOX,
        {"Host": "kith.example"},
        ["(request-target)", "host", "(created)"],
        algorithm="hs2019",
        created=created,
    )
    assert await rejected("GET", INBOX, headers) == "created outside window"


@pytest.mark.asyncio
async def test_expired_signature() -> None:
    created = int(NOW.timestamp()) - 60
    headers = cavage_sign(
        ALICE.private_pem,
        "GET",
        INBOX,
        {"Host": "kith.example"},
        ["(request-target)", "host", "(created)", "(expires)"],
        algorithm="hs2019",
        created=created,
        expires=created + 30,
    )
    lookup = FakeLookup(ALICE.public_pem)
    assert await rejected("GET", INBOX, headers, lookup=lookup) == "signature expired"
    assert lookup.calls == []


@pytest.mark.asyncio
async def test_unexpired_signature() -> None:
    created = int(NOW.timestamp()) - 60
    headers = cavage_sign(
        ALICE.private_pem,
        "GET",
        INBOX,
        {"Host": "kith.example"},
        ["(request-target)", "host", "(created)", "(expires)"],
        algorithm="hs2019",
        created=created,
        expires=created + 600,
    )
    assert (await verify("GET", INBOX, headers)).owner == OWNER


@pytest.mark.asyncio
async def test_no_date_and_no_created() -> None:
    headers = cavage_sign(ALICE.private_pem, "GET", INBOX, {"Host": "kith.example"}, ["(request-target)", "host"])
    assert await rejected("GET", INBOX, headers) == "date not signed"


@pytest.mark.asyncio
async def test_headers_param_defaults_to_date_only() -> None:
    headers = {"Host": "kith.example", "Date": http_date(NOW)}
    signed = cavage_sign(ALICE.private_pem, "GET", INBOX, headers, ["date"])
    # Drop headers="date": the spec default, which then covers too little for us.
    signed["Signature"] = re.sub(r'headers="[^"]*",', "", signed["Signature"])
    assert "headers=" not in signed["Signature"]
    assert await rejected("GET", INBOX, signed) == "request-target not signed"


@pytest.mark.asyncio
@pytest.mark.parametrize("algorithm", ["rsa-sha512", "hmac-sha256", "ecdsa-sha256"])
async def test_unknown_algorithm(algorithm: str) -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES, algorithm=algorithm)
    assert await rejected("POST", INBOX, headers, BODY) == "unsupported algorithm"


@pytest.mark.asyncio
@pytest.mark.parametrize("algorithm", [None, "hs2019", "RSA-SHA256"])
async def test_absent_hs2019_and_uppercase_algorithms_work_with_rsa(algorithm: str | None) -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES, algorithm=algorithm)
    assert (await verify("POST", INBOX, headers, BODY)).owner == OWNER


@pytest.mark.asyncio
async def test_ed25519_key_with_rsa_sha256_is_refused() -> None:
    headers = cavage_sign(ED_PRIVATE_PEM, "POST", INBOX, post_headers(), POST_NAMES, algorithm="rsa-sha256")
    assert await rejected("POST", INBOX, headers, BODY, FakeLookup(ED_PUBLIC_PEM)) == "algorithm does not match key"


@pytest.mark.asyncio
async def test_garbled_signature_base64() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES)
    headers["Signature"] = re.sub(r'signature="[^"]*"', 'signature="%%%not base64!!"', headers["Signature"])
    lookup = FakeLookup(ALICE.public_pem)
    assert await rejected("POST", INBOX, headers, BODY, lookup) == "malformed signature"
    assert lookup.calls == []


@pytest.mark.asyncio
async def test_wrong_signature_bytes() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES)
    headers["Signature"] = re.sub(r'signature="[^"]*"', f'signature="{b64(b"x" * 256)}"', headers["Signature"])
    assert await rejected("POST", INBOX, headers, BODY) == "signature mismatch"


@pytest.mark.asyncio
async def test_missing_signature_header() -> None:
    assert await rejected("POST", INBOX, post_headers(), BODY) == "missing signature"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        'keyId="unterminated',
        "keyId=,signature=",
        'keyId="a",,signature="b"',
        'keyId="a" signature="b"',
        'keyId="a",keyId="b",signature="c"',
        'signature="abcd"',
        'keyId="https://x/k",headers="(request-target) host date",signature="AAAA",created=soon',
        'keyId="https://x/k",headers="(request-target) host date",signature="AAAA",expires=99999999999999999',
        "\x00\x01\x02",
    ],
)
async def test_garbled_signature_header(value: str) -> None:
    headers = {"Host": "kith.example", "Date": http_date(NOW), "Signature": value}
    await rejected("GET", INBOX, headers)


@pytest.mark.asyncio
async def test_missing_signed_header() -> None:
    headers = cavage_sign(
        ALICE.private_pem,
        "GET",
        INBOX,
        {"Host": "kith.example", "Date": http_date(NOW), "Accept": "application/activity+json"},
        [*GET_NAMES, "accept"],
    )
    del headers["Accept"]
    assert await rejected("GET", INBOX, headers) == "missing signed header"


@pytest.mark.asyncio
async def test_lowercase_digest_is_accepted() -> None:
    digest = "sha-256=" + b64(hashlib.sha256(BODY).digest())
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(digest=digest), POST_NAMES)
    assert (await verify("POST", INBOX, headers, BODY)).owner == OWNER


@pytest.mark.asyncio
async def test_sha512_and_multiple_digests() -> None:
    sha256 = "SHA-256=" + b64(hashlib.sha256(BODY).digest())
    sha512 = "SHA-512=" + b64(hashlib.sha512(BODY).digest())
    bad512 = "SHA-512=" + b64(hashlib.sha512(b"nope").digest())
    for digest in (sha512, f"{sha256}, {sha512}", f"MD5=AAAA,{sha256}"):
        headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(digest=digest), POST_NAMES)
        assert (await verify("POST", INBOX, headers, BODY)).owner == OWNER, digest
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(digest=f"{sha256},{bad512}"), POST_NAMES)
    assert await rejected("POST", INBOX, headers, BODY) == "digest mismatch"
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(digest="MD5=AAAA"), POST_NAMES)
    assert await rejected("POST", INBOX, headers, BODY) == "unsupported digest algorithm"


@pytest.mark.asyncio
async def test_pkcs1_public_key_is_accepted() -> None:
    public = load_private_key(ALICE.private_pem).public_key()
    pkcs1 = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()
    assert "BEGIN RSA PUBLIC KEY" in pkcs1
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES)
    assert (await verify("POST", INBOX, headers, BODY, FakeLookup(pkcs1))).owner == OWNER


@pytest.mark.asyncio
async def test_authorization_signature_header_as_apsig_sends() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES, header_name="Authorization")
    assert "Signature" not in headers
    assert (await verify("POST", INBOX, headers, BODY)).owner == OWNER


@pytest.mark.asyncio
async def test_tampered_path_or_header_fails() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES)
    assert await rejected("POST", "https://kith.example/groups/other/inbox", headers, BODY) == "signature mismatch"
    tampered = {**headers, "Content-Type": "text/plain"}
    assert await rejected("POST", INBOX, tampered, BODY) == "signature mismatch"


@pytest.mark.asyncio
async def test_key_rotation_refetches_once() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES)
    lookup = FakeLookup(cached=OTHER.public_pem, refreshed=ALICE.public_pem)
    assert (await verify("POST", INBOX, headers, BODY, lookup)).owner == OWNER
    assert lookup.calls == [(KEY_ID, False), (KEY_ID, True)]


@pytest.mark.asyncio
async def test_key_rotation_gives_up_after_one_refetch() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES)
    lookup = FakeLookup(cached=OTHER.public_pem)
    assert await rejected("POST", INBOX, headers, BODY, lookup) == "signature mismatch"
    assert lookup.calls == [(KEY_ID, False), (KEY_ID, True)]


@pytest.mark.asyncio
async def test_unusable_cached_key_is_refetched() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES)
    lookup = FakeLookup(cached="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", refreshed="garbage")
    assert await rejected("POST", INBOX, headers, BODY, lookup) == "unusable key"
    assert [refresh for _, refresh in lookup.calls] == [False, True]


@pytest.mark.asyncio
async def test_no_refetch_on_digest_mismatch_or_stale_date() -> None:
    lookup = FakeLookup(cached=OTHER.public_pem, refreshed=ALICE.public_pem)
    bad_digest = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(b"x"), POST_NAMES)
    assert await rejected("POST", INBOX, bad_digest, BODY, lookup) == "digest mismatch"
    stale = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(date=NOW - timedelta(days=1)), POST_NAMES)
    assert await rejected("POST", INBOX, stale, BODY, lookup) == "date outside window"
    assert all(not refresh for _, refresh in lookup.calls)


@pytest.mark.asyncio
async def test_unknown_key() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES)
    lookup = FakeLookup(cached=None)
    assert await rejected("POST", INBOX, headers, BODY, lookup) == "unknown key"
    assert lookup.calls == [(KEY_ID, False)]


@pytest.mark.asyncio
async def test_owner_comes_from_the_lookup() -> None:
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES)
    result = await verify("POST", INBOX, headers, BODY, FakeLookup(ALICE.public_pem, owner="https://x/actor"))
    assert result.owner == "https://x/actor"


@pytest.mark.asyncio
async def test_unsigned_created_param_is_ignored() -> None:
    stale = int((NOW - timedelta(days=3)).timestamp())
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES, created=stale)
    assert "created=" in headers["Signature"]
    assert (await verify("POST", INBOX, headers, BODY)).owner == OWNER


# ---------------------------------------------------------------------------
# A signed host must name this server when the caller says which that is

ELSEWHERE = "https://other.example/groups/g/inbox"


@pytest.mark.asyncio
async def test_a_request_signed_for_another_server_is_refused_before_the_key() -> None:
    """A request alice's server really sent to other.example, replayed to us with its own Host."""
    headers = sign_request("POST", ELSEWHERE, {}, BODY, key_id=KEY_ID, private_key_pem=ALICE.private_pem, now=NOW)
    assert headers["Host"] == "other.example"
    # The signature itself is sound: without an authority to hold it to, it verifies.
    assert (await verify("POST", INBOX, headers, BODY)).owner == OWNER
    lookup = FakeLookup(ALICE.public_pem)
    assert await rejected("POST", INBOX, headers, BODY, lookup, authority="kith.example") == "signed for another host"
    assert lookup.calls == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("signed", "ours"),
    [
        ("kith.example", "kith.example"),
        ("Kith.Example", "kith.example"),
        ("kith.example:443", "kith.example"),
        ("kith.example", "kith.example:443"),
        ("kith.example:8443", "kith.example:8443"),
    ],
)
async def test_a_signed_host_naming_this_server_is_accepted(signed: str, ours: str) -> None:
    headers = sign_request(
        "POST", INBOX, {"Host": signed}, BODY, key_id=KEY_ID, private_key_pem=ALICE.private_pem, now=NOW
    )
    assert headers["Host"] == signed
    assert (await verify("POST", INBOX, headers, BODY, authority=ours)).owner == OWNER


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("signed", "ours"),
    [
        ("other.example", "kith.example"),
        ("kith.example:8443", "kith.example"),
        ("kith.example", "kith.example:8443"),
        ("kith.example.other.example", "kith.example"),
        ("kith.example:80", "kith.example"),
    ],
)
async def test_a_signed_host_naming_another_server_is_refused(signed: str, ours: str) -> None:
    headers = sign_request(
        "POST", INBOX, {"Host": signed}, BODY, key_id=KEY_ID, private_key_pem=ALICE.private_pem, now=NOW
    )
    assert await rejected("POST", INBOX, headers, BODY, authority=ours) == "signed for another host"


@pytest.mark.asyncio
async def test_without_a_host_header_the_signed_host_is_the_urls() -> None:
    """HTTP/2 carries :authority, not Host: the URL's authority is what was signed."""
    for url, verdict in ((INBOX, None), (ELSEWHERE, "signed for another host")):
        headers = sign_request("GET", url, {}, None, key_id=KEY_ID, private_key_pem=ALICE.private_pem, now=NOW)
        del headers["Host"]
        if verdict is None:
            assert (await verify("GET", url, headers, authority="kith.example")).owner == OWNER
        else:
            assert await rejected("GET", url, headers, authority="kith.example") == verdict


@pytest.mark.asyncio
async def test_a_post_that_does_not_sign_host_is_not_held_to_one() -> None:
    """Mastodon does not require host on a POST; the check applies to a signed host only."""
    names = [name for name in POST_NAMES if name != "host"]
    headers = cavage_sign(ALICE.private_pem, "POST", INBOX, {**post_headers(), "Host": "other.example"}, names)
    assert (await verify("POST", INBOX, headers, BODY, authority="kith.example")).owner == OWNER


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('keyId="a\\"b",signature="c"', {"keyid": 'a"b', "signature": "c"}),
        ('keyId="a\\\\",signature="c"', {"keyid": "a\\", "signature": "c"}),
        ('keyId="",signature=c', {"keyid": "", "signature": "c"}),
        (' keyId = "a" , signature="' + "A" * 400 + '"', {"keyid": "a", "signature": "A" * 400}),
    ],
)
def test_cavage_params_quoting(value: str, expected: dict[str, str]) -> None:
    assert cavage.parse_params(value) == expected


@pytest.mark.parametrize("value", ['keyId="a\\"', 'keyId="a', 'keyId="a"b', 'keyId="a"signature="b"'])
def test_cavage_params_refuses_unterminated_quotes(value: str) -> None:
    with pytest.raises(SignatureError):
        cavage.parse_params(value)
