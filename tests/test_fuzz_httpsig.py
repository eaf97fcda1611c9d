"""Property-based fuzzing of HTTP signature verification (issue 12).

Whatever a peer puts in ``Signature``, ``Signature-Input``, ``Authorization``, ``Date``,
``Digest``, ``Content-Digest`` and ``Host``, ``verify_request`` accepts it or raises
``SignatureError`` (which the inbox answers with a 401); ``signature_key_id`` returns a
key id or None. A correctly signed request stays verified, and any change to a signed
part of it is caught.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.federation.httpsig import SignatureError, Verified, digest_header, signature_key_id
from server.federation.httpsig.dates import parse_http_date, timestamp
from server.federation.httpsig.digest import check_content_digest, check_digest
from tests.signers import (
    ALICE,
    BODY,
    INBOX,
    KEY_ID,
    NOW,
    OWNER,
    POST_NAMES,
    RSA_KEY,
    b64,
    cavage_sign,
    http_date,
    post_headers,
    rfc9421_sign,
    verify,
)

PURE = settings(max_examples=150, deadline=None)
# Each example with a plausible signature may reach the RSA check: fewer of those.
CRYPTO = settings(max_examples=100, deadline=None)

# What an HTTP server hands over: header bytes read as latin-1.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60)
tokens = st.sampled_from(
    ["(request-target)", "(created)", "(expires)", "host", "date", "digest", "content-type", "@method",
     "@target-uri", "@authority", "@path", "content-digest", "", "x"]
)  # fmt: skip
numbers = st.integers(min_value=-(2**70), max_value=2**70).map(str) | st.sampled_from(["1.5", "1e9", "٣", "", "-0"])
quoted = header_text.map(lambda t: '"' + t.replace('"', "") + '"') | header_text
cavage_params = st.lists(
    st.tuples(
        st.sampled_from(["keyId", "keyid", "headers", "signature", "algorithm", "created", "expires", "x", "a b"]),
        quoted | st.lists(tokens, max_size=5).map(lambda ns: '"' + " ".join(ns) + '"') | numbers,
    ),
    max_size=7,
).map(lambda pairs: ",".join(f"{k}={v}" for k, v in pairs))
sf_inner = st.lists(tokens.map(lambda t: f'"{t}"') | header_text.map(lambda t: t[:5]), max_size=5).map(
    lambda items: "(" + " ".join(items) + ")"
)
sf_params = st.lists(
    st.tuples(
        st.sampled_from(["keyid", "alg", "created", "expires", "nonce", "tag", "X"]),
        numbers | quoted | st.sampled_from(["?1", "?0", ":AAAA:", "1.5", "rsa-v1_5-sha256", "ed25519", '"ed25519"']),
    ),
    max_size=5,
).map(lambda pairs: "".join(f";{k}={v}" for k, v in pairs))
labels = st.sampled_from(["sig1", "sig2", "Sig", "a" * 70, "*"])
signature_input = st.lists(
    st.builds(lambda lab, inner, params: f"{lab}={inner}{params}", labels, sf_inner, sf_params), max_size=7
).map(", ".join)
signature_sf = st.lists(
    st.builds(
        lambda lab, value: f"{lab}={value}",
        labels,
        st.sampled_from([":AAAA:", ":" + "A" * 344 + ":", "1", '"x"', "::", ":*:"]),
    ),
    max_size=7,
).map(", ".join)
digests = st.lists(
    st.builds(
        lambda name, value: f"{name}={value}",
        st.sampled_from(["SHA-256", "sha-256", "SHA-512", "md5", "", "sha-256 "]),
        st.sampled_from([digest_header(BODY)[8:], ":" + digest_header(BODY)[8:] + ":", "AAAA", "!!", ""]) | header_text,
    ),
    max_size=3,
).map(", ".join)
dates = (
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")
    )
    | st.sampled_from(
        [
            "Fri, 02 Jan 2026 03:04:05 GMT",
            "Friday, 02-Jan-26 03:04:05 GMT",
            "Fri Jan  2 03:04:05 2026",
            "Fri, 31 Feb 2026 00:00:00 GMT",
        ]
    )
    | header_text
)

headers_strategy = st.fixed_dictionaries(
    {},
    optional={
        "Signature": cavage_params | signature_sf | header_text,
        "Signature-Input": signature_input | header_text,
        "Authorization": cavage_params.map(lambda v: "Signature " + v) | header_text,
        "Date": dates,
        "Digest": digests,
        "Content-Digest": digests,
        "Host": st.sampled_from(["kith.example", "KITH.example:443", "other.example", ""]) | header_text,
        "Content-Type": header_text,
    },
)
methods = st.sampled_from(["POST", "GET", "post", "HEAD", "PUT"])
request_urls = st.sampled_from(
    [INBOX, INBOX + "?a=1", "https://kith.example", "https://[::1/x", "//x", "https://kith.example:99999/"]
)


def _outcome(method: str, url: str, headers: dict[str, str], body: bytes, authority: str | None) -> Verified | str:
    """Verified, or the SignatureError's reason; any other exception fails the test."""
    try:
        return asyncio.run(verify(method, url, headers, body, authority=authority))
    except SignatureError as exc:
        assert exc.reason and isinstance(exc.reason, str)
        return exc.reason


