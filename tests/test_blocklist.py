"""Instance federation policy: the matcher, every door, the effects of a suspension, CSV, audit."""

import json

import pytest
import sqlalchemy as sa

from server.errors import Unprocessable
from server.federation.client import FetchRefused
from server.federation.delivery import enqueue
from server.groups.following import count_members
from server.groups.membership import get_group
from server.moderation.blocklist.mastodon_csv import export_csv, import_csv, parse_csv
from server.moderation.blocklist.matcher import Block, DomainPolicy, normalize_domain, obfuscated
from server.moderation.blocklist.store import (
    ALLOWS,
    BLOCKS,
    AllowSpec,
    BlockSpec,
    create,
    delete,
    page,
    set_account_suspended,
    set_federation_mode,
    update_block,
)
from server.tables import admin_audit_log, deliveries, posts

GROUP = "https://kith.test/groups/bookclub"
AP = {"Accept": "application/activity+json"}


# ---------------------------------------------------------------- the pure matcher


def test_block_covers_subdomains_most_specific_first():
    policy = DomainPolicy(
        blocks={"example.com": Block("example.com", "suspend"), "ok.example.com": Block("ok.example.com", "noop")}
    )
    assert policy.is_suspended("example.com") and policy.is_suspended("a.b.example.com")
    assert not policy.is_suspended("ok.example.com") and not policy.is_suspended("sub.ok.example.com")
    assert not policy.is_suspended("notexample.com") and not policy.is_suspended("example.com.evil")


def test_severities_and_flags():
    policy = DomainPolicy(
        blocks={
            "s.example": Block("s.example", "silence", reject_reports=True),
            "n.example": Block("n.example", "noop", reject_media=True),
        }
    )
    assert policy.is_silenced("x.s.example") and not policy.is_suspended("s.example")
    assert policy.rejects_reports("s.example") and not policy.rejects_media("s.example")
    assert policy.rejects_media("n.example") and not policy.is_silenced("n.example")


def test_allowlist_mode():
    policy = DomainPolicy(allows=frozenset({"friends.example"}), allowlist_mode=True)
    assert not policy.is_suspended("friends.example") and not policy.is_suspended("a.friends.example")
    assert policy.is_suspended("stranger.example")
    assert not DomainPolicy(allows=frozenset({"friends.example"})).is_suspended("stranger.example")


