"""The Mastodon admin API for domain blocks and allows: entities, status codes, scopes, pagination, audit."""

import hashlib
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from server.accounts import create_user
from server.oauth import create_user_token
from server.tables import admin_audit_log, domain_allows, domain_blocks
from server.types import utcnow

BLOCKS = "/api/v1/admin/domain_blocks"
ALLOWS = "/api/v1/admin/domain_allows"
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin(services) -> dict[str, str]:
    """Headers of the admin "ada" with both admin scopes."""
    await create_user(services.db, "ada", admin=True)
    return bearer((await create_user_token(services.db, "ada", "admin:read admin:write")).token)


async def token_for(services, name: str, scopes: str, *, admin: bool = True) -> dict[str, str]:
    await create_user(services.db, name, admin=admin)
    return bearer((await create_user_token(services.db, name, scopes)).token)


async def audit_rows(services) -> list:
    async with services.db.read() as conn:
        return (await conn.execute(sa.select(admin_audit_log).order_by(admin_audit_log.c.id))).all()


def links(response) -> dict[str, dict[str, list[str]]]:
    """``Link`` header -> {rel: query params}."""
    found = {}
    for part in response.headers.get("link", "").split(", "):
        match = re.fullmatch(r'<([^>]+)>; rel="(\w+)"', part)
        if match:
            found[match.group(2)] = parse_qs(urlsplit(match.group(1)).query)
    return found


# --------------------------------------------------------------------------- domain blocks


