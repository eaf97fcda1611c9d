"""The worker's round that keeps each outbox's total: ``outbound.settle`` for every actor with new rows.

Once a minute (with jitter, so workers started together do not settle in step), each its
own short transaction per actor. Several workers may settle at once: the counts row's lock
orders them, and the second finds nothing left to add.
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


async def settle_all(db: Database, now: datetime | None = None) -> int:
    """Settle every actor's kept outbox total up to ``outbound.settle_target``; the rows added."""
    async with db.read() as conn:
        target = await outbound.settle_target(conn, now)
        actors = await outbound.unsettled(conn, target) if target is not None else []
    added = 0
    for actor_id in actors:
        async with db.transaction() as conn:
            added += await outbound.settle(conn, actor_id, target or 0)
    return added


async def settle_forever(db: Database, stop: asyncio.Event) -> None:
    """``settle_all`` about once a minute until ``stop``; a failed round is logged and tried again."""
    while not stop.is_set():
        try:
            added = await settle_all(db)
            if added:
                log.debug("outbox totals: %d rows settled", added)
        except Exception:  # a database hiccup: the totals stay exact, only their live part grows
            log.warning("settling outbox totals failed", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), INTERVAL_SECONDS * random.uniform(0.8, 1.2))
