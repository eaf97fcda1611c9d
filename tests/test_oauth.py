"""OAuth 2 and the non-admin Mastodon API: apps, the login page, codes, tokens, PKCE, scopes, instance."""

import asyncio
import base64
import hashlib
import re
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from server import __version__
from server.accounts import create_user
from server.moderation.blocklist.matcher import obfuscated
from server.moderation.blocklist.store import BLOCKS, BlockSpec, create
from server.oauth import check_challenge, create_user_token, granting, parse_scopes, scope_allows, verifier_matches
from server.tables import oauth_apps, oauth_codes, oauth_tokens
from server.types import utcnow
from tests.shell import kith

PASSWORD = "correct horse battery"
CALLBACK = "https://client.example/callback"
OOB = "urn:ietf:wg:oauth:2.0:oob"


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(client, scopes="read write", redirect_uris=CALLBACK, **extra):
    r = await client.post(
        "/api/v1/apps", data={"client_name": "Test App", "redirect_uris": redirect_uris, "scopes": scopes, **extra}
    )
    assert r.status_code == 200, r.text
    return r.json()


async def authorize(
    client, app, *, user="ada", password=PASSWORD, scope="read", redirect_uri=CALLBACK, state="s1", **extra
):
    data = {
        "client_id": app["client_id"],
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "response_type": "code",
        "username": user,
        "password": password,
        **extra,
    }
    return await client.post("/oauth/authorize", data={k: v for k, v in data.items() if v is not None})


def code_from(response) -> str:
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)["code"][0]


async def exchange(client, app, code, redirect_uri=CALLBACK, **overrides):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "redirect_uri": redirect_uri,
        **overrides,
    }
    return await client.post("/oauth/token", data={k: v for k, v in data.items() if v is not None})


@pytest.fixture
async def ada(services):
    user, _ = await create_user(services.db, "ada", password=PASSWORD)
    return user


# --------------------------------------------------------------------------- scopes (pure)


def test_scope_hierarchy():
    assert list(granting("admin:read:domain_blocks")) == ["admin:read:domain_blocks", "admin:read"]
    assert list(granting("read:accounts")) == ["read:accounts", "read"]
    assert scope_allows({"admin:read"}, "admin:read:domain_blocks")
    assert scope_allows({"admin:read:domain_blocks"}, "admin:read:domain_blocks")
    assert not scope_allows({"admin:read:domain_blocks"}, "admin:read")  # a child never grants its parent
    assert not scope_allows({"read", "write"}, "admin:read:domain_blocks")
    assert not scope_allows({"read", "write"}, "admin:write")
    assert not scope_allows({"admin:write"}, "admin:read")
    assert parse_scopes(None) == ["read"]
    assert parse_scopes("read  write read") == ["read", "write"]


# --------------------------------------------------------------------------- app registration


async def test_register_app_form(client, services):
    app = await register(client, scopes="read admin:read", website="https://client.example")
    assert set(app) >= {"id", "name", "website", "redirect_uri", "redirect_uris", "client_id", "client_secret"}
    assert app["name"] == "Test App" and app["website"] == "https://client.example"
    assert app["redirect_uri"] == CALLBACK and app["redirect_uris"] == [CALLBACK]
    assert app["vapid_key"] == "" and app["scopes"] == ["read", "admin:read"]
    assert isinstance(app["id"], str) and len(app["client_secret"]) >= 43
    async with services.db.read() as conn:
        row = (await conn.execute(sa.select(oauth_apps))).one()
    # The secret is stored as its digest only.
    assert row.client_secret_hash == sha(app["client_secret"])
    assert app["client_secret"] not in [str(v) for v in row]


