"""The outbox's kept total (``outbound.outbox_count``) against a count of every row, on SQLite and PostgreSQL.

Two groups' outboxes get Announces, Creates and rows that are not in an outbox (an
Accept, a direct message); between rounds the rows are dated back so that the worker's
settling moves the kept total part of the way, and posts are tombstoned, hidden and shown
again on both sides of it. After every step the kept total, and the outbox collection's
``totalItems`` over HTTP, equal a plain count of every row. On PostgreSQL, a hide racing a
settle is exact whichever of the two takes the counts row's lock first.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from server.federation import outbound
from server.federation.outbox_totals import OutboxTotals, settle_all
from server.groups.membership import GroupSpec, create_group
from server.tables import outbound_activities, outbox_counts, posts
from server.types import utcnow

AP = {"accept": "application/activity+json"}


async def plain_count(conn: Any, actor_id: int) -> int:
    """Every row of the outbox, counted: what the kept total must equal."""
    oa = outbound_activities.c
    query = sa.select(sa.func.count()).where(
        oa.actor_id == actor_id,
        oa.type.in_(("Announce", "Create")),
        oa.public.is_(True),
        oa.deleted_at.is_(None),
        oa.hidden.is_(False),
    )
    return int((await conn.execute(query)).scalar_one())


class Outboxes:
    """Two groups, their posts, and the rows of their outboxes, written as Kith writes them."""

    def __init__(self, services: Any, rng: random.Random) -> None:
        self.db = services.db
        self.rng = rng
        self.groups: list[int] = []
        self.posts: list[int] = []
        self.serial = 0

    async def make(self) -> None:
        for name in ("books", "chess"):
            self.groups.append((await create_group(self.db, GroupSpec(name=name))).id)

    async def add_post(self) -> None:
        """A post in a random group, its Announce, sometimes its Create, and rows no outbox shows."""
        group_id = self.rng.choice(self.groups)
        self.serial += 1
        uri = f"https://far.example/notes/{self.serial}"
        now = utcnow()
        async with self.db.transaction() as conn:
            post_id = (
                await conn.execute(
                    sa.insert(posts)
                    .values(
                        uri=uri,
                        group_id=group_id,
                        author_uri="https://far.example/users/ann",
                        type="Note",
                        raw="{}",
                        published=now,
                        last_activity_at=now,
                        created_at=now,
                    )
                    .returning(posts.c.id)
                )
            ).scalar_one()
            shown = [{"id": f"{uri}/announce", "type": "Announce"}]
            if self.rng.random() < 0.5:
                shown.append({"id": f"{uri}/create", "type": "Create"})
            await outbound.store_many(conn, shown, actor_id=group_id, public=True, post_id=post_id)
            await outbound.store_many(
                conn,
                [{"id": f"{uri}/accept", "type": "Accept"}, {"id": f"{uri}/dm", "type": "Create"}],
                actor_id=group_id,
                public=False,
                post_id=post_id,
            )
        self.posts.append(post_id)

    async def age_all_but(self, newest: int) -> None:
        """Date every row back an hour but the ``newest`` few: settling then stops below those."""
        async with self.db.transaction() as conn:
            last = (await conn.execute(sa.select(sa.func.max(outbound_activities.c.id)))).scalar_one()
            await conn.execute(
                sa.update(outbound_activities)
                .where(outbound_activities.c.id <= last - newest)
                .values(created_at=utcnow() - timedelta(hours=1))
            )

    async def tombstone(self) -> None:
        async with self.db.transaction() as conn:
            await outbound.tombstone_for_post(conn, self.rng.choice(self.posts))

    async def hide(self, hidden: bool) -> None:
        chosen = self.rng.sample(self.posts, k=min(len(self.posts), self.rng.randint(1, 4)))
        async with self.db.transaction() as conn:
            await outbound.set_hidden_for_posts(conn, chosen, hidden)

    async def check(self, step: str) -> None:
        async with self.db.read() as conn:
            for group_id in self.groups:
                kept, plain = await outbound.outbox_count(conn, group_id), await plain_count(conn, group_id)
                assert kept == plain, f"after {step}: group {group_id} kept {kept}, every row counted {plain}"


async def test_the_kept_total_equals_a_count_of_every_row_through_settles_tombstones_and_hides(services, client):
    rng = random.Random(17)
    boxes = Outboxes(services, rng)
    await boxes.make()
    totals = OutboxTotals(services.db)  # as the worker keeps it: each round reads only the rows since the last
    settled_rounds = 0
    for round_ in range(12):
        for _ in range(rng.randint(2, 6)):
            await boxes.add_post()
        await boxes.check(f"round {round_}: new posts")
        await boxes.age_all_but(rng.randint(0, 6))
        settled_rounds += bool(await totals.settle())
        await boxes.check(f"round {round_}: settled")
        for _ in range(rng.randint(1, 4)):
            step = rng.choice(("tombstone", "hide", "show"))
            await (boxes.tombstone() if step == "tombstone" else boxes.hide(step == "hide"))
            await boxes.check(f"round {round_}: {step}")
    assert settled_rounds >= 10  # the kept totals moved on nearly every round: what is checked is their arithmetic

    async with services.db.read() as conn:
        kept = (await conn.execute(sa.select(outbox_counts.c.actor_id, outbox_counts.c.upto, outbox_counts.c.n))).all()
        newest = (await conn.execute(sa.select(sa.func.max(outbound_activities.c.id)))).scalar_one()
    # Both groups have a kept total that stops short of the newest rows, which are counted live.
    assert {row.actor_id for row in kept} == set(boxes.groups)
    assert all(0 < row.upto <= newest for row in kept) and sum(row.n for row in kept) > 0

    # The outbox collection's totalItems is the kept total, over HTTP.
    await boxes.age_all_but(0)
    await settle_all(services.db)
    for name, group_id in zip(("books", "chess"), boxes.groups, strict=True):
        r = await client.get(f"/groups/{name}/outbox", headers=AP)
        async with services.db.read() as conn:
            assert r.status_code == 200 and r.json()["totalItems"] == await plain_count(conn, group_id)


async def test_a_settle_adds_nothing_the_rows_are_too_new_for(services):
    boxes = Outboxes(services, random.Random(1))
    await boxes.make()
    for _ in range(5):
        await boxes.add_post()
    # Rows written within SETTLE_AFTER may belong to transactions not yet committed: never settled.
    assert await settle_all(services.db) == 0
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(outbox_counts))).scalar_one() == 0
    assert await settle_all(services.db, utcnow() + outbound.SETTLE_AFTER + timedelta(seconds=1)) > 0
    await boxes.check("a settle with the clock moved on")


async def test_two_workers_settling_at_once_add_each_row_once(services):
    boxes = Outboxes(services, random.Random(5))
    await boxes.make()
    for _ in range(8):
        await boxes.add_post()
    await boxes.age_all_but(0)
    added = await asyncio.gather(*(OutboxTotals(services.db).settle() for _ in range(3)))
    async with services.db.read() as conn:
        every = sum([await plain_count(conn, g) for g in boxes.groups])
        kept = (await conn.execute(sa.select(sa.func.sum(outbox_counts.c.n)))).scalar_one()
    assert sum(added) == kept == every > 0  # each row added by exactly one of them
    await boxes.check("three settles at once")


async def test_a_hide_in_flight_holds_up_no_settle_and_both_count(services):
    """The kept count is of facts that never change: a settle waits for no hide or tombstone."""
    if services.db.dialect != "postgresql":
        pytest.skip("SQLite has one writer: a hide and a settle cannot overlap")
    boxes = Outboxes(services, random.Random(6))
    await boxes.make()
    for _ in range(8):
        await boxes.add_post()
    await boxes.age_all_but(0)
    async with services.db.transaction() as conn:
        await outbound.set_hidden_for_posts(conn, boxes.posts[:3], True)
        async with asyncio.timeout(5):
            assert await settle_all(services.db) > 0  # not waiting for the hide's transaction
        await outbound.tombstone_for_post(conn, boxes.posts[4])
    await boxes.check("a hide and a tombstone beside a settle")


async def test_the_gone_rows_are_counted_through_their_own_index_on_sqlite(services):
    """SQLite uses a partial index only for a query that states its predicate as the index does."""
    if not services.db.is_sqlite:
        pytest.skip("PostgreSQL proves the predicate itself")
    async with services.db.read() as conn:
        since = outbound._SINCE["sqlite"].text.replace(":actor", "1").replace(":upto", "1")
        plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {since}")).all()
    assert any("ix_outbound_activities_gone" in row[-1] for row in plan), plan
