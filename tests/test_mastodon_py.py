"""The real Mastodon.py client against Kith served by a real uvicorn on 127.0.0.1.

Mastodon.py is synchronous (requests), so each call runs in a thread while the
server runs as a task on the test's event loop. The instance is configured with
the loopback address as its domain, so the URLs it publishes (the OAuth metadata
Mastodon.py reads its endpoints from) point back at the test server.
"""

import asyncio
import dataclasses
import re
import socket
import warnings
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import mastodon
import pytest
import sqlalchemy as sa
import uvicorn
from mastodon import Mastodon

from server.accounts import create_user
from server.app import create_app
from server.oauth import create_user_token
from server.services import Services
from server.tables import admin_audit_log, domain_allows, domain_blocks
from server.types import utcnow

PASSWORD = "correct horse battery"
ADMIN_SCOPES = ["admin:read", "admin:write"]


@dataclasses.dataclass
class Live:
    base: str
    services: Services


@pytest.fixture
async def live(settings, network) -> AsyncIterator[Live]:
    """Kith on a free loopback port, with an admin "ada"."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    local = dataclasses.replace(settings, domain=f"127.0.0.1:{port}", scheme="http")
    services = await Services.open(local, transport=network, migrate=False)
    await create_user(services.db, "ada", admin=True, password=PASSWORD)
    app = create_app(local, services=services, run_worker=False)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.01)
        yield Live(f"http://127.0.0.1:{port}", services)
    finally:
        server.should_exit = True
        await task
        await services.close()
        sock.close()


async def admin_client(live: Live, **options) -> Mastodon:
    token = (await create_user_token(live.services.db, "ada", " ".join(["read", *ADMIN_SCOPES]))).token
    return await asyncio.to_thread(Mastodon, access_token=token, api_base_url=live.base, **options)


async def rows(live: Live, table: sa.Table) -> list:
    async with live.services.db.read() as conn:
        return (await conn.execute(sa.select(table).order_by(table.c.id))).all()


async def test_instance_and_account(live):
    api = await admin_client(live)
    instance = await asyncio.to_thread(api.instance)
    assert instance.version.startswith("4.3.0 (compatible; Kith ")
    v2 = await asyncio.to_thread(api.instance_v2)
    assert v2.domain == live.base.removeprefix("http://") and v2.api_versions["mastodon"] == 2
    me = await asyncio.to_thread(api.account_verify_credentials)
    assert me.username == "ada" and me.acct == "ada"


@pytest.mark.parametrize("mode", ["none", "created", "changed"])
async def test_version_check_modes(live, mode):
    """Mastodon.py reads "4.3.0" from our version string and API version 2, without warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. ">= 4.3.0, but no API version found"
        api = await admin_client(live, version_check_mode=mode)
        if mode != "none":
            assert (api.mastodon_major, api.mastodon_minor) == (4, 3)
            assert api.mastodon_api_version == 2
        blocks = await asyncio.to_thread(api.admin_domain_blocks)  # @api_version("4.0.0") passes
    assert blocks == []


async def test_admin_domain_blocks(live):
    api = await admin_client(live)
    assert await asyncio.to_thread(api.admin_domain_blocks) == []

    block = await asyncio.to_thread(
        api.admin_create_domain_block,
        "bad.example",
        severity="suspend",
        reject_media=True,
        private_comment="seen in reports",
        public_comment="spam",
    )
    assert block.domain == "bad.example" and block.severity == "suspend" and block.reject_media is True
    (stored,) = await rows(live, domain_blocks)
    assert (stored.domain, stored.severity, stored.reject_media, stored.private_comment) == (
        "bad.example",
        "suspend",
        True,
        "seen in reports",
    )
    assert live.services.is_blocked("bad.example")

    with pytest.raises(mastodon.MastodonAPIError) as duplicate:
        await asyncio.to_thread(api.admin_create_domain_block, "bad.example", severity="silence")
    assert duplicate.value.args[1] == 422

    updated = await asyncio.to_thread(api.admin_update_domain_block, block, severity="silence", obfuscate=True)
    assert updated.severity == "silence" and updated.obfuscate is True and updated.public_comment == "spam"
    (stored,) = await rows(live, domain_blocks)
    assert (stored.severity, stored.obfuscate, stored.reject_media) == ("silence", True, True)
    fetched = await asyncio.to_thread(api.admin_domain_blocks, id=block.id)
    assert fetched.severity == "silence" and str(fetched.id) == str(block.id)

    await asyncio.to_thread(api.admin_delete_domain_block, block)
    assert await rows(live, domain_blocks) == []
    assert not live.services.is_blocked("bad.example")
    with pytest.raises(mastodon.MastodonNotFoundError):
        await asyncio.to_thread(api.admin_domain_blocks, id=block.id)
    with pytest.raises(mastodon.MastodonNotFoundError):
        await asyncio.to_thread(api.admin_delete_domain_block, block)

    audit = [(r.actor, r.action, r.target) for r in await rows(live, admin_audit_log)]
    assert audit == [
        ("ada", "domain_block.create", "bad.example"),
        ("ada", "domain_block.update", "bad.example"),
        ("ada", "domain_block.delete", "bad.example"),
    ]