async def test_block_lifecycle(client, services, admin):
    r = await client.get(BLOCKS, headers=admin)
    assert r.status_code == 200 and r.json() == [] and "link" not in r.headers

    r = await client.post(
        BLOCKS,
        data={
            "domain": "Bad.Example",
            "severity": "suspend",
            "reject_media": "1",
            "reject_reports": "true",
            "private_comment": "for admins",
            "public_comment": "spam",
            "obfuscate": "0",
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text
    block = r.json()
    assert set(block) == {
        "id",
        "domain",
        "digest",
        "created_at",
        "severity",
        "reject_media",
        "reject_reports",
        "private_comment",
        "public_comment",
        "obfuscate",
    }
    assert isinstance(block["id"], str) and block["domain"] == "bad.example"
    assert block["digest"] == hashlib.sha256(b"bad.example").hexdigest()
    assert TIME_RE.fullmatch(block["created_at"])
    assert (block["severity"], block["reject_media"], block["reject_reports"]) == ("suspend", True, True)
    assert (block["private_comment"], block["public_comment"], block["obfuscate"]) == ("for admins", "spam", False)
    # Effective at once in this process: the policy reloaded.
    assert services.is_blocked("bad.example") and services.is_blocked("sub.bad.example")

    r = await client.get(f"{BLOCKS}/{block['id']}", headers=admin)
    assert r.status_code == 200 and r.json() == block
    assert (await client.get(BLOCKS, headers=admin)).json() == [block]

    r = await client.put(
        f"{BLOCKS}/{block['id']}",
        data={"severity": "silence", "obfuscate": "true", "domain": "ignored.example"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    updated = r.json()
    assert (updated["severity"], updated["obfuscate"], updated["domain"]) == ("silence", True, "bad.example")
    assert updated["public_comment"] == "spam" and updated["reject_media"] is True  # untouched fields kept
    assert not services.is_blocked("bad.example")  # silenced, no longer suspended

    r = await client.delete(f"{BLOCKS}/{block['id']}", headers=admin)
    assert r.status_code == 200 and r.json() == {}
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(domain_blocks))).all() == []
    assert (await client.get(f"{BLOCKS}/{block['id']}", headers=admin)).status_code == 404

    # Every change is in the audit log under the admin's name.
    rows = await audit_rows(services)
    assert [(r.actor, r.action, r.target) for r in rows] == [
        ("ada", "domain_block.create", "bad.example"),
        ("ada", "domain_block.update", "bad.example"),
        ("ada", "domain_block.delete", "bad.example"),
    ]
    assert json.loads(rows[1].detail) == {"severity": "silence", "obfuscate": True}


async def test_block_json_body_and_default_severity(client, services, admin):
    r = await client.post(BLOCKS, json={"domain": "quiet.example", "reject_media": True}, headers=admin)
    assert r.status_code == 200
    assert r.json()["severity"] == "silence" and r.json()["reject_media"] is True  # Mastodon's default
    r = await client.put(f"{BLOCKS}/{r.json()['id']}", json={"severity": "noop"}, headers=admin)
    assert r.status_code == 200 and r.json()["severity"] == "noop"


async def test_block_errors(client, services, admin):
    created = (await client.post(BLOCKS, data={"domain": "dup.example"}, headers=admin)).json()

    r = await client.post(BLOCKS, data={"domain": "DUP.example", "severity": "suspend"}, headers=admin)
    assert r.status_code == 422 and isinstance(r.json()["error"], str)
    assert r.json()["existing_domain_block"]["id"] == created["id"]
    for body in (
        {"domain": "not a domain"},
        {"domain": ""},
        {},
        {"domain": "ok.example", "severity": "obliterate"},
        {"domain": "ok.example", "reject_media": "perhaps"},
        {"domain": "ok.example", "public_comment": "x" * 1001},
        {"domain": ("a" * 63 + ".") * 4 + "example"},  # longer than any DNS name
        {"domain": "bücher" * 50 + ".example"},
    ):
        r = await client.post(BLOCKS, data=body, headers=admin)
        assert r.status_code == 422, body
        assert set(r.json()) == {"error"}
    r = await client.post(BLOCKS, content=b"{", headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()
    r = await client.post(BLOCKS, json={"domain": {"nested": 1}}, headers=admin)
    assert r.status_code == 422

    for bad_id in ("999999", "abc", "-1", "1.5", "99999999999999999999", "١٢"):
        for method in ("GET", "PUT", "DELETE"):
            r = await client.request(method, f"{BLOCKS}/{bad_id}", headers=admin)
            assert r.status_code == 404, (method, bad_id)
            assert "error" in r.json()
    r = await client.put(f"{BLOCKS}/{created['id']}", data={"severity": "bogus"}, headers=admin)
    assert r.status_code == 422
    r = await client.patch(
        f"{BLOCKS}/{created['id']}", content=b"{]", headers={**admin, "Content-Type": "application/json"}
    )
    assert r.status_code == 400
    r = await client.post(f"{BLOCKS}/{created['id']}", headers=admin)
    assert r.status_code == 405 and "error" in r.json()

    # Nothing failed half-way: one block, one audit row.
    async with services.db.read() as conn:
        assert len((await conn.execute(sa.select(domain_blocks))).all()) == 1
    assert len(await audit_rows(services)) == 1


async def test_what_is_not_a_domain_is_refused_with_the_reason(client, services, admin):
    for domain in ("123", "xn--zz", "-bad-.example", "exa mple.com", "a..b", "com", "example.123"):
        for path in (BLOCKS, ALLOWS):
            r = await client.post(path, data={"domain": domain}, headers=admin)
            assert r.status_code == 422, (path, domain, r.text)
            assert r.json()["error"].startswith(f"{domain!r} is not a domain: "), r.json()
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(domain_blocks))).all() == []
        assert (await conn.execute(sa.select(domain_allows))).all() == []
    assert await audit_rows(services) == []

    r = await client.post(BLOCKS, data={"domain": "münchen.de"}, headers=admin)
    assert r.status_code == 200 and r.json()["domain"] == "xn--mnchen-3ya.de"
    assert services.is_blocked("www.xn--mnchen-3ya.de") is False  # silence, Mastodon's default
    r = await client.post(BLOCKS, data={"domain": "MÜNCHEN.de"}, headers=admin)
    assert r.status_code == 422 and r.json()["existing_domain_block"]["domain"] == "xn--mnchen-3ya.de"
    r = await client.post(ALLOWS, json={"domain": "sub.example.co.uk"}, headers=admin)
    assert r.status_code == 200 and r.json()["domain"] == "sub.example.co.uk"


async def test_trailing_slash_paths(client, admin):
    r = await client.post(BLOCKS + "/", data={"domain": "slash.example"}, headers=admin)
    assert r.status_code == 200
    r = await client.get(BLOCKS + "/", headers=admin)
    assert r.status_code == 200 and len(r.json()) == 1


# --------------------------------------------------------------------------- pagination


async def _insert_blocks(services, count: int) -> list[int]:
    now = utcnow()
    async with services.db.transaction() as conn:
        await conn.execute(
            sa.insert(domain_blocks),
            [
                {"domain": f"d{i:03d}.example", "severity": "silence", "created_at": now, "updated_at": now}
                for i in range(count)
            ],
        )
        return sorted((await conn.execute(sa.select(domain_blocks.c.id))).scalars().all())


async def test_block_pagination(client, services, admin):
    ids = await _insert_blocks(services, 5)
    r = await client.get(BLOCKS, params={"limit": 2}, headers=admin)
    assert [int(b["id"]) for b in r.json()] == [ids[4], ids[3]]
    rel = links(r)
    assert rel["next"] == {"limit": ["2"], "max_id": [str(ids[3])]}
    assert rel["prev"] == {"limit": ["2"], "min_id": [str(ids[4])]}
    assert r.headers["link"].startswith(f"<https://kith.test{BLOCKS}?")

    r = await client.get(BLOCKS, params={"limit": 2, "max_id": ids[3]}, headers=admin)
    assert [int(b["id"]) for b in r.json()] == [ids[2], ids[1]]
    r = await client.get(BLOCKS, params={"limit": 2, "max_id": ids[1]}, headers=admin)
    assert [int(b["id"]) for b in r.json()] == [ids[0]]
    assert set(links(r)) == {"prev"}  # a short page is the last

    # min_id: the page just above, still newest first.
    r = await client.get(BLOCKS, params={"limit": 2, "min_id": ids[0]}, headers=admin)
    assert [int(b["id"]) for b in r.json()] == [ids[2], ids[1]]
    r = await client.get(BLOCKS, params={"since_id": ids[2]}, headers=admin)
    assert [int(b["id"]) for b in r.json()] == [ids[4], ids[3]]
    assert set(links(r)) == {"prev"} and "limit" not in links(r)["prev"]

    r = await client.get(BLOCKS, params={"max_id": ids[0]}, headers=admin)
    assert r.json() == [] and "link" not in r.headers
    r = await client.get(BLOCKS, params={"min_id": "99999999999999"}, headers=admin)
    assert r.status_code == 200 and r.json() == []
    for bad in ({"limit": "ten"}, {"max_id": "x"}, {"since_id": "-3"}, {"min_id": "1e3"}):
        r = await client.get(BLOCKS, params=bad, headers=admin)
        assert r.status_code == 400 and "error" in r.json(), bad


async def test_block_page_sizes(client, services, admin):
    await _insert_blocks(services, 250)
    r = await client.get(BLOCKS, headers=admin)
    assert len(r.json()) == 100 and "next" in links(r)  # Mastodon's default
    r = await client.get(BLOCKS, params={"limit": 1000}, headers=admin)
    assert len(r.json()) == 200  # and its maximum
    assert links(r)["next"]["limit"] == ["200"]


# --------------------------------------------------------------------------- domain allows


async def test_allow_lifecycle(client, services, admin):
    assert (await client.get(ALLOWS, headers=admin)).json() == []
    r = await client.post(ALLOWS, data={"domain": "Friends.Example"}, headers=admin)
    assert r.status_code == 200
    allow = r.json()
    assert set(allow) == {"id", "domain", "created_at"} and allow["domain"] == "friends.example"
    assert isinstance(allow["id"], str) and TIME_RE.fullmatch(allow["created_at"])

    # As Mastodon: allowing an allowed domain answers the existing record.
    r = await client.post(ALLOWS, json={"domain": "friends.example"}, headers=admin)
    assert r.status_code == 200 and r.json() == allow
    assert (await client.get(f"{ALLOWS}/{allow['id']}", headers=admin)).json() == allow

    pals = (await client.post(ALLOWS, data={"domain": "pals.example"}, headers=admin)).json()
    r = await client.get(ALLOWS, params={"limit": 1}, headers=admin)
    assert r.json() == [pals]
    assert links(r) == {
        "next": {"limit": ["1"], "max_id": [pals["id"]]},
        "prev": {"limit": ["1"], "min_id": [pals["id"]]},
    }

    r = await client.delete(f"{ALLOWS}/{allow['id']}", headers=admin)
    assert r.status_code == 200 and r.json() == {}
    assert (await client.get(f"{ALLOWS}/{allow['id']}", headers=admin)).status_code == 404
    assert (await client.delete(f"{ALLOWS}/{allow['id']}", headers=admin)).status_code == 404
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(domain_allows.c.domain))).scalars().all() == ["pals.example"]
    assert [(r.actor, r.action, r.target) for r in await audit_rows(services)] == [
        ("ada", "domain_allow.create", "friends.example"),
        ("ada", "domain_allow.create", "pals.example"),
        ("ada", "domain_allow.delete", "friends.example"),
    ]


