"""The admin console, /console/admin: every action through the same domain functions as the CLI and API.

httpx against the app in-process, on SQLite and PostgreSQL: the 403s, CSRF on every POST,
domain blocks and the allowlist, the CSV import's preview and its background run, instance
reports, remote suspensions, local users, groups and the audit log.
"""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa

from server.accounts import create_user
from server.groups.membership import GroupSpec, create_group, get_group
from server.moderation import authority, modlog
from server.moderation.blocklist import imports, store
from server.moderation.blocklist.mastodon_csv import parse_csv
from server.moderation.blocklist.store import BLOCKS, BlockSpec
from server.sessions import count_for
from server.tables import admin_audit_log, blocklist_imports, domain_allows, domain_blocks, reports
from server.types import utcnow
from tests.console_helpers import csrf_of, page_csrf, sign_in

PASSWORD = "correct horse battery"
GROUP = "https://kith.test/groups/bookclub"


@pytest.fixture
async def admin(client: httpx.AsyncClient, db) -> httpx.AsyncClient:
    """The client, signed in as the admin ``ada``."""
    await create_user(db, "ada", admin=True, password=PASSWORD)
    r = await sign_in(client, "ada", PASSWORD)
    assert r.status_code == 303
    return client


async def token(client: httpx.AsyncClient, path: str = "/console/admin") -> str:
    return await page_csrf(client, path)


async def audit_rows(db) -> list[tuple[str, str, str]]:
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(admin_audit_log).order_by(admin_audit_log.c.id))).all()
    return [(r.actor, r.action, r.target) for r in rows]


async def blocks(db) -> dict[str, sa.Row]:
    async with db.read() as conn:
        return {r.domain: r for r in (await conn.execute(sa.select(domain_blocks))).all()}


# --------------------------------------------------------------------------- who gets in

ADMIN_PAGES = [
    "/console/admin",
    "/console/admin/health",
    "/console/admin/domains",
    "/console/admin/import",
    "/console/admin/reports",
    "/console/admin/accounts",
    "/console/admin/users",
    "/console/admin/groups",
    "/console/admin/log",
    "/console/admin/domains/export.csv",
]


async def test_a_user_who_is_not_an_admin_gets_a_403_page(client, db):
    await create_user(db, "mara", password=PASSWORD)
    await sign_in(client, "mara", PASSWORD)
    csrf = await page_csrf(client, "/console")
    for path in ADMIN_PAGES:
        r = await client.get(path)
        assert r.status_code == 403, path
        assert "admins only" in r.text and "<h1>403 Forbidden</h1>" in r.text  # a real page
    r = await client.post("/console/admin/domains", data={"csrf": csrf, "domain": "spam.example"})
    assert r.status_code == 403 and await blocks(db) == {}
    r = await client.post("/console/admin/users/mara/make-admin", data={"csrf": csrf})
    assert r.status_code == 403
    assert "Admin" not in (await client.get("/console")).text.split("<main")[0]  # no admin link in the nav


async def test_signed_out_visitors_are_sent_to_sign_in_and_posts_refused(client, db):
    r = await client.get("/console/admin/domains")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/console/admin/domains"
    r = await client.post("/console/admin/domains", data={"domain": "spam.example"})
    assert r.status_code == 403 and await blocks(db) == {}


POSTS = [
    ("/console/admin/domains", {"domain": "spam.example", "severity": "suspend"}),
    ("/console/admin/allows", {"domain": "friends.example"}),
    ("/console/admin/mode", {"mode": "allowlist"}),
    ("/console/admin/import", {"text": "spam.example\n"}),
    ("/console/admin/accounts", {"uri": "https://mastodon.example/users/alice", "suspend": "1"}),
    ("/console/admin/users", {"name": "newbie"}),
    ("/console/admin/users/ada/sign-out", {}),
    ("/console/admin/groups", {"name": "bookclub"}),
]


