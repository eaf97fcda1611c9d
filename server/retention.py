"""Retention: the worker deletes finished work on a schedule, so the database does not grow without end.

What goes, after ``Settings.retention`` days (``KITH_RETENTION_DAYS``; defaults in
``server.settings.Retention``): processed and dead inbox activities, delivered, dead and gone
delivery rows, finished fan-outs, revoked OAuth tokens; expired authorization codes, console
sessions and sign-in failures older than the throttle's window at once; crowd control's
per-minute event counts after a day (``event_counts.expired``);
remote actors nothing names any more (no follow, post, report, ban or moderator row, no
activity of theirs waiting) and not fetched within the window. What stays, whatever its
age: posts and their raw JSON, reports, the moderation log and the admin audit log.

Each table's owner says which of its rows may go (``queue.finished_before``,
``oauth.expired_codes``, ``sessions.expired``, ``throttle.outdated``, ``event_counts.expired``,
``actors.unreferenced``); this module deletes them in bounded batches, each its own short
transaction (``DELETE ... WHERE key IN (SELECT key ... LIMIT n)``),
so a prune never holds a long lock and the server's own writes slip in between batches.
Several workers may prune at once: a row is deleted once, the others find it gone.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from server.db import Database
from server.event_counts import expired as expired_counts
from server.federation.actors import unreferenced
from server.oauth import expired_codes, revoked_tokens
from server.queue import finished_before
from server.sessions import expired as expired_sessions
from server.settings import Retention
from server.tables import (
    bans,
    deliveries,
    event_counts,
    fanouts,
    follows,
    inbox_items,
    oauth_codes,
    oauth_tokens,
    posts,
    remote_actors,
    remote_moderators,
    reports,
    sessions,
    sign_in_failures,
)
from server.throttle import outdated as outdated_failures
from server.types import utcnow

log = logging.getLogger("kith.retention")

BATCH = 500  # rows per DELETE: a few milliseconds of lock on either database
INTERVAL = timedelta(hours=1)  # between prunes, per worker
FIRST_DELAY = timedelta(minutes=1)  # after a worker starts: let it catch up on real work first


@dataclass(frozen=True)
class Prunable:
    """Rows of ``table`` that may go: those matching ``where``, deleted by ``key`` in batches."""

    name: str
    table: sa.Table
    key: sa.ColumnElement[object]
    where: sa.ColumnElement[bool]


def actor_references() -> list[sa.ColumnElement[bool]]:
    """Each way a row names a remote actor, as a correlated ``EXISTS`` over ``remote_actors``."""
    actor = remote_actors.c
    return [
        sa.exists().where(follows.c.actor_id == actor.id),
        sa.exists().where(posts.c.author_id == actor.id),
        sa.exists().where(sa.or_(reports.c.reporter == actor.uri, reports.c.target_account == actor.uri)),
        sa.exists().where(bans.c.actor_uri == actor.uri),
        sa.exists().where(remote_moderators.c.actor_uri == actor.uri),
        # Its activity waits to be processed: the handler will want its document.
        sa.exists().where(inbox_items.c.state == "queued", inbox_items.c.actor_uri == actor.uri),
    ]


def prunables(retention: Retention, now: datetime) -> list[Prunable]:
    """What may go at ``now`` under ``retention``, in the order it is pruned."""

    def before(days: int) -> datetime:
        return now - timedelta(days=days)

    steps = [
        Prunable("inbox", inbox_items, inbox_items.c.id, finished_before(inbox_items, before(retention.inbox))),
        Prunable("deliveries", deliveries, deliveries.c.id, finished_before(deliveries, before(retention.deliveries))),
        Prunable("fanouts", fanouts, fanouts.c.id, finished_before(fanouts, before(retention.fanouts))),
        Prunable("oauth_codes", oauth_codes, oauth_codes.c.code_hash, expired_codes(now)),
        Prunable("oauth_tokens", oauth_tokens, oauth_tokens.c.id, revoked_tokens(before(retention.tokens))),
        Prunable("sessions", sessions, sessions.c.id, expired_sessions(now)),
        Prunable("sign_in_failures", sign_in_failures, sign_in_failures.c.id, outdated_failures(now)),
        Prunable("event_counts", event_counts, event_counts.c.id, expired_counts(now)),
        # Last: the rows pruned above may have been what still named an actor.
        Prunable(
            "remote_actors",
            remote_actors,
            remote_actors.c.id,
            unreferenced(before(retention.actors), actor_references()),
        ),
    ]
    return steps


async def delete_batches(db: Database, step: Prunable, *, batch: int = BATCH, pause: float = 0.0) -> int:
    """Delete ``step``'s rows ``batch`` at a time, each batch its own transaction; how many went."""
    chosen = sa.select(step.key).where(step.where).limit(batch).scalar_subquery()
    stmt = sa.delete(step.table).where(step.key.in_(chosen))
    total = 0
    while True:
        async with db.transaction() as conn:
            deleted = (await conn.execute(stmt)).rowcount
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(pause)  # let the server's writes in between batches


async def prune(
    db: Database, retention: Retention, *, now: datetime | None = None, batch: int = BATCH, pause: float = 0.0
) -> dict[str, int]:
    """Run every step once; returns how many rows each deleted."""
    moment = now or utcnow()
    return {
        step.name: await delete_batches(db, step, batch=batch, pause=pause) for step in prunables(retention, moment)
    }


class Pruner:
    """The worker's schedule: prune shortly after start, then every ``interval``."""

    def __init__(
        self, db: Database, retention: Retention, *, interval: timedelta = INTERVAL, first: timedelta = FIRST_DELAY
    ) -> None:
        self.db = db
        self.retention = retention
        self.interval = interval
        self.first = first
        self.runs = 0

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Prune on schedule until ``stop`` is set; a failed prune is logged and tried again next time."""
        # Jitter, so workers started together do not prune in step.
        delay = self.first.total_seconds() * random.uniform(1.0, 1.5)
        while not await _wait(stop, delay):
            try:
                pruned = await prune(self.db, self.retention, pause=0.01)
                if any(pruned.values()):
                    log.info("pruned %s", ", ".join(f"{n} {name}" for name, n in pruned.items() if n))
            except Exception:  # keep the schedule through a database hiccup
                log.exception("prune failed")
            self.runs += 1
            delay = self.interval.total_seconds()


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stop``; True when stopped."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