async def test_pagination(live):
    """``fetch_next``/``fetch_previous`` follow our Link headers.

    Mastodon.py 2.3 never sends ``limit`` for ``admin_domain_blocks`` (it drops the
    argument), so blocks page at the default 100; allows honour ``limit``.
    """
    now = utcnow()
    async with live.services.db.transaction() as conn:
        await conn.execute(
            sa.insert(domain_blocks),
            [
                {"domain": f"d{i:03d}.example", "severity": "silence", "created_at": now, "updated_at": now}
                for i in range(103)
            ],
        )
    api = await admin_client(live)
    first = await asyncio.to_thread(api.admin_domain_blocks)
    assert len(first) == 100 and first[0].domain == "d102.example"
    second = await asyncio.to_thread(api.fetch_next, first)
    # Pages fetched by fetch_next/fetch_previous come back as plain dicts in Mastodon.py 2.3.
    assert [b["domain"] for b in second] == ["d002.example", "d001.example", "d000.example"]
    assert await asyncio.to_thread(api.fetch_next, second) is None  # a short page has no next
    # (Mastodon.py 2.3 cannot fetch_previous from a page that fetch_next returned: it loses
    # the entity type. So step back from a page asked for directly.)
    middle = await asyncio.to_thread(api.admin_domain_blocks, max_id=second[0]["id"])
    assert [b.domain for b in middle] == ["d001.example", "d000.example"]
    back = await asyncio.to_thread(api.fetch_previous, middle)
    assert len(back) == 100 and back[0]["domain"] == "d101.example" and back[-1]["domain"] == "d002.example"

    allows = [await asyncio.to_thread(api.admin_create_domain_allow, n) for n in ("one.ex", "two.ex", "three.ex")]
    page = await asyncio.to_thread(api.admin_domain_allows, limit=2)
    assert [a.domain for a in page] == ["three.ex", "two.ex"]
    rest = await asyncio.to_thread(api.fetch_next, page)
    assert [a["domain"] for a in rest] == ["one.ex"]
    older = await asyncio.to_thread(api.admin_domain_allows, max_id=allows[1].id, limit=2)
    newer = await asyncio.to_thread(api.fetch_previous, older)
    assert [a["domain"] for a in newer] == ["three.ex", "two.ex"]


async def test_admin_domain_allows(live):
    api = await admin_client(live)
    allow = await asyncio.to_thread(api.admin_create_domain_allow, "friends.example")
    assert allow.domain == "friends.example"
    again = await asyncio.to_thread(api.admin_create_domain_allow, "friends.example")
    assert str(again.id) == str(allow.id)  # "returns the existing record", as Mastodon.py documents
    assert [a.domain for a in await asyncio.to_thread(api.admin_domain_allows)] == ["friends.example"]
    assert (await asyncio.to_thread(api.admin_domain_allow, allow)).domain == "friends.example"
    assert [r.domain for r in await rows(live, domain_allows)] == ["friends.example"]

    await asyncio.to_thread(api.admin_delete_domain_allow, allow)
    assert await rows(live, domain_allows) == []
    with pytest.raises(mastodon.MastodonNotFoundError):
        await asyncio.to_thread(api.admin_domain_allow, allow)
    audit = [(r.actor, r.action) for r in await rows(live, admin_audit_log)]
    assert audit == [("ada", "domain_allow.create"), ("ada", "domain_allow.delete")]


