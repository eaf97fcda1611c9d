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


@pytest.fixture
async def racing(services):
    """Two groups' outboxes on PostgreSQL (where two transactions run at once), all rows old enough to settle."""
    if services.db.dialect != "postgresql":
        pytest.skip("SQLite has one writer: a hide and a settle cannot overlap")
    boxes = Outboxes(services, random.Random(5))
    await boxes.make()
    for _ in range(8):
        await boxes.add_post()
    await boxes.age_all_but(0)
    return boxes


async def test_a_hide_that_locks_first_makes_the_settle_wait_and_count_after_it(services, racing):
    hidden = racing.posts[:3]
    async with services.db.transaction() as conn:
        await outbound.set_hidden_for_posts(conn, hidden, True)  # rows flipped, counts rows locked
        settling = asyncio.create_task(settle_all(services.db))
        await asyncio.sleep(0.3)
        assert not settling.done()  # waits for the hide's lock
    await settling
    await racing.check("a settle that waited for a hide")


async def test_a_settle_that_locks_first_is_adjusted_by_the_hide_that_waited(services, racing):
    async with services.db.read() as conn:
        target = await outbound.settle_target(conn)
    group_id = racing.groups[0]
    async with services.db.read() as conn:
        group_posts = (await conn.execute(sa.select(posts.c.id).where(posts.c.group_id == group_id))).scalars().all()
    async with services.db.transaction() as conn:
        assert target is not None and await outbound.settle(conn, group_id, target) > 0  # counted, lock held
        # Meanwhile a hide flips rows the settle has counted as shown, then waits for the lock.
        hiding = asyncio.create_task(hide_in_own_transaction(services, group_posts))
        await asyncio.sleep(0.3)
        assert not hiding.done()
    await hiding
    await racing.check("a hide that waited for a settle")


async def hide_in_own_transaction(services: Any, post_ids: list[int]) -> None:
    async with services.db.transaction() as conn:
        await outbound.set_hidden_for_posts(conn, post_ids, True)