@pytest.mark.parametrize(("path", "data"), POSTS, ids=[p for p, _ in POSTS])
async def test_a_post_without_a_valid_csrf_token_changes_nothing(admin, db, path, data):
    before = await audit_rows(db)
    for csrf in (None, "forged"):
        form = {**data, **({"csrf": csrf} if csrf else {})}
        r = await admin.post(path, data=form)
        assert r.status_code == 403 and "CSRF" in r.text
    assert await audit_rows(db) == before and await blocks(db) == {}
    async with db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(blocklist_imports))).scalar_one() == 0
        assert await store.federation_mode(conn) == "open"
    assert (await admin.get("/console/admin/users")).text.count("newbie") == 0
    # The session is still there: the same form with its token works.
    assert (await admin.get("/console/admin")).status_code == 200


async def test_admin_pages_have_the_console_headers_and_no_inline_script(admin):
    for path in ADMIN_PAGES[:-1]:
        r = await admin.get(path)
        assert r.status_code == 200, path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "<script>" not in r.text and " style=" not in r.text and "<style" not in r.text
        # Every field has a label.
        for field_id in __import__("re").findall(r'<(?:input|select|textarea)[^>]* id="([^"]+)"', r.text):
            assert f'for="{field_id}"' in r.text, (path, field_id)


# --------------------------------------------------------------------------- domain blocks


