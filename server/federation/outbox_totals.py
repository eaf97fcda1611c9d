"""The worker's round that keeps each outbox's total: ``outbound.settle`` for every actor with new rows.

Once a minute (with jitter, so workers started together do not settle in step): a read and
one short transaction per actor. Several workers may settle at once: each moves a count on
only from the ``upto`` it read, so each row is added once. A worker's first round reads the
whole table once (0.3-0.9 s at a million rows); later ones only the rows since its last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import datetime

from server.db import Database
from server.federation import outbound

log = logging.getLogger("kith.outbox")

INTERVAL_SECONDS = 60.0


class OutboxTotals:
    """The worker's rounds; remembers how far every actor is settled, so each round reads only newer rows."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Every actor's kept total covers its rows up to this id (0: not known yet). It only
        # chooses which actors a round looks at: a row it skips is still counted live.
        self.through = 0

    async def settle(self, now: datetime | None = None) -> int:
        """Settle every actor's kept outbox total up to ``outbound.settle_target``; the rows added."""
        async with self.db.read() as conn:
            target = await outbound.settle_target(conn, now)
            if target is None or target <= self.through:
                return 0
            actors = await outbound.unsettled(conn, target, after=self.through)
        added = 0
        for actor_id in actors:
            added += await outbound.settle(self.db, actor_id, target)
        self.through = target  # only once every actor got there: a failed round is read again whole
        return added

    async def run_forever(self, stop: asyncio.Event) -> None:
        """``settle`` about once a minute until ``stop``; a failed round is logged and tried again."""
        while not stop.is_set():
            try:
                added = await self.settle()
                if added:
                    log.debug("outbox totals: %d rows settled", added)
            except Exception:  # a database hiccup: the totals stay exact, only their live part grows
                log.warning("settling outbox totals failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), INTERVAL_SECONDS * random.uniform(0.8, 1.2))


async def settle_all(db: Database, now: datetime | None = None) -> int:
    """One round from scratch (every row read once): what a worker's first round does."""
    return await OutboxTotals(db).settle(now)