@pytest.mark.parametrize(
    ("raw", "domain"),
    [
        ("Example.COM", "example.com"),
        ("*.example.com", "example.com"),
        ("https://example.com/x", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("example.com.", "example.com"),
    ],
)
def test_normalize_domain(raw, domain):
    assert normalize_domain(raw) == domain


@pytest.mark.parametrize("raw", ["", "ex*mple.com", "a b.com", ".example.com", "a..b"])
def test_normalize_domain_refuses(raw):
    with pytest.raises(Unprocessable):
        normalize_domain(raw)


# Issue 12 item 8: what is not a server's host is refused at every door, with the reason.
NOT_DOMAINS = {
    "123": "top-level label is all digits",
    "xn--zz": "invalid a-label",
    "-bad-.example": "hyphen",
    "exa mple.com": "u+0020 not allowed",
    "a..b": "empty label",
    "example.123": "top-level label is all digits",
    "com": "at least two labels",
    "ab--cd.example": "hyphens in 3rd and 4th position",
    "under_score.example": "u+005f not allowed",
}
DOMAINS = {
    "münchen.de": "xn--mnchen-3ya.de",
    "MÜNCHEN.DE": "xn--mnchen-3ya.de",
    "sub.example.co.uk": "sub.example.co.uk",
    "xn--mnchen-3ya.de": "xn--mnchen-3ya.de",
    "ｅｘａｍｐｌｅ．com": "example.com",  # full-width forms map as UTS 46 says
    "example.com:8443": "example.com",
    "203.0.113.9": "203.0.113.9",
    "[2001:DB8::0:1]:443": "2001:db8::1",
}


@pytest.mark.parametrize(("raw", "why"), NOT_DOMAINS.items())
def test_normalize_domain_says_why_it_refuses(raw, why):
    with pytest.raises(Unprocessable) as refused:
        normalize_domain(raw)
    assert refused.value.reason.startswith(f"{raw!r} is not a domain: ")
    assert why in refused.value.reason.lower()


@pytest.mark.parametrize(("raw", "domain"), DOMAINS.items())
def test_normalize_domain_accepts_hosts(raw, domain):
    assert normalize_domain(raw) == domain


def test_a_block_on_an_address_covers_that_address_only():
    policy = DomainPolicy(blocks={"203.0.113.9": Block("203.0.113.9", "suspend"), "0.2": Block("0.2", "suspend")})
    assert policy.is_suspended("203.0.113.9")
    assert not policy.is_suspended("198.51.100.2")  # "0.2" is no parent of an address
    v6 = DomainPolicy(blocks={"2001:db8::1": Block("2001:db8::1", "suspend")})
    assert v6.is_suspended("2001:DB8:0::1") and not v6.is_suspended("2001:db8::2")


def test_csv_lines_that_are_not_domains_are_skipped_with_the_reason():
    lines = [*NOT_DOMAINS, "münchen.de", "sub.example.co.uk"]
    specs, skipped = parse_csv("\n".join(f"{d},suspend,false,false,,false" for d in lines) + "\n")
    assert [(n, s.domain) for n, s in specs] == [(10, "xn--mnchen-3ya.de"), (11, "sub.example.co.uk")]
    assert [(n, d) for n, d, _ in skipped] == [(n, d) for n, d in enumerate(NOT_DOMAINS, start=1)]
    for (_, domain, reason), why in zip(skipped, NOT_DOMAINS.values(), strict=True):
        assert reason.startswith(f"{domain!r} is not a domain: ") and why in reason.lower()


def test_obfuscation_hides_letters_but_keeps_shape():
    assert obfuscated("mastodon.social") == "mast****.***ial"
    assert len(obfuscated("example.com")) == len("example.com")


def test_parse_real_blocklist_shapes():
    text = (
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"
        "bad.example,suspend,false,false,Harassment,false\n"
        '*.spam.example,silence,true,false,"Spam, lots",false\n'
        "ex*mple.org,suspend,false,false,,true\n"
        "odd.example,quarantine,false,false,,false\n"
    )
    specs, skipped = parse_csv(text)
    assert [(s.domain, s.severity, s.reject_media, s.public_comment) for _, s in specs] == [
        ("bad.example", "suspend", False, "Harassment"),
        ("spam.example", "silence", True, "Spam, lots"),
    ]
    assert [(line, reason.split(":")[0]) for line, _, reason in skipped] == [
        (4, "obfuscated domain"),
        (5, "severity must be one of suspend, silence, noop"),
    ]
    # Mastodon's plain export without a header: one domain per line.
    specs, skipped = parse_csv("plain.example\nother.example\n")
    assert [s.domain for _, s in specs] == ["plain.example", "other.example"] and skipped == []


# ---------------------------------------------------------------- the doors


async def members(services) -> int:
    async with services.db.read() as conn:
        from server.groups.membership import get_group

        return await count_members(conn, (await get_group(conn, "bookclub")).id)


async def test_suspend_acts_at_every_door(client, services, worker, mastodon, network, world):
    other = world.social  # bob's server
    # A post by alice is announced (its fan-outs still queued), and a delivery to her inbox is queued.
    note = mastodon.note("alice", "<p>before the block</p>", to_group=GROUP)
    await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    inbox_only = type(worker)(services.db, [worker.kinds[0]])
    await inbox_only.drain()  # processed, Announces queued but not sent
    async with services.db.transaction() as conn:
        group = await get_group(conn, "bookclub")
        direct = {"id": "https://kith.test/activities/direct", "type": "Accept", "actor": GROUP}
        await enqueue(conn, services.db, activity=direct, actor_id=group.id, inboxes=["https://mastodon.example/inbox"])

    _, stats = await create(services.db, BLOCKS, BlockSpec("mastodon.example", "suspend"), actor="admin1")
    await services.blocklist.reload()
    assert stats["memberships_removed"] == 1 and stats["posts_hidden"] == 1 and stats["deliveries_dropped"] == 1
    assert await members(services) == 1
    async with services.db.read() as conn:
        dropped = (await conn.execute(sa.select(deliveries).where(deliveries.c.domain == "mastodon.example"))).all()
    assert sorted(d.state for d in dropped) == ["dead", "done"]  # the queued one dropped; her Accept went before

    # Nothing goes out to it: the worker sends to bob's server only.
    mastodon.received.clear()
    await worker.drain()
    assert mastodon.received == [] and len(other.of_type("Announce")) == 2

    # Nothing comes in: refused before any key fetch.
    fetches = len(network.sent_to("mastodon.example"))
    r = await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    assert r.status_code == 403 and len(network.sent_to("mastodon.example")) == fetches
    # Nothing is fetched from it, subdomains included.
    with pytest.raises(FetchRefused):
        await services.fetcher.get_json("https://media.mastodon.example/x")
    # Signed GETs from it are refused; unsigned and others' are served.
    signed = mastodon.signed_headers("alice", GROUP, b"")
    r = await client.get(GROUP, headers={**AP, "signature": signed.get("signature", signed.get("Signature"))})
    assert r.status_code == 403
    assert (await client.get(GROUP, headers=AP)).status_code == 200
    # Its post is hidden from the page, the API and the outbox, but kept.
    assert "before the block" not in (await client.get("/groups/bookclub")).text
    assert (await client.get("/api/kith/v1/groups/bookclub/threads")).json()["threads"] == []
    assert (await client.get(f"{GROUP}/outbox", headers=AP)).json()["totalItems"] == 0
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(posts.c.state))).scalar_one() == "suspended"

    # A post by bob now reaches every server but the blocked one.
    mastodon.received.clear()
    bobs = other.note("bob", "<p>after</p>", to_group=GROUP)
    await other.post(client, "bob", "https://kith.test/inbox", other.create("bob", bobs))
    await worker.drain()
    assert mastodon.received == [] and len(other.of_type("Announce")) == 4

    # Lifting the block restores the hidden post (the membership must be asked for again).
    async with services.db.read() as conn:
        block_id = (await conn.execute(sa.text("select id from domain_blocks"))).scalar_one()
    await delete(services.db, BLOCKS, block_id, actor="admin1")
    await services.blocklist.reload()
    assert "before the block" in (await client.get("/groups/bookclub")).text
    assert (await client.get(f"{GROUP}/outbox", headers=AP)).json()["totalItems"] == 4

    async with services.db.read() as conn:
        log = (await conn.execute(sa.select(admin_audit_log).order_by(admin_audit_log.c.id))).all()
    assert [(r.actor, r.action, r.target) for r in log] == [
        ("admin1", "domain_block.create", "mastodon.example"),
        ("admin1", "domain_block.delete", "mastodon.example"),
    ]