async def test_allow_errors(client, admin):
    for body in ({}, {"domain": ""}, {"domain": "no way"}, {"domain": ("b" * 60 + ".") * 5 + "example"}):
        r = await client.post(ALLOWS, data=body, headers=admin)
        assert r.status_code == 422 and "error" in r.json(), body
    for bad_id in ("0", "x", "4294967296"):
        assert (await client.get(f"{ALLOWS}/{bad_id}", headers=admin)).status_code == 404
    assert (await client.get(ALLOWS, params={"limit": "many"}, headers=admin)).status_code == 400


# --------------------------------------------------------------------------- who may call


async def test_requires_a_token(client, services, admin):
    block = (await client.post(BLOCKS, data={"domain": "x.example"}, headers=admin)).json()
    for method, path in (
        ("GET", BLOCKS),
        ("POST", BLOCKS),
        ("GET", f"{BLOCKS}/{block['id']}"),
        ("PUT", f"{BLOCKS}/{block['id']}"),
        ("DELETE", f"{BLOCKS}/{block['id']}"),
        ("GET", ALLOWS),
        ("POST", ALLOWS),
        ("GET", f"{ALLOWS}/1"),
        ("DELETE", f"{ALLOWS}/1"),
    ):
        r = await client.request(method, path)
        assert r.status_code == 401, (method, path)
        assert r.headers["www-authenticate"].startswith("Bearer") and r.json() == {
            "error": "The access token is invalid"
        }
        r = await client.request(method, path, headers=bearer("forged"))
        assert r.status_code == 401


