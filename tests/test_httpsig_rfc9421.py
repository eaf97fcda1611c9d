"""RFC 9421 verification, with requests signed by http-message-signatures."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

from server.federation.httpsig import Verified, rfc9421, signature_key_id
from server.federation.keys import load_private_key
from tests.signers import (
    ALICE,
    BODY,
    ED_PRIVATE,
    ED_PUBLIC_PEM,
    INBOX,
    KEY_ID,
    NOW,
    OTHER,
    OWNER,
    RSA_KEY,
    FakeLookup,
    LibMessage,
    StrictLookup,
    b64,
    rejected,
    rfc9421_sign,
    verify,
)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("algorithm", "private", "public"),
    [
        (algorithms.RSA_V1_5_SHA256, RSA_KEY, ALICE.public_pem),
        (algorithms.RSA_PSS_SHA512, RSA_KEY, ALICE.public_pem),
        (algorithms.ED25519, ED_PRIVATE, ED_PUBLIC_PEM),
    ],
    ids=["rsa-v1_5-sha256", "rsa-pss-sha512", "ed25519"],
)
async def test_rfc9421_post(algorithm: Any, private: Any, public: str) -> None:
    url = INBOX + "?x=1"
    headers = rfc9421_sign(private, "POST", url, BODY, algorithm=algorithm)
    assert headers["Content-Digest"].startswith("sha-256=:")
    assert f'alg="{algorithm.algorithm_id}"' in headers["Signature-Input"]
    result = await verify("POST", url, headers, BODY, FakeLookup(public))
    assert result == Verified(key_id=KEY_ID, owner=OWNER, scheme="rfc9421")


@pytest.mark.asyncio
@pytest.mark.parametrize(("private", "public"), [(RSA_KEY, ALICE.public_pem), (ED_PRIVATE, ED_PUBLIC_PEM)])
async def test_rfc9421_without_alg_uses_key_type(private: Any, public: str) -> None:
    algorithm = algorithms.ED25519 if public == ED_PUBLIC_PEM else algorithms.RSA_V1_5_SHA256
    headers = rfc9421_sign(private, "POST", INBOX, BODY, algorithm=algorithm, include_alg=False)
    assert "alg=" not in headers["Signature-Input"]
    assert (await verify("POST", INBOX, headers, BODY, FakeLookup(public))).scheme == "rfc9421"


@pytest.mark.asyncio
async def test_rfc9421_get_with_authority_and_path() -> None:
    headers = rfc9421_sign(RSA_KEY, "GET", INBOX, None, components=("@method", "@authority", "@path"))
    assert "Content-Digest" not in headers
    assert (await verify("GET", INBOX, headers)).scheme == "rfc9421"


@pytest.mark.asyncio
async def test_rfc9421_content_digest_mismatch() -> None:
    headers = rfc9421_sign(RSA_KEY, "POST", INBOX, BODY)
    lookup = FakeLookup(ALICE.public_pem)
    assert await rejected("POST", INBOX, headers, BODY + b" ", lookup) == "digest mismatch"
    assert lookup.calls == []


@pytest.mark.asyncio
async def test_rfc9421_sha512_content_digest() -> None:
    message = LibMessage(
        "POST",
        INBOX,
        {"Host": "kith.example", "Content-Digest": f"sha-512=:{b64(hashlib.sha512(BODY).digest())}:"},
    )
    HTTPMessageSigner(
        signature_algorithm=algorithms.RSA_V1_5_SHA256,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={KEY_ID: RSA_KEY}),
    ).sign(
        message,
        key_id=KEY_ID,
        created=NOW,
        label="sig1",
        covered_component_ids=("@method", "@target-uri", "content-digest"),
        use_existing_digest=True,
    )
    assert (await verify("POST", INBOX, message.headers, BODY)).scheme == "rfc9421"
    assert await rejected("POST", INBOX, message.headers, b"other") == "digest mismatch"


@pytest.mark.asyncio
async def test_rfc9421_expired() -> None:
    headers = rfc9421_sign(
        RSA_KEY, "POST", INBOX, BODY, created=NOW - timedelta(minutes=5), expires=NOW - timedelta(minutes=1)
    )
    lookup = FakeLookup(ALICE.public_pem)
    assert await rejected("POST", INBOX, headers, BODY, lookup) == "signature expired"
    assert lookup.calls == []


@pytest.mark.asyncio
@pytest.mark.parametrize("offset", [timedelta(hours=-2), timedelta(hours=2)], ids=["stale", "future"])
async def test_rfc9421_created_outside_window(offset: timedelta) -> None:
    headers = rfc9421_sign(RSA_KEY, "POST", INBOX, BODY, created=NOW + offset)
    assert await rejected("POST", INBOX, headers, BODY) == "created outside window"


@pytest.mark.asyncio
async def test_rfc9421_missing_created() -> None:
    headers = rfc9421_sign(RSA_KEY, "POST", INBOX, BODY)
    headers["Signature-Input"] = re.sub(r";created=\d+", "", headers["Signature-Input"])
    assert await rejected("POST", INBOX, headers, BODY) == "missing created"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("method", "body", "components", "reason"),
    [
        ("POST", BODY, ("@target-uri", "@authority"), "method not signed"),
        ("POST", BODY, ("@method", "@authority"), "target not signed"),
        ("GET", None, ("@method", "@path"), "target not signed"),
        ("POST", None, ("@method", "@target-uri"), "content-digest not signed"),
    ],
)
async def test_rfc9421_coverage_policy(
    method: str, body: bytes | None, components: tuple[str, ...], reason: str
) -> None:
    headers = rfc9421_sign(RSA_KEY, method, INBOX, body, components=components)
    assert await rejected(method, INBOX, headers, BODY if method == "POST" else b"") == reason


@pytest.mark.asyncio
async def test_rfc9421_wrong_key_and_rotation() -> None:
    headers = rfc9421_sign(RSA_KEY, "POST", INBOX, BODY)
    lookup = FakeLookup(cached=OTHER.public_pem)
    assert await rejected("POST", INBOX, headers, BODY, lookup) == "signature mismatch"
    assert [refresh for _, refresh in lookup.calls] == [False, True]
    lookup = FakeLookup(cached=OTHER.public_pem, refreshed=ALICE.public_pem)
    assert (await verify("POST", INBOX, headers, BODY, lookup)).owner == OWNER
    assert lookup.calls == [(KEY_ID, False), (KEY_ID, True)]


@pytest.mark.asyncio
async def test_rfc9421_tampered_url() -> None:
    headers = rfc9421_sign(RSA_KEY, "POST", INBOX, BODY)
    assert await rejected("POST", INBOX + "?evil=1", headers, BODY) == "signature mismatch"


@pytest.mark.asyncio
async def test_rfc9421_key_type_mismatch() -> None:
    headers = rfc9421_sign(RSA_KEY, "POST", INBOX, BODY)
    reason = await rejected("POST", INBOX, headers, BODY, FakeLookup(ED_PUBLIC_PEM))
    assert reason == "algorithm does not match key"


@pytest.mark.asyncio
async def test_rfc9421_unsupported_alg() -> None:
    headers = rfc9421_sign(RSA_KEY, "POST", INBOX, BODY)
    headers["Signature-Input"] = headers["Signature-Input"].replace('alg="rsa-v1_5-sha256"', 'alg="hmac-sha256"')
    assert await rejected("POST", INBOX, headers, BODY) == "unsupported algorithm"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("signature_input", "signature"),
    [
        ("((", "sig1=:AAAA:"),
        ('sig1=("@method");keyid="k";created=1', "sig1=notbytes"),
        ('sig1=("@method");keyid="k";created=1', "other=:AAAA:"),
        ('sig1="@method";keyid="k";created=1', "sig1=:AAAA:"),
        ("sig1=(@method);created=1", "sig1=:AAAA:"),
        ('sig1=("@method" "@target-uri");created=1', "sig1=:AAAA:"),
        ('sig1=("@method" "@target-uri");keyid="k";created="x"', "sig1=:AAAA:"),
        ('sig1=("@method" "@target-uri" 1);keyid="k";created=1', "sig1=:AAAA:"),
        ('sig1=("@method" "@target-uri");keyid="k";created=1;expires="x"', "sig1=:AAAA:"),
        ('sig1=("@method" "@target-uri");keyid="k";created=99999999999999', "sig1=:AAAA:"),
        ('sig1=("@méthod");keyid="k";created=1', "sig1=:AAAA:"),
    ],
)
async def test_rfc9421_malformed_headers(signature_input: str, signature: str) -> None:
    headers = {"Host": "kith.example", "Signature-Input": signature_input, "Signature": signature}
    await rejected("GET", INBOX, headers)


@pytest.mark.asyncio
async def test_rfc9421_bad_component_is_a_signature_error() -> None:
    """Components the library cannot resolve become SignatureError, not library exceptions."""
    headers = rfc9421_sign(RSA_KEY, "GET", INBOX, None, components=("@method", "@target-uri", "content-type"))
    del headers["Content-Type"]
    assert await rejected("GET", INBOX, headers) == "invalid signature input"


@pytest.mark.asyncio
async def test_rfc9421_picks_first_label_with_a_signature() -> None:
    signed = rfc9421_sign(RSA_KEY, "POST", INBOX, BODY)
    headers = {
        **signed,
        "Signature-Input": 'zero=("@method");keyid="https://other.example/k";created=1, ' + signed["Signature-Input"],
    }
    assert signature_key_id(headers) == KEY_ID
    assert (await verify("POST", INBOX, headers, BODY)).key_id == KEY_ID


# ---------------------------------------------------------------------------
# Several labels: the first that covers what is required and verifies wins (RFC 9421 4.3)

GONE_KEY_ID = "https://gone.example/users/x#main-key"
FULL = ("@method", "@target-uri", "content-digest")


def add_label(
    headers: dict[str, str],
    label: str,
    *,
    private_key: Any = RSA_KEY,
    key_id: str = KEY_ID,
    components: tuple[str, ...] = FULL,
    created: datetime = NOW,
) -> dict[str, str]:
    """``headers`` of a POST of BODY to INBOX with one more label appended, signed by the library."""
    message = LibMessage("POST", INBOX, {"Host": "kith.example", **headers})
    HTTPMessageSigner(
        signature_algorithm=algorithms.RSA_V1_5_SHA256,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: private_key}),
    ).sign(
        message,
        key_id=key_id,
        created=created,
        label=label,
        covered_component_ids=components,
        body=BODY,
        use_existing_digest=True,
        append_if_signature_exists=True,
    )
    return message.headers


def unparsable_label(headers: dict[str, str], label: str) -> dict[str, str]:
    """``headers`` with a label whose input has no keyid appended."""
    return {
        **headers,
        "Signature-Input": ", ".join(
            [*filter(None, [headers.get("Signature-Input")]), f'{label}=("@method" "@target-uri");created=1']
        ),
        "Signature": ", ".join([*filter(None, [headers.get("Signature")]), f"{label}=:AAAA:"]),
    }


BOGUS_FIRST_LABELS = {
    "covers too little": lambda h: add_label(h, "bogus", components=("@method",)),
    "signed by another key": lambda h: add_label(h, "bogus", private_key=load_private_key(OTHER.private_pem)),
    "unknown key": lambda h: add_label(h, "bogus", private_key=load_private_key(OTHER.private_pem), key_id=GONE_KEY_ID),
    "stale": lambda h: add_label(h, "bogus", created=NOW - timedelta(hours=3)),
    "unparsable": lambda h: unparsable_label(h, "bogus"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("bogus", BOGUS_FIRST_LABELS.values(), ids=BOGUS_FIRST_LABELS.keys())
async def test_rfc9421_a_bogus_first_label_does_not_hide_a_valid_one(bogus: Callable[[dict], dict]) -> None:
    headers = add_label(bogus({}), "good")
    assert headers["Signature-Input"].startswith("bogus=")
    assert headers["Signature-Input"].count("=(") == 2
    result = await verify("POST", INBOX, headers, BODY, StrictLookup(ALICE.public_pem))
    assert result == Verified(key_id=KEY_ID, owner=OWNER, scheme="rfc9421")


@pytest.mark.asyncio
async def test_rfc9421_no_label_verifies_gives_the_first_labels_reason() -> None:
    too_little = add_label({}, "a", components=("@method",))
    headers = add_label(too_little, "b", private_key=load_private_key(OTHER.private_pem))
    lookup = FakeLookup(ALICE.public_pem)
    assert await rejected("POST", INBOX, headers, BODY, lookup) == "target not signed"
    # Only the label that passed every check before the key cost a lookup (and one refetch).
    assert lookup.calls == [(KEY_ID, False), (KEY_ID, True)]


@pytest.mark.asyncio
async def test_rfc9421_labels_tried_are_bounded() -> None:
    headers: dict[str, str] = {}
    for index in range(rfc9421.MAX_LABELS - 1):
        headers = add_label(headers, f"bogus{index}", components=("@method",))
    assert (await verify("POST", INBOX, add_label(headers, "good"), BODY)).key_id == KEY_ID
    headers = add_label(headers, "onetoomany", components=("@method",))
    assert await rejected("POST", INBOX, add_label(headers, "good"), BODY) == "target not signed"


@pytest.mark.asyncio
@pytest.mark.parametrize("components", [("@method", "@authority", "@path"), ("@method", "@target-uri")])
async def test_rfc9421_signed_for_another_server(components: tuple[str, ...]) -> None:
    elsewhere = "https://other.example/groups/g/inbox"
    headers = rfc9421_sign(RSA_KEY, "POST", elsewhere, BODY, components=components)
    assert (await verify("POST", elsewhere, headers, BODY, authority="other.example")).owner == OWNER
    lookup = FakeLookup(ALICE.public_pem)
    reason = await rejected("POST", elsewhere, headers, BODY, lookup, authority="kith.example")
    assert reason == "signed for another host"
    assert lookup.calls == []
    ours = rfc9421_sign(RSA_KEY, "POST", INBOX, BODY, components=components)
    assert (await verify("POST", INBOX, ours, BODY, authority="kith.example")).owner == OWNER


@pytest.mark.asyncio
async def test_rfc9421_covered_host_field_must_name_this_server() -> None:
    """A Host field covered as such is held to this server too (the URL here names us)."""
    components = ("@method", "@target-uri", "host")
    headers = rfc9421_sign(RSA_KEY, "POST", INBOX, BODY, components=components, host="other.example")
    assert (await verify("POST", INBOX, headers, BODY)).owner == OWNER
    assert await rejected("POST", INBOX, headers, BODY, authority="kith.example") == "signed for another host"
    ours = rfc9421_sign(RSA_KEY, "POST", INBOX, BODY, components=components)
    assert (await verify("POST", INBOX, ours, BODY, authority="kith.example")).owner == OWNER


@pytest.mark.asyncio
async def test_rfc9421_key_id_then_verify() -> None:
    headers = {
        "Signature-Input": 'sig1=("@method");keyid="https://f.example/k";created=1',
        "Signature": "sig1=:AAAA:",
    }
    rfc9421.cached_signatures.cache_clear()
    assert signature_key_id(headers) == signature_key_id(headers) == "https://f.example/k"
    assert rfc9421.cached_signatures.cache_info().hits == 1
    assert signature_key_id({"Signature-Input": headers["Signature-Input"], "Signature": "x=:AAAA:"}) is None