async def test_silence_holds_posts_instead_of_announcing(client, services, worker, mastodon, world):
    other = world.social  # bob's server
    await create(services.db, BLOCKS, BlockSpec("mastodon.example", "silence"), actor="admin1")
    await services.blocklist.reload()
    assert await members(services) == 2  # silenced members stay
    note = mastodon.note("alice", "<p>quiet please</p>", to_group=GROUP)
    assert (
        await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    ).status_code == 202
    await worker.drain()
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(posts.c.state))).scalar_one() == "held"
    assert other.of_type("Announce") == []
    assert "quiet please" not in (await client.get("/groups/bookclub")).text


async def test_noop_block_changes_nothing_and_update_escalates(client, services, worker, mastodon, world):
    row, stats = await create(services.db, BLOCKS, BlockSpec("mastodon.example", "noop", reject_media=True), actor="a")
    await services.blocklist.reload()
    assert not any(stats.values()) and await members(services) == 2
    await update_block(services.db, row.id, {"severity": "suspend"}, actor="a")
    await services.blocklist.reload()
    assert await members(services) == 1
    with pytest.raises(Unprocessable):
        await create(services.db, BLOCKS, BlockSpec("MASTODON.example"), actor="a")


async def test_allowlist_mode_cuts_off_everyone_else(client, services, worker, mastodon, world):
    await create(services.db, ALLOWS, AllowSpec("social.example"), actor="a")
    stats = await set_federation_mode(services.db, "allowlist", actor="a")
    await services.blocklist.reload()
    assert stats["memberships_removed"] == 1 and await members(services) == 1
    r = await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    assert r.status_code == 403
    await set_federation_mode(services.db, "open", actor="a")
    await services.blocklist.reload()
    r = await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    assert r.status_code == 202


async def test_one_account_suspended_instance_wide(client, services, worker, mastodon, world):
    mastodon.add_user("carol")
    await mastodon.post(client, "carol", f"{GROUP}/inbox", mastodon.follow("carol", GROUP))
    await worker.drain()
    assert await members(services) == 3
    stats = await set_account_suspended(services.db, mastodon.actor_uri("carol"), True, actor="a", reason="spam")
    await services.blocklist.reload()
    assert stats["memberships_removed"] == 1 and await members(services) == 2
    r = await mastodon.post(client, "carol", f"{GROUP}/inbox", mastodon.follow("carol", GROUP))
    assert r.status_code == 403 and "suspended" in r.json()["error"]
    r = await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    assert r.status_code == 202  # her neighbours are untouched