async def test_register_app_json_with_list_and_defaults(client):
    r = await client.post(
        "/api/v1/apps", json={"client_name": "J", "redirect_uris": [CALLBACK, OOB]}
    )  # no scopes: Mastodon's default "read"
    assert r.status_code == 200
    assert r.json()["redirect_uris"] == [CALLBACK, OOB] and r.json()["scopes"] == ["read"]
    r = await client.post("/api/v1/apps", data={"client_name": "N", "redirect_uris": f"{CALLBACK}\n{OOB}"})
    assert r.json()["redirect_uris"] == [CALLBACK, OOB]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"redirect_uris": CALLBACK}, 422),  # no name
        ({"client_name": "x"}, 422),  # no redirect URI
        ({"client_name": "x", "redirect_uris": "/relative"}, 422),
        ({"client_name": "x", "redirect_uris": "https://c.example/cb#frag"}, 422),
        ({"client_name": "x", "redirect_uris": "javascript:alert(1)"}, 422),
        ({"client_name": "x", "redirect_uris": CALLBACK, "scopes": "read admin"}, 422),
        ({"client_name": "x", "redirect_uris": CALLBACK, "website": "javascript:alert(1)"}, 422),
    ],
)
async def test_register_app_invalid(client, body, status):
    r = await client.post("/api/v1/apps", data=body)
    assert r.status_code == status
    assert isinstance(r.json()["error"], str)


async def test_register_native_app_scheme(client):
    app = await register(client, redirect_uris="org.example.app://oauth")
    assert app["redirect_uris"] == ["org.example.app://oauth"]