@CRYPTO
@given(
    methods, request_urls, headers_strategy, st.sampled_from([BODY, b"", b"x"]), st.sampled_from([None, "kith.example"])
)
@example(
    "POST", INBOX, {"Signature": 'keyId="k",signature="AAAA",headers="(created)",created=99999999999999'}, b"", None
)
@example(
    "POST", INBOX, {"Signature-Input": 'sig1=("@method");created=1;keyid="k"', "Signature": "sig1=:AAAA:"}, b"", None
)
@example("GET", INBOX, {"Signature-Input": "sig1=()", "Signature": "sig1=()"}, b"", None)
def test_arbitrary_signature_headers_verify_or_are_refused(method, url, headers, body, authority) -> None:
    outcome = _outcome(method, url, headers, body, authority)
    # No signer holds ALICE's key here, so nothing fuzzed can be accepted.
    assert isinstance(outcome, str), outcome
    key_id = signature_key_id(headers)
    assert key_id is None or (isinstance(key_id, str) and key_id)


@PURE
@given(headers_strategy)
def test_signature_key_id_is_a_string_or_none(headers: dict[str, str]) -> None:
    key_id = signature_key_id(headers)
    assert key_id is None or (isinstance(key_id, str) and key_id)


def _signed_cavage() -> dict[str, str]:
    return cavage_sign(ALICE.private_pem, "POST", INBOX, post_headers(), POST_NAMES)


def _signed_rfc9421() -> dict[str, str]:
    headers = rfc9421_sign(
        RSA_KEY, "POST", INBOX, BODY, components=("@method", "@target-uri", "@authority", "content-digest")
    )
    return headers


SIGNED = {"cavage": _signed_cavage(), "rfc9421": _signed_rfc9421()}
# The headers each signature covers. (The cavage keyId is not signed: a changed one is
# a question for the key lookup, and the inbox checks the key's owner is the actor.)
SIGNED_PARTS = {
    "cavage": ["Host", "Date", "Digest", "Content-Type"],
    "rfc9421": ["Content-Digest", "Signature-Input"],
}


def _flip(value: str, i: int) -> str:
    return value[:i] + chr(ord(value[i]) ^ 1) + value[i + 1 :]


@CRYPTO
@given(st.sampled_from(sorted(SIGNED)), st.data())
def test_tampering_with_a_signed_header_is_caught(scheme: str, data: st.DataObject) -> None:
    """Change any signed header of a genuinely signed POST: refused, and only ever with SignatureError."""
    headers: dict[str, Any] = dict(SIGNED[scheme])
    assert _outcome("POST", INBOX, headers, BODY, "kith.example") == Verified(KEY_ID, OWNER, _scheme_name(scheme))
    name = data.draw(st.sampled_from(SIGNED_PARTS[scheme]), label="header")
    original = headers[name]
    replacement = data.draw(
        header_text.filter(lambda v: v.strip() != original.strip())
        | st.integers(0, len(original) - 1).map(lambda i: _flip(original, i)),
        label="value",
    )
    if replacement.strip() == original.strip():
        return
    headers[name] = replacement
    outcome = _outcome("POST", INBOX, headers, BODY, "kith.example")
    assert isinstance(outcome, str), f"{name}: {replacement!r} still verified"


@CRYPTO
@given(st.sampled_from(sorted(SIGNED)), st.binary(min_size=1, max_size=300))
def test_another_signature_value_is_caught(scheme: str, raw: bytes) -> None:
    headers = dict(SIGNED[scheme])
    encoded = b64(raw)
    if scheme == "cavage":
        headers["Signature"] = re.sub(r'signature="[^"]*"', f'signature="{encoded}"', headers["Signature"])
    else:
        headers["Signature"] = f"sig1=:{encoded}:"
    assert isinstance(_outcome("POST", INBOX, headers, BODY, "kith.example"), str)


def _scheme_name(scheme: str) -> str:
    return "draft-cavage" if scheme == "cavage" else "rfc9421"


@CRYPTO
@given(st.sampled_from(sorted(SIGNED)), st.binary(max_size=40).filter(lambda b: b != BODY))
def test_another_body_is_caught(scheme: str, body: bytes) -> None:
    assert isinstance(_outcome("POST", INBOX, dict(SIGNED[scheme]), body, "kith.example"), str)