async def test_csv_round_trip(services):
    text = (
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"
        "bad.example,suspend,true,true,Harassment,false\n"
        'quiet.example,silence,false,false,"spam, mostly",true\n'
        "broken*.example,suspend,false,false,,false\n"
    )
    report = await import_csv(services.db, text, actor="cli")
    assert (report.added, report.updated, len(report.skipped)) == (2, 0, 1)
    async with services.db.read() as conn:
        exported = await export_csv(conn)
    assert exported.splitlines() == text.splitlines()[:3]
    again = await import_csv(services.db, exported, actor="cli")
    assert (again.added, again.updated) == (0, 2)
    async with services.db.read() as conn:
        actions = [r.action for r in (await conn.execute(sa.select(admin_audit_log))).all()]
    assert actions.count("domain_block.create") == 2 and actions.count("domain_block.update") == 2


async def test_cli_block_is_seen_by_a_running_server(settings, services):
    """A block written elsewhere (a ``kith`` command with its own services) is picked up by the server's watcher."""
    import asyncio

    from tests.test_cli import kith

    r = await asyncio.to_thread(kith, settings, "domain", "block", "elsewhere.example", "--reason", "spam")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["domain"] == "elsewhere.example"
    stop = asyncio.Event()
    watcher = asyncio.create_task(services.blocklist.watch(stop, interval=0.05))
    for _ in range(100):
        if services.is_blocked("sub.elsewhere.example"):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await watcher
    assert services.is_blocked("sub.elsewhere.example")


async def test_activities_accepted_before_the_reload_are_dropped(client, services, worker, mastodon, world):
    """A Follow 202'd in the seconds before this process saw a new block must not undo it."""
    mastodon.add_user("late")
    mastodon.received.clear()
    r = await mastodon.post(client, "late", f"{GROUP}/inbox", mastodon.follow("late", GROUP))
    assert r.status_code == 202  # stored; not processed yet
    await create(services.db, BLOCKS, BlockSpec("mastodon.example"), actor="cli")  # another process, in effect
    assert not services.is_blocked("mastodon.example")  # this process has not reloaded yet
    await worker.drain()  # the worker picks the new policy up before its batch
    assert services.is_blocked("mastodon.example")
    assert await members(services) == 1
    assert [r.activity.get("type") for r in mastodon.received if r.activity.get("type") == "Accept"] == []


def test_cli_refuses_what_is_not_a_domain_with_one_line(settings):
    from tests.test_cli import kith

    refusals = [("block", raw) for raw in ("123", "xn--zz", "-bad-.example", "exa mple.com", "a..b")]
    for action, raw in [*refusals, ("allow", "123"), ("unblock", "xn--zz")]:
        r = kith(settings, "domain", action, "--", raw)  # "--": "-bad-.example" is no option
        assert r.returncode == 1 and r.stdout == "", (action, raw, r.stdout)
        assert r.stderr.startswith(f"kith: error: {raw!r} is not a domain: "), r.stderr
        assert r.stderr.count("\n") == 1, r.stderr
    r = kith(settings, "domain", "block", "münchen.de")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["domain"] == "xn--mnchen-3ya.de"
    r = kith(settings, "domain", "allow", "sub.example.co.uk")
    assert (r.returncode, r.stdout) == (0, "allowed sub.example.co.uk\n"), r.stderr
    listed = json.loads(kith(settings, "domain", "list").stdout)
    assert [b["domain"] for b in listed["blocks"]] == ["xn--mnchen-3ya.de"]
    assert listed["allows"] == ["sub.example.co.uk"]


async def test_csv_import_skips_what_is_not_a_domain(services):
    text = "".join(f"{d},silence,false,false,,false\n" for d in [*NOT_DOMAINS, "münchen.de"])
    report = await import_csv(services.db, text, actor="cli")
    assert (report.added, report.updated) == (1, 0)
    assert [domain for _, domain, _ in report.skipped] == list(NOT_DOMAINS)
    async with services.db.read() as conn:
        assert [b.domain for b in await page(conn, BLOCKS)] == ["xn--mnchen-3ya.de"]
