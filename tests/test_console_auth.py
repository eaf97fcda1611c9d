"""Signing in to the console: sessions, cookies, CSRF, throttling, sign-out, disabling, passwords, TOTP.

httpx against the app in-process, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
import pytest
import sqlalchemy as sa

from server import signin, throttle
from server.accounts import create_user
from server.db import Database
from server.oauth import create_user_token
from server.sessions import digest
from server.tables import sessions, sign_in_failures, totp_credentials
from server.web import csrf
from tests.console_helpers import csrf_of, page_csrf, sign_in
from tests.test_cli import kith

PASSWORD = "correct horse battery"


@pytest.fixture
async def mara(db: Database) -> str:
    await create_user(db, "mara", password=PASSWORD)
    return "mara"


# --------------------------------------------------------------------------- pure parts


def test_retry_after_counts_the_window():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    nine = [now - timedelta(minutes=m) for m in range(9)]
    assert throttle.retry_after(nine, now) == 0
    ten = [*nine, now - timedelta(minutes=10)]
    # The oldest of the ten leaves the 15-minute window in five minutes.
    assert throttle.retry_after(ten, now) == 300
    old = [now - timedelta(minutes=16)] * 20
    assert throttle.retry_after(old, now) == 0


def test_csrf_token_is_bound_to_the_visitor():
    token = csrf.token_for("secret", "session-a")
    assert csrf.is_valid("secret", "session-a", token)
    assert not csrf.is_valid("secret", "session-b", token)
    assert not csrf.is_valid("other", "session-a", token)
    assert not csrf.is_valid("secret", None, token)
    assert not csrf.is_valid("secret", "session-a", "")


# --------------------------------------------------------------------------- sign-in


async def test_login_page_headers_and_form(client: httpx.AsyncClient):
    r = await client.get("/login")
    assert r.status_code == 200
    assert 'name="username"' in r.text and 'name="password"' in r.text and ">Sign in</button>" in r.text
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["referrer-policy"] == "same-origin"
    assert "<script" not in r.text and "style=" not in r.text and "<style" not in r.text


async def test_sign_in_sets_a_server_side_session(client: httpx.AsyncClient, db: Database, mara: str):
    r = await sign_in(client, "mara", PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == "/console"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("kith_session="))
    attrs = cookie.lower()
    assert "httponly" in attrs and "samesite=lax" in attrs and "secure" in attrs
    token = client.cookies["kith_session"]
    async with db.read() as conn:
        stored = (await conn.execute(sa.select(sessions.c.token_hash))).scalars().all()
    assert stored == [digest(token)]  # only the hash is stored
    home = await client.get("/console")
    assert home.status_code == 200 and "Console" in home.text
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]


async def test_signing_in_again_ends_the_browsers_old_session(client: httpx.AsyncClient, db: Database, mara: str):
    form = {"username": "mara", "password": PASSWORD, "csrf": csrf_of((await client.get("/login")).text)}
    assert (await client.post("/login", data=form)).status_code == 303
    first = client.cookies["kith_session"]
    assert (await client.post("/login", data=form)).status_code == 303  # the form sent again, signed in
    assert client.cookies["kith_session"] != first
    async with db.read() as conn:
        stored = (await conn.execute(sa.select(sessions.c.token_hash))).scalars().all()
    assert stored == [digest(client.cookies["kith_session"])]


async def test_console_without_a_session_goes_to_login(client: httpx.AsyncClient):
    r = await client.get("/console")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/console")


async def test_login_without_csrf_is_403_and_signs_nobody_in(client: httpx.AsyncClient, db: Database, mara: str):
    await client.get("/login")
    r = await client.post("/login", data={"username": "mara", "password": PASSWORD})
    assert r.status_code == 403
    assert "kith_session" not in client.cookies
    async with db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(sessions))).scalar_one() == 0


async def test_wrong_password_and_unknown_account_read_the_same(client: httpx.AsyncClient, mara: str):
    wrong = await sign_in(client, "mara", "not the password")
    unknown = await sign_in(client, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong user name or password." in wrong.text and "Wrong user name or password." in unknown.text


async def test_eleventh_failure_is_throttled_per_account(client: httpx.AsyncClient, db: Database, mara: str):
    for _ in range(10):
        assert (await sign_in(client, "mara", "wrong password!")).status_code == 401
    r = await sign_in(client, "mara", PASSWORD)  # even the right password waits now
    assert r.status_code == 429
    assert 0 < int(r.headers["retry-after"]) <= 15 * 60
    assert "kith_session" not in client.cookies


async def test_throttle_per_address_covers_every_name(client: httpx.AsyncClient, mara: str):
    for i in range(10):
        assert (await sign_in(client, f"guess{i}", "wrong password!")).status_code == 401
    assert (await sign_in(client, "mara", PASSWORD)).status_code == 429


async def test_unknown_account_is_throttled_too(db: Database):
    for _ in range(10):
        assert (await signin.sign_in(db, "ghost", "x" * 12, address=f"10.0.0.{_}")).outcome == "refused"
    attempt = await signin.sign_in(db, "ghost", "x" * 12, address="10.0.1.1")
    assert attempt.outcome == "throttled" and attempt.retry_after > 0


async def test_success_clears_the_accounts_failures(client: httpx.AsyncClient, db: Database, mara: str):
    for _ in range(3):
        await sign_in(client, "mara", "wrong password!")
    assert (await sign_in(client, "mara", PASSWORD)).status_code == 303
    async with db.read() as conn:
        keys = (await conn.execute(sa.select(sign_in_failures.c.scope))).scalars().all()
    assert "account" not in keys and keys.count("address") == 3


async def test_next_is_only_a_console_path(client: httpx.AsyncClient, mara: str):
    page = await client.get("/login?next=https://evil.example/")
    r = await client.post(
        "/login",
        data={"username": "mara", "password": PASSWORD, "csrf": csrf_of(page.text), "next": "//evil.example/x"},
    )
    assert r.headers["location"] == "/console"


# --------------------------------------------------------------------------- sign-out, expiry, disabling


async def test_logout_needs_csrf_and_ends_the_session(client: httpx.AsyncClient, db: Database, mara: str):
    await sign_in(client, "mara", PASSWORD)
    token = client.cookies["kith_session"]
    refused = await client.post("/logout", data={})
    assert refused.status_code == 403
    assert (await client.get("/console")).status_code == 200  # still signed in
    r = await client.post("/logout", data={"csrf": await page_csrf(client)})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    async with db.read() as conn:
        assert (await conn.execute(sa.select(sessions).where(sessions.c.token_hash == digest(token)))).first() is None
    client.cookies.set("kith_session", token, domain="kith.test")  # an old cookie replayed
    assert (await client.get("/console")).status_code == 303


async def test_expired_session_is_refused(client: httpx.AsyncClient, db: Database, mara: str):
    await sign_in(client, "mara", PASSWORD)
    async with db.transaction() as conn:
        await conn.execute(sa.update(sessions).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert (await client.get("/console")).status_code == 303


async def test_disabled_account_loses_sessions_sign_in_and_tokens(client: httpx.AsyncClient, db: Database, mara: str):
    await sign_in(client, "mara", PASSWORD)
    issued = await create_user_token(db, "mara", "read")
    assert (await client.get("/console")).status_code == 200
    await signin.disable_account(db, "mara")
    assert (await client.get("/console")).status_code == 303
    client.cookies.clear()
    r = await sign_in(client, "mara", PASSWORD)
    assert r.status_code == 401 and "Wrong user name or password." in r.text
    api = await client.get("/api/v1/accounts/verify_credentials", headers={"Authorization": f"Bearer {issued.token}"})
    assert api.status_code == 401
    await signin.disable_account(db, "mara", False)
    assert (await sign_in(client, "mara", PASSWORD)).status_code == 303


async def test_admin_signs_a_user_out_everywhere(app, db: Database, mara: str):
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://kith.test") for _ in range(2)
    ]
    for c in clients:
        await sign_in(c, "mara", PASSWORD)
        assert (await c.get("/console")).status_code == 200
    assert await signin.sign_out_everywhere(db, "mara") == 2
    for c in clients:
        assert (await c.get("/console")).status_code == 303
        await c.aclose()


async def test_password_change_ends_other_sessions(app, client: httpx.AsyncClient, mara: str):
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://kith.test")
    await sign_in(other, "mara", PASSWORD)
    await sign_in(client, "mara", PASSWORD)
    token = await page_csrf(client, "/console/account")
    wrong = await client.post(
        "/console/account/password",
        data={"csrf": token, "current": "nope nope nope", "new": "n" * 12, "confirm": "n" * 12},
    )
    assert wrong.status_code == 400
    r = await client.post(
        "/console/account/password",
        data={"csrf": token, "current": PASSWORD, "new": "a new password", "confirm": "a new password"},
    )
    assert r.status_code == 200 and "Password changed." in r.text and "1 other session signed out" in r.text
    assert (await client.get("/console")).status_code == 200
    assert (await other.get("/console")).status_code == 303
    await other.aclose()
    client.cookies.clear()
    assert (await sign_in(client, "mara", PASSWORD)).status_code == 401
    assert (await sign_in(client, "mara", "a new password")).status_code == 303


# --------------------------------------------------------------------------- two-factor


async def test_totp_two_factor_sign_in_and_recovery_codes(client: httpx.AsyncClient, db: Database, mara: str):
    await sign_in(client, "mara", PASSWORD)
    token = await page_csrf(client, "/console/account")
    await client.post("/console/account/two-factor", data={"csrf": token})
    async with db.read() as conn:
        secret = (await conn.execute(sa.select(totp_credentials.c.secret))).scalar_one()
    bad = await client.post("/console/account/two-factor/confirm", data={"csrf": token, "code": "000000"})
    assert bad.status_code == 400
    r = await client.post("/console/account/two-factor/confirm", data={"csrf": token, "code": pyotp.TOTP(secret).now()})
    assert r.status_code == 200 and "Two-factor sign-in is on." in r.text
    recovery = re.findall(r"<code>([0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4})</code>", r.text)
    assert len(recovery) == 10

    client.cookies.clear()
    r = await sign_in(client, "mara", PASSWORD)
    assert r.status_code == 303 and r.headers["location"].startswith("/login/code")
    pending = await client.get("/console")  # the password alone opens nothing
    assert pending.status_code == 303 and pending.headers["location"].startswith("/login/code")
    code_page = await client.get("/login/code")
    wrong = await client.post("/login/code", data={"csrf": csrf_of(code_page.text), "code": "123456"})
    assert wrong.status_code == 401
    # The code accepted at setup was spent: it cannot sign in again (no replay).
    ok = await client.post("/login/code", data={"csrf": csrf_of(code_page.text), "code": recovery[0]})
    assert ok.status_code == 303
    assert (await client.get("/console")).status_code == 200

    client.cookies.clear()
    await sign_in(client, "mara", PASSWORD)
    code_page = await client.get("/login/code")
    again = await client.post("/login/code", data={"csrf": csrf_of(code_page.text), "code": recovery[0]})
    assert again.status_code == 401  # a recovery code works once
    async with db.read() as conn:
        stored = (await conn.execute(sa.text("SELECT code_hash FROM recovery_codes"))).scalars().all()
    assert len(stored) == 10 and all(recovery[0].replace("-", "") not in h for h in stored)


async def test_totp_code_is_used_once(db: Database, mara: str):
    async with db.transaction() as conn:
        user = await signin.accounts.get_user(conn, "mara")
        secret = await signin.two_factor.begin(conn, user.id)
        await signin.two_factor.confirm(conn, user.id, pyotp.TOTP(secret).now())
    async with db.transaction() as conn:
        # The same step's code was spent by the confirmation.
        assert not await signin.two_factor.verify(conn, user.id, pyotp.TOTP(secret).now())
        later = pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30))  # the next step's, within drift
        assert await signin.two_factor.verify(conn, user.id, later)
        assert not await signin.two_factor.verify(conn, user.id, later)


# --------------------------------------------------------------------------- the shell's hooks


async def test_kith_user_disable_sign_out_and_password(client: httpx.AsyncClient, settings, db: Database, mara: str):
    await sign_in(client, "mara", PASSWORD)
    assert (await client.get("/console")).status_code == 200
    out = kith(settings, "user", "sign-out", "mara")
    assert out.returncode == 0 and "signed mara out of 1 session" in out.stderr
    assert (await client.get("/console")).status_code == 303

    assert kith(settings, "user", "disable", "mara").returncode == 0
    assert (await sign_in(client, "mara", PASSWORD)).status_code == 401
    assert kith(settings, "user", "enable", "mara").returncode == 0
    assert (await sign_in(client, "mara", PASSWORD)).status_code == 303

    changed = kith(settings, "user", "password", "mara", "--password-stdin", stdin="another password\n")
    assert changed.returncode == 0, changed.stderr
    assert (await client.get("/console")).status_code == 303  # its sessions ended
    assert (await sign_in(client, "mara", "another password")).status_code == 303
    short = kith(settings, "user", "password", "mara", "--password-stdin", stdin="short\n")
    assert short.returncode != 0 and "at least 10 characters" in short.stderr
    assert kith(settings, "user", "disable", "nobody").returncode != 0