@PURE
@given(digests | header_text, st.binary(max_size=20))
@example("sha-256=:" + digest_header(BODY)[8:] + ":", BODY)
def test_digest_checks_pass_or_refuse(value: str, body: bytes) -> None:
    for check in (check_digest, check_content_digest):
        with contextlib.suppress(SignatureError):
            check(value, body)


@PURE
@given(dates)
def test_http_dates_parse_or_are_none(value: str) -> None:
    parsed = parse_http_date(value)
    assert parsed is None or parsed.tzinfo is UTC


@PURE
@given(numbers | header_text)
@example("999999999999.999999999")
@example("٣")
def test_timestamps_parse_or_refuse(value: str) -> None:
    try:
        moment = timestamp(value, "created")
    except SignatureError:
        return
    assert moment.tzinfo is UTC and abs(moment - NOW) < timedelta(days=365 * 40000)


# Covered components as a peer may list them: derived ones, headers present or absent,
# and the parameters RFC 9421 defines (sf, key, bs, req, tr, name).
components = st.sampled_from(
    ['"@method"', '"@target-uri"', '"@authority"', '"@path"', '"@query"', '"@scheme"', '"@request-target"',
     '"@status"', '"@query-param";name="a"', '"@query-param"', '"@signature-params"', '"content-digest"',
     '"content-type";sf', '"host";bs', '"date"', '"x-missing"', '"content-type";key="a"', '"@method";req',
     '"digest";tr', '"content-digest";sf', '"content-digest";key="sha-256"', '"@foo"', '"HOST"', '""']
)  # fmt: skip
REQUIRED = '"@method" "@target-uri" "content-digest"'


@CRYPTO
@given(
    st.lists(components, max_size=6),
    st.sampled_from(["", ';alg="rsa-v1_5-sha256"', ';alg="ed25519"', ';alg="rsa-pss-sha512"', ";expires=1"]),
    st.sampled_from([":" + "A" * 344 + ":", ":AAAA:"]),
)
@example(['"@query-param"'], "", ":AAAA:")
@example(['"content-type";key="a"'], "", ":AAAA:")
@example(['"@status"'], "", ":AAAA:")
def test_rfc9421_components_reach_the_verifier_and_are_refused(extra: list[str], alg: str, value: str) -> None:
    """A fresh, well-formed Signature-Input covering odd components: refused with SignatureError only."""
    created = int(NOW.timestamp())
    headers = dict(SIGNED["rfc9421"])
    headers["Signature-Input"] = f'sig1=({REQUIRED} {" ".join(extra)});created={created};keyid="{KEY_ID}"{alg}'
    headers["Signature"] = f"sig1={value}"
    headers["Content-Type"] = "application/activity+json"
    outcome = _outcome("POST", INBOX + "?a=1", headers, BODY, "kith.example")
    assert isinstance(outcome, str)


near_now = st.integers(min_value=-7200, max_value=7200).map(lambda s: int(NOW.timestamp()) + s)
cavage_headers = st.builds(
    lambda names, alg, created, expires, sig, date, digest, host: {
        "Signature": ",".join(
            p
            for p in (
                f'keyId="{KEY_ID}"',
                alg,
                f'headers="{" ".join(names)}"',
                "" if created is None else f"created={created}",
                "" if expires is None else f"expires={expires}",
                f'signature="{sig}"',
            )
            if p
        ),
        "Date": date,
        "Digest": digest,
        "Host": host,
        "Content-Type": "application/activity+json",
    },
    st.lists(tokens, max_size=7)
    | st.lists(tokens, max_size=3).flatmap(
        lambda extra: st.permutations(["(request-target)", "date", "digest", "host", *extra])
    ),
    st.sampled_from(["", 'algorithm="rsa-sha256"', 'algorithm="hs2019"', 'algorithm="ed25519"', "algorithm="]),
    st.none() | near_now | numbers,
    st.none() | near_now | numbers,
    st.sampled_from(["A" * 344, "AAAA", "!!", "A A=", ""]),
    near_now.map(lambda ts: http_date(datetime.fromtimestamp(ts, UTC))) | dates,
    digests | st.just(digest_header(BODY)),
    st.sampled_from(["kith.example", "other.example", "kith.example:443", ""]),
)


@CRYPTO
@given(methods, request_urls, cavage_headers, st.sampled_from([BODY, b""]), st.sampled_from([None, "kith.example"]))
def test_well_formed_cavage_headers_reach_the_checks_and_are_refused(method, url, headers, body, authority) -> None:
    assert isinstance(_outcome(method, url, headers, body, authority), str)