async def test_block_edit_and_lift_a_domain(admin, db, services):
    csrf = await token(admin, "/console/admin/domains")
    page = (await admin.get("/console/admin/domains")).text
    assert '<label for="domain">Domain</label>' in page and ">Block</button>" in page
    r = await admin.post(
        "/console/admin/domains",
        data={
            "csrf": csrf,
            "domain": "Spam.Example",
            "severity": "silence",
            "reject_media": "on",
            "public_comment": "spam",
            "private_comment": "seen in reports 3 and 4",
        },
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/console/admin/domains?notice=blocked")
    row = (await blocks(db))["spam.example"]
    assert (row.severity, row.reject_media, row.reject_reports, row.obfuscate) == ("silence", True, False, False)
    assert (row.public_comment, row.private_comment) == ("spam", "seen in reports 3 and 4")
    assert services.blocklist.policy.is_silenced("spam.example")  # this process acts on it at once
    listing = (await admin.get(r.headers["location"])).text
    assert "Blocked spam.example." in listing and "/console/admin/domains/" in listing

    r = await admin.post(
        f"/console/admin/domains/{row.id}", data={"csrf": csrf, "severity": "suspend", "obfuscate": "on"}
    )
    assert r.status_code == 303
    row = (await blocks(db))["spam.example"]
    assert (row.severity, row.reject_media, row.obfuscate, row.public_comment) == ("suspend", False, True, "")
    assert services.is_blocked("a.spam.example")
    assert "Block of spam.example" in (await admin.get(f"/console/admin/domains/{row.id}")).text

    r = await admin.post(f"/console/admin/domains/{row.id}/lift", data={"csrf": csrf})
    assert r.status_code == 303 and await blocks(db) == {} and not services.is_blocked("spam.example")
    assert await audit_rows(db) == [
        ("ada", "domain_block.create", "spam.example"),
        ("ada", "domain_block.update", "spam.example"),
        ("ada", "domain_block.delete", "spam.example"),
    ]
    # GET never changes anything.
    assert (await admin.get(f"/console/admin/domains/{row.id}/lift")).status_code == 405


async def test_a_domain_that_is_not_one_is_a_422_with_the_reason(admin, db):
    csrf = await token(admin)
    for bad, why in (("com", "two labels"), ("", "blank"), ("ex ample.com", "not a domain")):
        r = await admin.post("/console/admin/domains", data={"csrf": csrf, "domain": bad})
        assert r.status_code == 422 and why in r.text, bad
    r = await admin.post("/console/admin/domains", data={"csrf": csrf, "domain": "x.example", "severity": "nuke"})
    assert r.status_code == 422 and "severity must be one of" in r.text
    await admin.post("/console/admin/domains", data={"csrf": csrf, "domain": "x.example"})
    r = await admin.post("/console/admin/domains", data={"csrf": csrf, "domain": "x.example"})
    assert r.status_code == 422 and "already blocked" in r.text
    assert list(await blocks(db)) == ["x.example"]


async def test_a_block_from_the_form_closes_the_inbox_to_that_domain(admin, db, services, mastodon, worker):
    await create_group(services.db, GroupSpec(name="bookclub"))
    r = await mastodon.post(admin, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    assert r.status_code == 202
    csrf = await token(admin, "/console/admin/domains")
    await admin.post("/console/admin/domains", data={"csrf": csrf, "domain": "mastodon.example", "severity": "suspend"})
    r = await mastodon.post(admin, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    assert r.status_code == 403


async def test_allowlist_and_mode(admin, db, services):
    csrf = await token(admin)
    r = await admin.post("/console/admin/allows", data={"csrf": csrf, "domain": "friends.example"})
    assert r.status_code == 303
    r = await admin.post("/console/admin/mode", data={"csrf": csrf, "mode": "allowlist"})
    assert r.status_code == 303
    assert services.is_blocked("stranger.example") and not services.is_blocked("a.friends.example")
    page = (await admin.get("/console/admin/domains")).text
    assert "friends.example" in page and 'value="allowlist" checked' in page
    r = await admin.post("/console/admin/mode", data={"csrf": csrf, "mode": "closed"})
    assert r.status_code == 400 and "mode must be one of" in r.text
    async with db.read() as conn:
        allow_id = (await conn.execute(sa.select(domain_allows.c.id))).scalar_one()
    await admin.post(f"/console/admin/allows/{allow_id}/remove", data={"csrf": csrf})
    await admin.post("/console/admin/mode", data={"csrf": csrf, "mode": "open"})
    assert not services.is_blocked("stranger.example")
    assert [a for _, a, _ in await audit_rows(db)] == [
        "domain_allow.create",
        "federation.mode",
        "domain_allow.delete",
        "federation.mode",
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/console/admin/domains?max_id=%C2%B2",  # "²": str.isdigit says yes, int() says no
        "/console/admin/domains?max_id=99999999999",  # past the ids' 32 bits (PostgreSQL refuses it)
        "/console/admin/health?page=" + "9" * 5000,
        "/console/admin/domains/99999999999",
        "/console/admin/domains/%C2%B2",
        "/console/admin/domains/" + "1" * 30,
    ],
)
async def test_hostile_ids_and_cursors_are_a_400(admin, path):
    r = await admin.get(path)
    assert r.status_code == 400, (path, r.status_code)


async def test_blocks_are_paged(admin, db):
    for i in range(55):
        await store.create(db, BLOCKS, BlockSpec(f"d{i:02}.example"), actor="cli")
    first = (await admin.get("/console/admin/domains")).text
    assert "d54.example" in first and "d04.example" not in first and "(55)" in first
    older = first.split('href="/console/admin/domains?max_id=')[1].split('"')[0].split("#")[0]
    second = (await admin.get(f"/console/admin/domains?max_id={older}")).text
    assert "d04.example" in second and "d00.example" in second and "d54.example" not in second
    assert (await admin.get("/console/admin/domains?max_id=x")).status_code == 400


async def test_export_is_mastodons_csv(admin, db):
    await store.create(db, BLOCKS, BlockSpec("spam.example", "silence", reject_media=True), actor="cli")
    r = await admin.get("/console/admin/domains/export.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    specs, refused = parse_csv(r.text)
    assert refused == [] and [(s.domain, s.severity, s.reject_media) for _, s in specs] == [
        ("spam.example", "silence", True)
    ]


# --------------------------------------------------------------------------- the CSV import

CSV = (
    "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"
    "kept.example,suspend,false,false,,false\n"
    "changed.example,suspend,true,false,spam,false\n"
    "new.example,silence,false,false,,false\n"
    "com,suspend,false,false,,false\n"
    "ex*mple.org,suspend,false,false,,true\n"
)


async def test_import_previews_exactly_then_applies_in_the_background(admin, db, worker):
    await store.create(db, BLOCKS, BlockSpec("kept.example"), actor="cli")
    await store.create(db, BLOCKS, BlockSpec("changed.example", "silence", private_comment="ours"), actor="cli")
    csrf = await token(admin, "/console/admin/import")
    r = await admin.post(
        "/console/admin/import", data={"csrf": csrf}, files={"file": ("blocklist.csv", CSV.encode(), "text/csv")}
    )
    assert r.status_code == 303
    job = r.headers["location"]
    page = (await admin.get(job)).text
    assert "Nothing has changed yet" in page
    for section, count in (("Added", 1), ("Changed", 1), ("Unchanged", 1), ("Refused", 2)):
        assert f"{section} ({count})" in page
    assert "severity: <del>silence</del> → <ins>suspend</ins>" in page
    assert "reject media: <del>no</del> → <ins>yes</ins>" in page
    assert "two labels" in page and "obfuscated domain" in page
    # Previewing changed nothing.
    assert set(await blocks(db)) == {"kept.example", "changed.example"}

    apply = job + "/apply"
    fingerprint = page.split('name="fingerprint" value="')[1].split('"')[0]
    r = await admin.post(apply, data={"csrf": csrf, "fingerprint": fingerprint})
    assert r.status_code == 303
    progress = (await admin.get(job + "/progress")).json()
    assert progress["state"] == "queued" and progress["done"] == 0 and progress["total"] == 3
    queued = (await admin.get(job)).text
    assert "<progress" in queued and 'http-equiv="refresh"' in queued and "/static/admin.js" in queued
    await worker.drain()
    progress = (await admin.get(job + "/progress")).json()
    assert progress == {"state": "done", "done": 3, "total": 3, "percent": 100, "added": 1, "updated": 2, "error": None}
    finished = (await admin.get(job)).text
    assert "Done: 1 blocks added, 2 updated, 2 lines refused" in finished and "http-equiv" not in finished
    stored = await blocks(db)
    assert stored["new.example"].severity == "silence"
    assert (stored["changed.example"].severity, stored["changed.example"].private_comment) == ("suspend", "ours")
    # Applied once only.
    r = await admin.post(apply, data={"csrf": csrf, "fingerprint": fingerprint})
    assert r.status_code == 400 and "already applied" in r.text


async def test_an_import_whose_preview_went_stale_is_not_applied(admin, db, worker):
    csrf = await token(admin, "/console/admin/import")
    r = await admin.post("/console/admin/import", data={"csrf": csrf, "text": "new.example,suspend\n"})
    job = r.headers["location"]
    page = (await admin.get(job)).text
    fingerprint = page.split('name="fingerprint" value="')[1].split('"')[0]
    await store.create(db, BLOCKS, BlockSpec("new.example"), actor="cli")  # meanwhile, from the shell
    r = await admin.post(job + "/apply", data={"csrf": csrf, "fingerprint": fingerprint})
    assert r.status_code == 303 and "notice=stale" in r.headers["location"]
    again = (await admin.get(r.headers["location"])).text
    assert "nothing was applied" in again and "Unchanged (1)" in again and "Added (0)" in again
    assert (await admin.get(job + "/progress")).json()["state"] == "preview"
    r = await admin.post(job + "/discard", data={"csrf": csrf})
    assert r.status_code == 303 and (await admin.get(job)).status_code == 404


async def test_import_refuses_an_empty_or_binary_file(admin):
    csrf = await token(admin, "/console/admin/import")
    r = await admin.post("/console/admin/import", data={"csrf": csrf, "text": ""})
    assert r.status_code == 400 and "no blocklist lines" in r.text
    r = await admin.post(
        "/console/admin/import", data={"csrf": csrf}, files={"file": ("x.csv", b"\xff\xfe\x00bad", "text/csv")}
    )
    assert r.status_code == 400 and "UTF-8" in r.text


async def test_an_interrupted_import_resumes_where_it_stopped(db, services):
    text = "".join(f"d{i}.example,suspend\n" for i in range(10))
    import_id = await imports.upload(db, text, actor="ada")
    await imports.apply(db, import_id)
    # A worker died after four lines: their blocks and the progress were committed together.
    specs, _ = parse_csv(text)
    async with db.transaction() as conn:
        for _, spec in specs[:4]:
            await store.put_block(conn, spec, actor="ada", detail={})
        await conn.execute(sa.update(blocklist_imports).values(done=4, added=4))
    from server.jobs import build_worker

    await build_worker(services).drain()
    item = await imports.get_import(db, import_id)
    assert (item.state, item.done, item.added, item.updated) == ("done", 10, 10, 0)
    assert len(await blocks(db)) == 10
    assert sum(1 for _, action, _ in await audit_rows(db) if action == "domain_block.create") == 10


def test_preview_compares_line_after_line():
    specs, refused = parse_csv("a.example,suspend\na.example,silence\nb.example,noop\n")
    current = {"b.example": {k: getattr(BlockSpec("b.example", "noop"), k) for k in store.IMPORTED_SETTINGS}}
    preview = imports.compare(specs, refused, current)
    assert [c.spec.domain for c in preview.added] == ["a.example"]
    assert [(c.spec.domain, c.fields, c.before) for c in preview.changed] == [
        ("a.example", ("severity",), {"severity": "suspend"})
    ]
    assert [c.spec.domain for c in preview.unchanged] == ["b.example"] and preview.total == 3


# --------------------------------------------------------------------------- reports and accounts


async def add_report(db, *, group_id=None, target="https://mastodon.example/users/alice", comment="spam") -> int:
    now = utcnow()
    async with db.transaction() as conn:
        result = await conn.execute(
            sa.insert(reports)
            .values(
                group_id=group_id,
                reporter="https://friends.example/users/bob",
                target_account=target,
                target_posts=json.dumps([]),
                comment=comment,
                state="open",
                action_taken="",
                forwarded=False,
                outgoing=False,
                created_at=now,
                updated_at=now,
            )
            .returning(reports.c.id)
        )
        return int(result.scalar_one())


async def test_instance_reports_resolve_reject_reopen_and_suspend(admin, db, services, mastodon, client):
    await create_group(db, GroupSpec(name="bookclub"))
    async with db.read() as conn:
        group_id = (await get_group(conn, "bookclub")).id
    # alice is known (she followed), so her account can be suspended.
    await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    first = await add_report(db, comment="first report")
    second = await add_report(db, comment="second report")
    await add_report(db, group_id=group_id, comment="about the group")
    page = (await admin.get("/console/admin/reports")).text
    assert "first report" in page and "second report" in page and "about the group" not in page
    csrf = csrf_of(page)
    r = await admin.post(f"/console/admin/reports/{first}/resolve", data={"csrf": csrf})
    assert r.status_code == 303
    r = await admin.post(f"/console/admin/reports/{second}/reject", data={"csrf": csrf})
    assert r.status_code == 303
    assert "No open reports" in (await admin.get("/console/admin/reports")).text
    closed = (await admin.get("/console/admin/reports?view=closed")).text
    assert "resolved" in closed and "rejected" in closed
    await admin.post(f"/console/admin/reports/{second}/reopen", data={"csrf": csrf})
    r = await admin.post(f"/console/admin/reports/{second}/suspend", data={"csrf": csrf, "reason": "spam wave"})
    assert r.status_code == 303
    alice = mastodon.actor_uri("alice")
    assert services.blocklist.policy.actor_suspended(alice)
    async with db.read() as conn:
        query = sa.select(reports.c.state, reports.c.action_taken).where(reports.c.id == second)
        state = (await conn.execute(query)).one()
    assert tuple(state) == ("resolved", "suspend")
    assert ("ada", "account.suspend", alice) in await audit_rows(db)
    assert (await admin.post("/console/admin/reports/999/resolve", data={"csrf": csrf})).status_code == 404


async def test_suspend_and_unsuspend_a_remote_account(admin, db, services, mastodon, client):
    await create_group(db, GroupSpec(name="bookclub"))
    await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    alice = mastodon.actor_uri("alice")
    csrf = await token(admin, "/console/admin/accounts")
    r = await admin.post("/console/admin/accounts", data={"csrf": csrf, "uri": alice, "suspend": "1", "reason": "spam"})
    assert r.status_code == 303 and services.blocklist.policy.actor_suspended(alice)
    page = (await admin.get("/console/admin/accounts")).text
    assert "@alice@mastodon.example" in page and "Unsuspend" in page
    r = await admin.post("/console/admin/accounts", data={"csrf": csrf, "uri": alice, "suspend": "0"})
    assert r.status_code == 303 and not services.blocklist.policy.actor_suspended(alice)
    r = await admin.post(
        "/console/admin/accounts", data={"csrf": csrf, "uri": "https://nowhere.example/u/x", "suspend": "1"}
    )
    assert r.status_code == 404 and "no known remote account" in r.text
    assert [a for _, a, _ in await audit_rows(db)] == ["account.suspend", "account.unsuspend"]


# --------------------------------------------------------------------------- users and groups


async def test_create_users_make_admin_disable_and_sign_out(admin, db, client):
    csrf = await token(admin, "/console/admin/users")
    r = await admin.post("/console/admin/users", data={"csrf": csrf, "name": "Mara"})
    assert r.status_code == 200 and "mara was created" in r.text
    generated = r.text.split('<code class="secret">')[1].split("<")[0]
    noor = {"csrf": csrf, "name": "noor", "password": PASSWORD, "admin": "on"}
    r = await admin.post("/console/admin/users", data=noor)
    assert r.status_code == 303
    r = await admin.post("/console/admin/users", data={"csrf": csrf, "name": "noor", "password": PASSWORD})
    assert r.status_code in (400, 409, 422) and "noor" in r.text

    # mara signs in elsewhere with the generated password.
    async with httpx.AsyncClient(transport=client._transport, base_url="https://kith.test") as elsewhere:
        assert (await sign_in(elsewhere, "mara", generated)).status_code == 303
        assert (await elsewhere.get("/console")).status_code == 200
        r = await admin.post("/console/admin/users/mara/make-admin", data={"csrf": csrf})
        assert r.status_code == 303
        assert (await elsewhere.get("/console/admin")).status_code == 200
        r = await admin.post("/console/admin/users/mara/sign-out", data={"csrf": csrf})
        assert r.status_code == 303
        assert (await elsewhere.get("/console")).status_code == 303  # signed out
        assert (await sign_in(elsewhere, "mara", generated)).status_code == 303
        r = await admin.post("/console/admin/users/mara/disable", data={"csrf": csrf})
        assert r.status_code == 303
        assert (await elsewhere.get("/console")).status_code == 303
        assert (await sign_in(elsewhere, "mara", generated)).status_code == 401
        await admin.post("/console/admin/users/mara/enable", data={"csrf": csrf})
        await admin.post("/console/admin/users/mara/revoke-admin", data={"csrf": csrf})
        assert (await sign_in(elsewhere, "mara", generated)).status_code == 303
        assert (await elsewhere.get("/console/admin")).status_code == 403

    # No locking oneself out.
    for action in ("disable", "revoke-admin"):
        r = await admin.post(f"/console/admin/users/ada/{action}", data={"csrf": csrf})
        assert r.status_code == 400 and "lock yourself out" in r.text
    assert (await admin.get("/console/admin")).status_code == 200
    assert (await admin.post("/console/admin/users/ghost/disable", data={"csrf": csrf})).status_code == 404
    assert [a for _, a, t in await audit_rows(db)] == [
        "user.create",
        "user.create",
        "user.make-admin",
        "user.sign-out",
        "user.disable",
        "user.enable",
        "user.revoke-admin",
    ]
    async with db.read() as conn:
        from server.accounts import get_user

        assert await count_for(conn, (await get_user(conn, "ada")).id) == 1


async def test_create_a_group_and_hand_it_over(admin, db, services):
    await create_user(db, "mara", password=PASSWORD)
    await create_user(db, "noor", password=PASSWORD)
    csrf = await token(admin, "/console/admin/groups")
    r = await admin.post(
        "/console/admin/groups",
        data={"csrf": csrf, "name": "bookclub", "title": "Book club", "owner": "mara", "approval": "manual"},
    )
    assert r.status_code == 303
    async with db.read() as conn:
        group = await get_group(conn, "bookclub")
        assert (group.title, group.approval) == ("Book club", "manual")
        assert await authority.moderator_names(conn, group.id) == [("mara", "owner")]
    page = (await admin.get("/console/admin/groups")).text
    assert "Book club" in page and "mara" in page and 'for="owner-bookclub"' in page

    r = await admin.post("/console/admin/groups/bookclub/transfer", data={"csrf": csrf, "owner": "noor"})
    assert r.status_code == 303
    async with db.read() as conn:
        assert sorted(await authority.moderator_names(conn, group.id)) == [("mara", "moderator"), ("noor", "owner")]
        logged = [(e.moderator, e.action) for e in await modlog.entries(conn, group.id)]
    assert ("ada", "transfer_ownership") in logged
    r = await admin.post("/console/admin/groups/bookclub/transfer", data={"csrf": csrf, "owner": "noor"})
    assert r.status_code == 400 and "already owns" in r.text
    r = await admin.post("/console/admin/groups/bookclub/transfer", data={"csrf": csrf, "owner": "ghost"})
    assert r.status_code == 404
    r = await admin.post("/console/admin/groups", data={"csrf": csrf, "name": "bookclub"})
    assert r.status_code in (400, 409, 422)
    assert [(a, t) for _, a, t in await audit_rows(db)] == [
        ("group.create", "bookclub"),
        ("group.transfer", "bookclub"),
    ]


async def test_the_audit_log_is_paged(admin, db):
    for i in range(60):
        async with db.transaction() as conn:
            await store.audit(conn, actor="cli", action="domain_block.create", target=f"t{i:02}.example")
    first = (await admin.get("/console/admin/log")).text
    assert "t59.example" in first and "t09.example" not in first
    older = first.split("/console/admin/log?max_id=")[1].split('"')[0]
    assert "t09.example" in (await admin.get(f"/console/admin/log?max_id={older}")).text
    assert "t59.example" in (await admin.get("/console/admin")).text  # the overview's latest changes


# --------------------------------------------------------------------------- the same functions from the shell


def test_the_shell_makes_admins_and_hands_groups_over(settings):
    from tests.test_cli import kith

    assert kith(settings, "user", "create", "mara").returncode == 0
    assert kith(settings, "user", "create", "noor").returncode == 0
    assert kith(settings, "group", "create", "bookclub", "--owner", "mara").returncode == 0
    made = kith(settings, "user", "make-admin", "noor")
    assert made.returncode == 0 and "noor is now an admin" in made.stderr
    moved = kith(settings, "group", "transfer", "bookclub", "noor")
    assert moved.returncode == 0 and "noor now owns bookclub" in moved.stdout
    again = kith(settings, "group", "transfer", "bookclub", "noor")
    assert again.returncode != 0 and "already owns" in again.stderr
    assert kith(settings, "user", "revoke-admin", "noor").returncode == 0
    shown = kith(settings, "user", "make-admin", "ghost")
    assert shown.returncode != 0 and "ghost" in shown.stderr


async def test_a_new_owner_who_did_not_lead_the_group_is_announced_to_its_members(
    admin, db, services, worker, mastodon, client
):
    await create_user(db, "mara", password=PASSWORD)
    await create_user(db, "noor", password=PASSWORD)
    await create_group(db, GroupSpec(name="bookclub", owner="mara"))
    await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    await worker.drain()
    mastodon.received.clear()
    csrf = await token(admin, "/console/admin/groups")
    r = await admin.post("/console/admin/groups/bookclub/transfer", data={"csrf": csrf, "owner": "noor"})
    assert r.status_code == 303
    await worker.drain()
    added = [x.activity for x in mastodon.received if x.activity.get("type") == "Announce"]
    inner = [a["object"] for a in added if isinstance(a.get("object"), dict)]
    assert any(
        o.get("type") == "Add"
        and o.get("object") == "https://kith.test/users/noor"
        and o.get("actor", "").endswith("/ada")
        for o in inner
    ), added
    # Back to mara, who leads it already (as a moderator now): nothing new to announce.
    mastodon.received.clear()
    await admin.post("/console/admin/groups/bookclub/transfer", data={"csrf": csrf, "owner": "mara"})
    await worker.drain()
    assert not [x for x in mastodon.received if x.activity.get("type") == "Announce"]