async def test_scopes_and_admin_enforced(live):
    await create_user(live.services.db, "bob", password=PASSWORD)
    plain = await asyncio.to_thread(
        Mastodon,
        access_token=(await create_user_token(live.services.db, "ada", "read write")).token,
        api_base_url=live.base,
    )
    with pytest.raises(mastodon.MastodonAPIError) as denied:
        await asyncio.to_thread(plain.admin_domain_blocks)
    assert denied.value.args[1] == 403
    member = await asyncio.to_thread(
        Mastodon,
        access_token=(await create_user_token(live.services.db, "bob", "admin:read admin:write")).token,
        api_base_url=live.base,
    )
    with pytest.raises(mastodon.MastodonAPIError) as denied:
        await asyncio.to_thread(member.admin_create_domain_block, "x.example")
    assert denied.value.args[1] == 403
    anonymous = await asyncio.to_thread(Mastodon, api_base_url=live.base)
    with pytest.raises(mastodon.MastodonUnauthorizedError):
        await asyncio.to_thread(anonymous.admin_domain_blocks)
    assert await rows(live, domain_blocks) == []


async def test_oauth_login_flow(live):
    """Register an app, log in on the authorize page, exchange the code, use and revoke the token."""
    scopes = ["read", *ADMIN_SCOPES]
    client_id, client_secret = await asyncio.to_thread(
        Mastodon.create_app, "kith-tests", scopes=scopes, api_base_url=live.base
    )
    api = await asyncio.to_thread(Mastodon, client_id=client_id, client_secret=client_secret, api_base_url=live.base)
    url = await asyncio.to_thread(api.auth_request_url, scopes=scopes, state="s", allow_http=True)
    assert url.startswith(live.base + "/oauth/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    async with httpx.AsyncClient(base_url=live.base) as http:
        page = await http.get(url)
        assert page.status_code == 200 and "kith-tests" in page.text
        shown = await http.post("/oauth/authorize", data={**query, "username": "ada", "password": PASSWORD})
    code = re.search(r'<code class="code">([^<]+)</code>', shown.text).group(1)

    token = await asyncio.to_thread(api.log_in, code=code, scopes=scopes, allow_http=True)
    assert token and (await asyncio.to_thread(api.account_verify_credentials)).username == "ada"
    assert (await asyncio.to_thread(api.app_verify_credentials)).name == "kith-tests"
    await asyncio.to_thread(api.admin_create_domain_block, "via-oauth.example", severity="suspend")
    assert [r.domain for r in await rows(live, domain_blocks)] == ["via-oauth.example"]

    await asyncio.to_thread(api.revoke_access_token, allow_http=True)
    stale = await asyncio.to_thread(Mastodon, access_token=token, api_base_url=live.base)
    with pytest.raises(mastodon.MastodonUnauthorizedError):
        await asyncio.to_thread(stale.account_verify_credentials)


async def test_admin_dashboard(live):
    """Mastodon.py's admin_measures, admin_dimensions and admin_retention read the dashboard of a small world."""
    from datetime import UTC, datetime

    from tests.test_dashboard import build_world

    await build_world(live.services)
    api = await admin_client(live)
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, 18, tzinfo=UTC)  # the time is ignored
    measures = await asyncio.to_thread(
        api.admin_measures, start, end, new_users=True, interactions=True, instance_follows="one.example"
    )
    got = {m.key: m for m in measures}
    assert (int(got["new_users"].total), int(got["new_users"].previous_total)) == (4, 1)  # Mastodon.py casts
    assert [int(d.value) for d in got["interactions"].data] == [2, 2, 1]
    assert int(got["instance_follows"].total) == 3
    assert got["new_users"].data[0].date == datetime(2026, 3, 1, tzinfo=UTC)  # parsed as a date-time
    dimensions = await asyncio.to_thread(
        api.admin_dimensions, start, end, servers=True, instance_accounts="two.example"
    )
    dims = {d.key: d for d in dimensions}
    assert (dims["servers"].data[0].key, int(dims["servers"].data[0].value)) == ("one.example", 3)
    assert {line.key for line in dims["instance_accounts"].data} == {"dave", "frank"}
    cohorts = await asyncio.to_thread(api.admin_retention, start, end)
    assert [int(c.data[-1].value) for c in cohorts] == [1, 1, 1]
    assert cohorts[0].data[1].rate == 0.5
