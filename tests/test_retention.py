"""Retention: a year of traffic, pruned, leaves days of work rows and every post, report and log row.

The rows are written straight into the tables with timestamps spread over 365 days (the
clock the prune is given is the test's), then the prune runs as the worker runs it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa

from server import sessions as sessions_module
from server.accounts import create_user
from server.federation.actors import KEY_REFRESH_AFTER
from server.groups.membership import GroupSpec, create_group
from server.jobs import build_worker
from server.retention import Pruner, prune
from server.settings import Retention
from server.tables import (
    admin_audit_log,
    bans,
    deliveries,
    fanouts,
    follows,
    inbox_items,
    mod_log,
    oauth_apps,
    oauth_codes,
    oauth_tokens,
    outbound_activities,
    posts,
    remote_actors,
    remote_moderators,
    reports,
    sessions,
    sign_in_failures,
)
from server.types import utcnow

DAYS = 365
GROUP = "https://kith.test/groups/club"


def actor_row(name: str, fetched_at, **extra):
    uri = f"https://far.example/users/{name}"
    return {
        "uri": uri,
        "domain": "far.example",
        "type": "Person",
        "inbox": f"{uri}/inbox",
        "raw": "{}",
        "fetched_at": fetched_at,
        **extra,
    }


async def count(db, table, *where) -> int:
    async with db.read() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))).scalar_one()


async def a_year_of_traffic(db, group_id: int, now):
    """Rows of every kind, one day apart over a year; returns what the test needs to check."""
    inbox, outbound, delivery, fanout, post, report, modlog, audit = ([] for _ in range(8))
    for d in range(DAYS):
        t = now - timedelta(days=d, hours=1)
        for i, state in enumerate(("done", "done", "dead")):
            inbox.append(
                {
                    "activity_uri": f"https://far.example/a/{d}/{i}",
                    "actor_uri": "https://far.example/users/x",
                    "body": "{}",
                    "state": state,
                    "attempts": 1,
                    "next_attempt_at": t,
                    "created_at": t,
                    "finished_at": t,
                }
            )
        outbound.append(
            {
                "uri": f"https://kith.test/activities/{d}",
                "actor_id": group_id,
                "type": "Announce",
                "body": "{}",
                "created_at": t,
            }
        )
        for i, state in enumerate(("done", "dead", "gone")):
            delivery.append(
                {
                    "activity_id": d + 1,
                    "inbox": f"https://s{i}.example/inbox",
                    "domain": f"s{i}.example",
                    "state": state,
                    "next_attempt_at": t,
                    "created_at": t,
                    "finished_at": t,
                }
            )
        fanout.append(
            {
                "activity_id": d + 1,
                "activity_ids": json.dumps([d + 1]),
                "group_id": group_id,
                "state": "done",
                "next_attempt_at": t,
                "created_at": t,
                "finished_at": t,
            }
        )
        raw = json.dumps({"id": f"https://far.example/notes/{d}", "type": "Note", "content": f"day {d}"})
        post.append(
            {
                "uri": f"https://far.example/notes/{d}",
                "group_id": group_id,
                "author_uri": "https://far.example/users/x",
                "type": "Note",
                "raw": raw,
                "published": t,
                "last_activity_at": t,
                "created_at": t,
            }
        )
        if d % 10 == 0:
            report.append(
                {"reporter": "https://far.example/users/r", "created_at": t, "updated_at": t, "state": "resolved"}
            )
            modlog.append(
                {"group_id": group_id, "moderator": "mod", "action": "remove", "target": "x", "created_at": t}
            )
            audit.append({"actor": "cli", "action": "domain_block.create", "target": "x.example", "created_at": t})
    # Work not yet done is never pruned, however old: a year-old activity still queued.
    old = now - timedelta(days=DAYS)
    waiting = {"state": "queued", "next_attempt_at": old, "created_at": old, "finished_at": None}
    inbox.append({**inbox[-1], **waiting, "activity_uri": "https://far.example/a/waiting", "actor_uri": actor_uri("q")})
    delivery.append({**delivery[-1], **waiting, "inbox": "https://slow.example/inbox", "domain": "slow.example"})
    async with db.transaction() as conn:
        for table, rows in (
            (inbox_items, inbox),
            (outbound_activities, outbound),
            (deliveries, delivery),
            (fanouts, fanout),
            (posts, post),
            (reports, report),
            (mod_log, modlog),
            (admin_audit_log, audit),
        ):
            await conn.execute(sa.insert(table), rows)
    return inbox


def actor_uri(name: str) -> str:
    return f"https://far.example/users/{name}"


async def some_actors(db, group_id: int, now) -> set[str]:
    """Remote actors, each named (or not) by one kind of row; returns those that must stay."""
    old, recent = now - timedelta(days=200), now - timedelta(days=1)
    names = ["follower", "author", "reporter", "target", "banned", "moderator", "q", "suspended", "idle", "newcomer"]
    async with db.transaction() as conn:
        for name in names:
            fetched = recent if name == "newcomer" else old
            extra = {"suspended_at": old} if name == "suspended" else {}
            await conn.execute(sa.insert(remote_actors).values(**actor_row(name, fetched, **extra)))
        ids = dict((await conn.execute(sa.select(remote_actors.c.uri, remote_actors.c.id))).all())
        await conn.execute(
            sa.insert(follows).values(
                group_id=group_id,
                actor_id=ids[actor_uri("follower")],
                activity_uri="https://far.example/f/1",
                activity_raw="{}",
                state="accepted",
                created_at=old,
            )
        )
        await conn.execute(
            sa.update(posts)
            .where(posts.c.uri == "https://far.example/notes/300")
            .values(author_id=ids[actor_uri("author")], author_uri=actor_uri("author"))
        )
        await conn.execute(
            sa.insert(reports).values(
                reporter=actor_uri("reporter"), target_account=actor_uri("target"), created_at=old, updated_at=old
            )
        )
        await conn.execute(sa.insert(bans).values(group_id=group_id, actor_uri=actor_uri("banned"), created_at=old))
        await conn.execute(
            sa.insert(remote_moderators).values(group_id=group_id, actor_uri=actor_uri("moderator"), created_at=old)
        )
    return {actor_uri(n) for n in names if n != "idle"}


async def oauth_rows(db, now) -> None:
    """An expired and a live authorization code; an active, a long-revoked and a lately revoked token."""
    old = now - timedelta(days=100)
    user, _ = await create_user(db, "someone")
    async with db.transaction() as conn:
        user_id = user.id
        app_id = (
            await conn.execute(
                sa.insert(oauth_apps)
                .values(
                    name="a",
                    redirect_uris="urn:ietf:wg:oauth:2.0:oob",
                    scopes="read",
                    client_id="cid",
                    client_secret_hash="h",
                    created_at=old,
                )
                .returning(oauth_apps.c.id)
            )
        ).scalar_one()
        base = {"app_id": app_id, "user_id": user_id, "scopes": "read", "redirect_uri": "urn:ietf:wg:oauth:2.0:oob"}
        await conn.execute(
            sa.insert(oauth_codes),
            [
                {**base, "code_hash": "expired", "expires_at": now - timedelta(minutes=1)},
                {**base, "code_hash": "live", "expires_at": now + timedelta(minutes=5)},
            ],
        )
        await conn.execute(
            sa.insert(oauth_tokens),
            [
                {"token_hash": "active", "scopes": "read", "created_at": old, "revoked_at": None},
                {"token_hash": "revoked-long-ago", "scopes": "read", "created_at": old, "revoked_at": old},
                {"token_hash": "revoked-lately", "scopes": "read", "created_at": old, "revoked_at": now},
            ],
        )


async def test_a_year_of_traffic_leaves_days_not_a_year(services) -> None:
    db = services.db
    group = await create_group(db, GroupSpec(name="club"))
    now = utcnow()
    inbox = await a_year_of_traffic(db, group.id, now)
    kept_actors = await some_actors(db, group.id, now)
    await oauth_rows(db, now)
    posts_before = await _dump(db, posts)
    reports_before, modlog_before, audit_before = [await _dump(db, t) for t in (reports, mod_log, admin_audit_log)]
    retention = Retention()
    assert await count(db, inbox_items) == 3 * DAYS + 1

    pruned = await prune(db, retention, now=now, batch=50)  # small batches: many short transactions

    # A year of inbox rows is down to the retention window, plus the one still waiting.
    cutoff = now - timedelta(days=retention.inbox)
    kept = [r for r in inbox if r["state"] == "queued" or r["finished_at"] >= cutoff]
    assert len(kept) == 3 * retention.inbox + 1
    assert await count(db, inbox_items) == len(kept)
    assert pruned["inbox"] == len(inbox) - len(kept) > 50
    async with db.read() as conn:
        oldest_done = (
            await conn.execute(sa.select(sa.func.min(inbox_items.c.finished_at)).where(inbox_items.c.state != "queued"))
        ).scalar_one()
    assert oldest_done is not None and now - _aware(oldest_done) < timedelta(days=retention.inbox)
    assert await count(db, inbox_items, inbox_items.c.activity_uri == "https://far.example/a/waiting") == 1
    # Deliveries after 30 days (the queued one stays), fan-outs after 7.
    assert await count(db, deliveries) == 3 * retention.deliveries + 1
    assert await count(db, deliveries, deliveries.c.state == "queued") == 1
    assert await count(db, fanouts) == retention.fanouts
    # OAuth: the expired code and the long-revoked token go; the live code and the rest stay.
    async with db.read() as conn:
        codes = set((await conn.execute(sa.select(oauth_codes.c.code_hash))).scalars())
        tokens = set((await conn.execute(sa.select(oauth_tokens.c.token_hash))).scalars())
        actors = set((await conn.execute(sa.select(remote_actors.c.uri))).scalars())
    assert codes == {"live"}
    assert tokens == {"active", "revoked-lately"}
    # Remote actors: only the one nothing names, fetched long ago, is forgotten.
    assert actors == kept_actors
    assert pruned["remote_actors"] == 1
    # What people wrote and what moderators decided is all there, byte for byte.
    assert await _dump(db, posts) == posts_before and len(posts_before) == DAYS
    assert await _dump(db, reports) == reports_before
    assert await _dump(db, mod_log) == modlog_before and len(modlog_before) == 37
    assert await _dump(db, admin_audit_log) == audit_before
    # A second prune finds nothing.
    assert set((await prune(db, retention, now=now)).values()) == {0}


async def test_retention_days_are_configurable(services) -> None:
    db = services.db
    group = await create_group(db, GroupSpec(name="club"))
    now = utcnow()
    await a_year_of_traffic(db, group.id, now)
    await prune(db, Retention.parse("inbox=90"), now=now)
    assert await count(db, inbox_items) == 3 * 90 + 1
    assert await count(db, fanouts) == 7  # the other kinds keep their defaults


async def test_the_worker_prunes_on_its_schedule(services) -> None:
    db = services.db
    group = await create_group(db, GroupSpec(name="club"))
    await a_year_of_traffic(db, group.id, utcnow())
    worker = build_worker(services)
    (pruner,) = [task.__self__ for task in worker.periodic if isinstance(getattr(task, "__self__", None), Pruner)]
    pruner.first = timedelta(0)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run_forever(stop))
    try:
        async with asyncio.timeout(30):
            while pruner.runs == 0:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running
    assert await count(db, inbox_items) == 3 * 7 + 1


async def test_expired_sessions_and_old_sign_in_failures_are_pruned(db) -> None:
    now = utcnow()
    user, _ = await create_user(db, "ada")
    async with db.transaction() as conn:
        live = await sessions_module.start(conn, user.id)
        gone = await sessions_module.start(conn, user.id)
        await conn.execute(
            sa.update(sessions).where(sessions.c.token_hash == sessions_module.digest(gone)).values(expires_at=now)
        )
        for age in (timedelta(minutes=1), timedelta(hours=1)):
            await conn.execute(sa.insert(sign_in_failures).values(scope="account", key="ada", created_at=now - age))
    pruned = await prune(db, Retention.parse("14"), now=now + timedelta(seconds=1))
    assert (pruned["sessions"], pruned["sign_in_failures"]) == (1, 1)
    async with db.read() as conn:
        assert await sessions_module.find(conn, live) is not None
        assert (await conn.execute(sa.select(sa.func.count()).select_from(sign_in_failures))).scalar_one() == 1


async def test_a_week_old_actor_is_refreshed_when_its_key_is_next_used(client, services, worker, mastodon) -> None:
    await create_group(services.db, GroupSpec(name="club"))
    assert (await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))).status_code == 202
    await worker.drain()
    stale = utcnow() - KEY_REFRESH_AFTER - timedelta(hours=1)
    async with services.db.transaction() as conn:
        await conn.execute(sa.update(remote_actors).values(fetched_at=stale, name="Old Name"))
    services.actors._keys.clear()  # as after the in-process key cache expired (5 minutes)
    gets = len(mastodon.network.sent_to("mastodon.example", "GET"))
    note = mastodon.note("alice", "<p>hello</p>", to_group=GROUP)
    assert (
        await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    ).status_code == 202
    assert len(mastodon.network.sent_to("mastodon.example", "GET")) == gets + 1
    row = await services.actors.cached(mastodon.actor_uri("alice"))
    assert row is not None and utcnow() - row.fetched_at < timedelta(minutes=1) and row.name == "Alice"

    # A refresh that fails (the server is down) keeps the stored copy: its signatures still verify.
    async with services.db.transaction() as conn:
        await conn.execute(sa.update(remote_actors).values(fetched_at=stale))
    services.actors._keys.clear()

    def down(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(503)
        return httpx.Response(202)

    app_transport = mastodon.network.hosts["mastodon.example"]
    mastodon.network.add_handler("mastodon.example", down)
    try:
        again = mastodon.create("alice", mastodon.note("alice", "<p>again</p>", to_group=GROUP))
        assert (await mastodon.post(client, "alice", "https://kith.test/inbox", again)).status_code == 202
    finally:
        mastodon.network.hosts["mastodon.example"] = app_transport
    row = await services.actors.cached(mastodon.actor_uri("alice"))
    assert row is not None and row.fetched_at == stale


async def _dump(db, table) -> list[tuple]:
    async with db.read() as conn:
        return [tuple(r) for r in (await conn.execute(sa.select(table).order_by(*table.primary_key.columns))).all()]


def _aware(value):
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