async def test_register_app_malformed_bodies(client):
    headers = {"Content-Type": "application/json"}
    r = await client.post("/api/v1/apps", content=b"{not json", headers=headers)
    assert r.status_code == 400 and "error" in r.json()
    r = await client.post("/api/v1/apps", content=b"[1, 2]", headers=headers)
    assert r.status_code == 400
    r = await client.post("/api/v1/apps", json={"client_name": ["a"], "redirect_uris": CALLBACK})
    assert r.status_code == 422
    r = await client.post(
        "/api/v1/apps", content=b"\xff\xfe=\xff", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 400
    r = await client.post("/api/v1/apps", content=b"--zz\r\ngarbage", headers={"Content-Type": "multipart/form-data"})
    assert r.status_code == 400  # no boundary
    r = await client.post(
        "/api/v1/apps", content=b"--zz\r\ngarbage", headers={"Content-Type": "multipart/form-data; boundary=zz"}
    )
    assert r.status_code in (400, 422)  # truncated: at worst nothing parsed
    r = await client.post("/api/v1/apps", content=b"x" * 70_000, headers={"Content-Type": "text/plain"})
    assert r.status_code == 413
    r = await client.post("/api/v1/apps", content=b"a=b", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400
    # A multipart form works like a urlencoded one.
    r = await client.post("/api/v1/apps", files={"client_name": (None, "M"), "redirect_uris": (None, CALLBACK)})
    assert r.status_code == 200 and r.json()["name"] == "M"


# --------------------------------------------------------------------------- authorize


async def test_authorize_page(client, ada):
    app = await register(client, scopes="read write")
    r = await client.get(
        "/oauth/authorize",
        params={
            "client_id": app["client_id"],
            "redirect_uri": CALLBACK,
            "scope": "read write",
            "response_type": "code",
            "state": "xyz",
        },
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "Test App" in r.text and "<code>write</code>" in r.text
    assert 'name="state" value="xyz"' in r.text and 'name="password"' in r.text
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"


async def test_authorization_code_flow(client, services, ada):
    app = await register(client, scopes="read write")
    r = await authorize(client, app, scope="read write", state="abc")
    location = urlsplit(r.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    assert parse_qs(location.query)["state"] == ["abc"]
    code = code_from(r)
    async with services.db.read() as conn:
        stored = (await conn.execute(sa.select(oauth_codes))).one()
    assert stored.code_hash == sha(code) and stored.redirect_uri == CALLBACK
    assert timedelta(minutes=9) < stored.expires_at - utcnow() <= timedelta(minutes=10)

    r = await exchange(client, app, code)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "read write"
    assert isinstance(body["created_at"], int) and len(body["access_token"]) >= 43
    assert r.headers["cache-control"] == "no-store"
    async with services.db.read() as conn:
        token_row = (await conn.execute(sa.select(oauth_tokens))).one()
    assert token_row.token_hash == sha(body["access_token"]) and token_row.user_id == ada.id

    me = await client.get("/api/v1/accounts/verify_credentials", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["username"] == "ada"

    # Single use: the same code a second time is refused.
    again = await exchange(client, app, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_authorize_oob_shows_code(client, ada):
    app = await register(client, redirect_uris=OOB)
    r = await authorize(client, app, redirect_uri=OOB)
    assert r.status_code == 200
    code = re.search(r'<code class="code">([^<]+)</code>', r.text).group(1)
    token = await exchange(client, app, code, redirect_uri=OOB)
    assert token.status_code == 200 and token.json()["scope"] == "read"


async def test_authorize_single_registered_uri_is_the_default(client, ada):
    app = await register(client)
    r = await authorize(client, app, redirect_uri=None)
    assert r.headers["location"].startswith(CALLBACK + "?code=")


async def test_authorize_wrong_password(client, services, ada):
    app = await register(client)
    for user, password in (("ada", "wrong password!"), ("nobody", PASSWORD), ("ada", "")):
        r = await authorize(client, app, user=user, password=password)
        assert r.status_code == 200 and "Wrong user name or password." in r.text
        assert "location" not in r.headers
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(oauth_codes))).scalar_one() == 0


async def test_authorize_errors(client, ada):
    app = await register(client, scopes="read")
    base = {"client_id": app["client_id"], "redirect_uri": CALLBACK, "response_type": "code", "state": "st"}

    r = await client.get("/oauth/authorize", params={**base, "client_id": "nope"})
    assert r.status_code == 400 and "unknown client_id" in r.text
    r = await client.get("/oauth/authorize", params={**base, "redirect_uri": "https://evil.example/cb"})
    assert r.status_code == 400 and "location" not in r.headers  # never sent to an unregistered URI

    r = await client.get("/oauth/authorize", params={**base, "response_type": "token"})
    assert r.status_code == 302
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["error"] == ["unsupported_response_type"] and query["state"] == ["st"]

    r = await client.get("/oauth/authorize", params={**base, "scope": "read admin:write"})
    assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["invalid_scope"]
    r = await client.get("/oauth/authorize", params={**base, "scope": "bogus"})
    assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["invalid_scope"]

    r = await client.post("/oauth/authorize", data={**base, "scope": "read", "decision": "deny"})
    assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["access_denied"]


# --------------------------------------------------------------------------- token endpoint


async def test_token_errors(client, services, ada):
    app = await register(client)
    other = await register(client)

    r = await exchange(client, app, code_from(await authorize(client, app)), client_secret="wrong")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")
    r = await exchange(client, app, "whatever", client_id="unknown")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"

    # Bound to the redirect URI: a mismatch fails and burns the code.
    code = code_from(await authorize(client, app))
    r = await exchange(client, app, code, redirect_uri="https://client.example/other")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert (await exchange(client, app, code)).json()["error"] == "invalid_grant"

    # Bound to the client.
    code = code_from(await authorize(client, app))
    r = await exchange(client, other, code)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"

    # Expired after ten minutes.
    code = code_from(await authorize(client, app))
    async with services.db.transaction() as conn:
        await conn.execute(sa.update(oauth_codes).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = await exchange(client, app, code)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert "error_description" in r.json()

    r = await exchange(client, app, "x", grant_type=None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await exchange(client, app, "x", grant_type="password")
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = await exchange(client, app, None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await client.post("/oauth/token", content=b"{oops", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await client.post("/oauth/token", json={"grant_type": ["authorization_code"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic !!!"}
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_token_json_body_and_basic_auth(client, ada):
    app = await register(client)
    code = code_from(await authorize(client, app))
    r = await client.post(
        "/oauth/token",
        json={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK},
        auth=(app["client_id"], app["client_secret"]),
    )
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer"
    r = await client.post(
        "/oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
        },
    )
    assert r.status_code == 200 and r.json()["scope"] == "read"


async def test_client_credentials(client, services):
    app = await register(client, scopes="read write")
    creds = {"client_id": app["client_id"], "client_secret": app["client_secret"]}
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "read", **creds})
    assert r.status_code == 200
    token = r.json()["access_token"]
    async with services.db.read() as conn:
        row = (await conn.execute(sa.select(oauth_tokens))).one()
    assert row.user_id is None and row.app_id is not None
    # A token of the application alone has no account (Mastodon answers 422).
    r = await client.get("/api/v1/accounts/verify_credentials", headers=bearer(token))
    assert r.status_code == 422 and r.json()["error"] == "This method requires an authenticated user"
    r = await client.get("/api/v1/apps/verify_credentials", headers=bearer(token))
    assert r.status_code == 200 and r.json()["name"] == "Test App"
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "admin:read", **creds})
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


async def test_revoke(client, ada):
    app = await register(client)
    other = await register(client)
    token = (await exchange(client, app, code_from(await authorize(client, app)))).json()["access_token"]
    creds = {"client_id": app["client_id"], "client_secret": app["client_secret"]}

    r = await client.post("/oauth/revoke", data={**creds, "client_secret": "bad", "token": token})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = await client.post(
        "/oauth/revoke",
        data={"client_id": other["client_id"], "client_secret": other["client_secret"], "token": token},
    )
    assert r.status_code == 403 and r.json()["error"] == "unauthorized_client"
    r = await client.post("/oauth/revoke", data={**creds, "token": "never-issued"})
    assert r.status_code == 200 and r.json() == {}
    assert (await client.get("/api/v1/accounts/verify_credentials", headers=bearer(token))).status_code == 200

    r = await client.post("/oauth/revoke", data={**creds, "token": token})
    assert r.status_code == 200 and r.json() == {}
    r = await client.get("/api/v1/accounts/verify_credentials", headers=bearer(token))
    assert r.status_code == 401 and r.json() == {"error": "The access token was revoked"}
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_server_metadata(client):
    r = await client.get("/.well-known/oauth-authorization-server")
    doc = r.json()
    assert doc["token_endpoint"] == "https://kith.test/oauth/token"
    assert doc["authorization_endpoint"] == "https://kith.test/oauth/authorize"
    assert "authorization_code" in doc["grant_types_supported"] and "admin:write" in doc["scopes_supported"]


# --------------------------------------------------------------------------- PKCE (RFC 7636)


def s256(verifier: str) -> str:
    """RFC 7636 4.2, written out here rather than taken from the code under test."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


def test_pkce_rfc_7636_example():
    # Appendix B of RFC 7636: this verifier and this challenge belong together.
    verifier, challenge = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert s256(verifier) == challenge
    assert verifier_matches(challenge, "S256", verifier)
    assert not verifier_matches(challenge, "S256", challenge)
    assert verifier_matches(verifier, "plain", verifier) and not verifier_matches(verifier, "plain", challenge)
    assert not verifier_matches(challenge, "S256", None) and not verifier_matches(challenge, "S256", "")
    assert verifier_matches(None, None, None) and not verifier_matches(None, None, verifier)
    assert check_challenge(challenge, "S256") == (challenge, "S256")
    assert check_challenge(verifier, None) == (verifier, "plain")  # plain is the default (RFC 7636 4.3)
    assert check_challenge(None, None) == (None, None)


async def test_pkce_s256_flow(client, services, ada):
    app = await register(client)
    verifier = "v" * 10 + secrets.token_urlsafe(48)
    page = await client.get(
        "/oauth/authorize",
        params={
            "client_id": app["client_id"],
            "redirect_uri": CALLBACK,
            "response_type": "code",
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        },
    )
    # The login form carries the challenge on to the POST.
    assert f'name="code_challenge" value="{s256(verifier)}"' in page.text
    assert 'name="code_challenge_method" value="S256"' in page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    r = await client.post("/oauth/authorize", data={**fields, "username": "ada", "password": PASSWORD})
    code = code_from(r)
    async with services.db.read() as conn:
        stored = (await conn.execute(sa.select(oauth_codes))).one()
    assert (stored.code_challenge, stored.code_challenge_method) == (s256(verifier), "S256")

    r = await exchange(client, app, code, code_verifier=verifier)
    assert r.status_code == 200, r.text
    me = await client.get("/api/v1/accounts/verify_credentials", headers=bearer(r.json()["access_token"]))
    assert me.status_code == 200 and me.json()["username"] == "ada"
    # Code reuse is refused, the right verifier notwithstanding.
    again = await exchange(client, app, code, code_verifier=verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_pkce_plain_flow(client, ada):
    app = await register(client)
    verifier = secrets.token_urlsafe(60)
    code = code_from(await authorize(client, app, code_challenge=verifier))  # no method: plain
    r = await exchange(client, app, code, code_verifier=verifier)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "verifier",
    [None, "", "wrong-" + "x" * 50, "short", "VERIFIER-" * 5 + "é"],
    ids=["missing", "empty", "wrong", "malformed", "non-ascii"],
)
async def test_pkce_bad_verifier_fails_and_burns_the_code(client, ada, verifier):
    app = await register(client)
    right = secrets.token_urlsafe(48)
    code = code_from(await authorize(client, app, code_challenge=s256(right), code_challenge_method="S256"))
    r = await exchange(client, app, code, code_verifier=verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    # Consumed by the failed attempt: an eavesdropper's guess costs the client its code.
    r = await exchange(client, app, code, code_verifier=right)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_pkce_verifier_for_a_code_without_challenge_fails(client, ada):
    # Otherwise PKCE could be stripped from the authorization request (RFC 9700 4.8.2).
    app = await register(client)
    code = code_from(await authorize(client, app))
    r = await exchange(client, app, code, code_verifier=secrets.token_urlsafe(48))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("challenge", "method"),
    [
        ("x" * 43, "S512"),
        ("x" * 43, "s256"),
        ("x" * 42, "S256"),
        ("x" * 129, "plain"),
        ("x" * 42 + "!", "plain"),
        (None, "S256"),
    ],
)
async def test_pkce_bad_challenge_goes_back_as_invalid_request(client, services, ada, challenge, method):
    app = await register(client)
    extra = {"code_challenge": challenge, "code_challenge_method": method}
    r = await authorize(client, app, **{k: v for k, v in extra.items() if v is not None})
    assert r.status_code == 302
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["s1"] and "code" not in query
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(oauth_codes))).scalar_one() == 0


async def test_server_metadata_names_pkce_methods(client):
    doc = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert doc["code_challenge_methods_supported"] == ["S256", "plain"]


# --------------------------------------------------------------------------- redirect URIs and code reuse


@pytest.mark.parametrize(
    "near_miss",
    [
        CALLBACK + "/",
        CALLBACK.upper(),
        CALLBACK + "?x=1",
        "https://client.example:443/callback",
        "https://é.example/cb",
    ],
)
async def test_redirect_uri_must_match_exactly(client, ada, near_miss):
    app = await register(client)
    r = await authorize(client, app, redirect_uri=near_miss)
    assert r.status_code == 400 and "location" not in r.headers
    code = code_from(await authorize(client, app))
    r = await exchange(client, app, code, redirect_uri=near_miss)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_concurrent_exchanges_of_one_code_issue_one_token(client, services, ada):
    app = await register(client)
    code = code_from(await authorize(client, app))
    answers = await asyncio.gather(*(exchange(client, app, code) for _ in range(4)))
    assert sorted(r.status_code for r in answers) == [200, 400, 400, 400]
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(oauth_tokens))).scalar_one() == 1


# --------------------------------------------------------------------------- hostile input at the doors (issue 12)


DOORS = {
    "/api/v1/apps": ("client_name", "redirect_uris", "scopes", "website"),
    "/oauth/token": ("grant_type", "code", "client_id", "client_secret", "redirect_uri", "code_verifier", "scope"),
    "/oauth/revoke": ("client_id", "client_secret", "token"),
    "/oauth/authorize": ("client_id", "redirect_uri", "scope", "state", "response_type", "code_challenge", "username"),
}


def reason_of(response) -> str:
    if response.headers["content-type"].startswith("text/html"):
        return response.text
    doc = response.json()
    return doc["error"] + doc.get("error_description", "")


async def valid_params(client, path: str) -> dict[str, str]:
    """Parameters that would succeed at this door, so that the NUL alone is what fails."""
    app = await register(client)
    return {
        "client_name": "App",
        "redirect_uris": CALLBACK,
        "scopes": "read",
        "website": "https://client.example",
        "grant_type": "client_credentials" if path == "/oauth/token" else "",
        "code": "c",
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "redirect_uri": CALLBACK,
        "code_verifier": "v" * 43,
        "scope": "read",
        "token": "t",
        "state": "s",
        "response_type": "code",
        "code_challenge": "c" * 43,
        "username": "ada",
    }


@pytest.mark.parametrize("path", DOORS)
async def test_nul_in_any_parameter_is_400(client, ada, path):
    base = await valid_params(client, path)
    for name in DOORS[path]:
        params = {k: base[k] for k in DOORS[path]}
        params[name] = params[name][:1] + "\x00" + params[name][1:]
        sent = [
            client.post(path, data=params),
            client.post(path, json=params),
            client.post(path, files={k: (None, v) for k, v in params.items()}),
        ]
        if path == "/oauth/authorize":
            sent.append(client.get(path, params=params))
        for response in await asyncio.gather(*sent):
            assert response.status_code == 400, (path, name, response.status_code, response.text[:200])
            assert "NUL" in reason_of(response)


@pytest.mark.parametrize("path", DOORS)
async def test_deep_json_oversized_and_unpaired_surrogates_are_refused(client, path):
    json_headers = {"Content-Type": "application/json"}
    deep = "[" * 30_000 + "]" * 30_000
    r = await client.post(path, content=deep, headers=json_headers)
    assert r.status_code == 400 and "nested deeper" in reason_of(r)
    r = await client.post(path, content=b'{"a": 1, "b": "' + b"x" * 70_000 + b'"}', headers=json_headers)
    assert r.status_code == 413 and "too large" in reason_of(r)
    r = await client.post(path, content=b"a=" + b"x" * 70_000)
    assert r.status_code == 413 and "too large" in reason_of(r)
    for name in DOORS[path]:
        r = await client.post(path, content=b'{"%s": "a\\ud800b"}' % name.encode(), headers=json_headers)
        assert r.status_code == 400 and "surrogate" in reason_of(r), (name, r.text[:200])


async def test_nul_in_basic_client_credentials_is_400(client):
    app = await register(client)
    for user, secret in ((app["client_id"] + "%00", app["client_secret"]), (app["client_id"], "a\x00b")):
        header = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
        for path in ("/oauth/token", "/oauth/revoke"):
            r = await client.post(
                path, data={"grant_type": "client_credentials", "token": "t"}, headers={"Authorization": header}
            )
            assert r.status_code == 400 and r.json()["error"] == "invalid_request" and "NUL" in reason_of(r)


# --------------------------------------------------------------------------- bearer tokens


async def test_bearer_errors(client, services, ada):
    r = await client.get("/api/v1/accounts/verify_credentials")
    assert r.status_code == 401 and r.json() == {"error": "The access token is invalid"}
    assert r.headers["www-authenticate"] == 'Bearer realm="Kith"'
    for header in ("Bearer nonsense", "Basic YTpi", "Bearer", "Bearer  "):
        r = await client.get("/api/v1/accounts/verify_credentials", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert r.headers["www-authenticate"].startswith("Bearer") and "error" in r.json()

    admin_only = (await create_user_token(services.db, "ada", "admin:read")).token
    r = await client.get("/api/v1/accounts/verify_credentials", headers=bearer(admin_only))
    assert r.status_code == 403 and r.json() == {"error": "This action is outside the authorized scopes"}
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    for scopes in ("read:accounts", "profile", "read write"):
        token = (await create_user_token(services.db, "ada", scopes)).token
        assert (await client.get("/api/v1/accounts/verify_credentials", headers=bearer(token))).status_code == 200


async def test_verify_credentials_entity(client, services):
    await create_user(services.db, "grace", admin=True, password=PASSWORD)
    token = (await create_user_token(services.db, "grace", "read")).token
    r = await client.get("/api/v1/accounts/verify_credentials", headers=bearer(token))
    me = r.json()
    for key in (
        "id",
        "username",
        "acct",
        "display_name",
        "locked",
        "bot",
        "created_at",
        "note",
        "url",
        "avatar",
        "header",
        "followers_count",
        "following_count",
        "statuses_count",
        "source",
        "emojis",
        "fields",
    ):
        assert key in me, key
    assert me["username"] == me["acct"] == "grace" and isinstance(me["id"], str)
    assert me["url"] == "https://kith.test/users/grace"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00\.000Z", me["created_at"])
    assert me["emojis"] == [] and me["fields"] == [] and me["source"]["fields"] == []
    assert me["role"]["permissions"] == "1"  # the administrator bit, as Mastodon reports it


async def test_app_verify_credentials_for_cli_token(client, services, ada):
    token = (await create_user_token(services.db, "ada", "read write")).token
    r = await client.get("/api/v1/apps/verify_credentials", headers=bearer(token))
    assert r.status_code == 200 and r.json()["scopes"] == ["read", "write"]


# --------------------------------------------------------------------------- instance


async def test_instance_v1_and_v2(client, services, ada):
    expected = f"4.3.0 (compatible; Kith {__version__})"
    for path in ("/api/v1/instance", "/api/v1/instance/"):
        v1 = (await client.get(path)).json()
        assert v1["version"] == expected and v1["uri"] == "kith.test"
        assert v1["registrations"] is False and v1["stats"]["user_count"] == 1
        assert {"title", "description", "urls", "stats", "configuration", "contact_account"} <= set(v1)
    v2 = (await client.get("/api/v2/instance")).json()
    assert v2["version"] == expected and v2["domain"] == "kith.test"
    assert v2["registrations"]["enabled"] is False and v2["api_versions"] == {"mastodon": 2}
    assert v2["usage"]["users"]["active_month"] == 1
    assert {"title", "description", "configuration", "contact"} <= set(v2)
    assert v2["configuration"]["statuses"]["max_characters"] == 500


async def test_public_domain_blocks(client, services):
    db = services.db
    await create(db, BLOCKS, BlockSpec("nasty.example", "suspend", obfuscate=True, public_comment="spam"), actor="t")
    await create(db, BLOCKS, BlockSpec("loud.example", "silence", public_comment="noisy"), actor="t")
    await create(db, BLOCKS, BlockSpec("quiet.example", "noop", reject_media=True), actor="t")
    assert obfuscated("nasty.example") != "nasty.example"
    r = await client.get("/api/v1/instance/domain_blocks")  # no token: public, as Mastodon's "all" setting
    assert r.status_code == 200
    assert r.json() == [
        {"domain": "loud.example", "digest": sha("loud.example"), "severity": "silence", "comment": "noisy"},
        {
            "domain": obfuscated("nasty.example"),
            "digest": sha("nasty.example"),
            "severity": "suspend",
            "comment": "spam",
        },
    ]


# --------------------------------------------------------------------------- CLI


async def test_cli_token_create(client, settings, services):
    assert kith(settings, "user", "create", "grace", "--admin").returncode == 0
    r = kith(settings, "token", "create", "grace", "--scopes", "read admin:read")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert len(token) >= 43 and "\n" not in token
    assert (await client.get("/api/v1/admin/domain_blocks", headers=bearer(token))).status_code == 200
    r = await client.post("/api/v1/admin/domain_blocks", data={"domain": "x.example"}, headers=bearer(token))
    assert r.status_code == 403

    default = kith(settings, "token", "create", "grace").stdout.strip()
    async with services.db.read() as conn:
        row = (await conn.execute(sa.select(oauth_tokens).where(oauth_tokens.c.token_hash == sha(default)))).one()
    assert row.scopes == "read" and row.app_id is None

    r = kith(settings, "token", "create", "nobody")
    assert r.returncode == 1 and r.stderr.startswith("kith: error:") and r.stdout == ""
    r = kith(settings, "token", "create", "grace", "--scopes", "read superpowers")
    assert r.returncode == 1 and "superpowers" in r.stderr