@pytest.mark.parametrize(
    ("scopes", "read_blocks", "write_blocks", "read_allows", "write_allows"),
    [
        ("read write follow push", 403, 403, 403, 403),  # plain read/write never reach admin
        ("admin:read", 200, 403, 200, 403),
        ("admin:write", 403, 200, 403, 200),
        ("admin:read:domain_blocks", 200, 403, 403, 403),
        ("admin:write:domain_blocks", 403, 200, 403, 403),
        ("admin:read:domain_allows admin:write:domain_allows", 403, 403, 200, 200),
        ("admin:read:accounts admin:write:accounts", 403, 403, 403, 403),
    ],
)
async def test_scopes(client, services, scopes, read_blocks, write_blocks, read_allows, write_allows):
    headers = await token_for(services, "ada", scopes)
    assert (await client.get(BLOCKS, headers=headers)).status_code == read_blocks
    r = await client.post(BLOCKS, data={"domain": "s.example"}, headers=headers)
    assert r.status_code == write_blocks
    if r.status_code == 403:
        assert r.json() == {"error": "This action is outside the authorized scopes"}
    assert (await client.get(ALLOWS, headers=headers)).status_code == read_allows
    assert (await client.post(ALLOWS, data={"domain": "a.example"}, headers=headers)).status_code == write_allows


async def test_admin_only(client, services, admin):
    block = (await client.post(BLOCKS, data={"domain": "kept.example"}, headers=admin)).json()
    member = await token_for(services, "bob", "admin:read admin:write", admin=False)
    for method, path in (("GET", BLOCKS), ("POST", BLOCKS), ("DELETE", f"{BLOCKS}/{block['id']}"), ("POST", ALLOWS)):
        r = await client.request(
            method, path, headers=member, data={"domain": "z.example"} if method == "POST" else None
        )
        assert r.status_code == 403 and r.json() == {"error": "This action is not allowed"}, (method, path)

    # A client-credentials token acts for no user, so for no admin either.
    app = (
        await client.post(
            "/api/v1/apps",
            data={"client_name": "bot", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "scopes": "admin:read"},
        )
    ).json()
    r = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "admin:read",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
        },
    )
    r = await client.get(BLOCKS, headers=bearer(r.json()["access_token"]))
    assert r.status_code == 403
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(domain_blocks.c.domain))).scalars().all() == ["kept.example"]
