"""The delivery queue: one row per (activity, target inbox); the one owner of ``deliveries``.

``enqueue`` writes the activity once (``outbound``) and a row per inbox in the caller's
transaction, so a change and the news of it commit together. ``classify`` turns a
remote's answer into the row's next state: 2xx done; 410 gone; 429/503 retry at
``Retry-After``; other 4xx dead; 5xx and network errors back off exponentially for three
days. ``server.federation.sender`` sends the rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database
from server.federation import outbound
from server.federation.urls import UnsafeUrl, authority_of
from server.queue import Outcome, QueueRow, backoff
from server.tables import deliveries
from server.types import utcnow

log = logging.getLogger("kith.delivery")

GIVE_UP_AFTER = timedelta(days=3)
_A_DAY = 86_400  # seconds: the longest a Retry-After may make us wait


@dataclass(frozen=True, slots=True)
class Delivery(QueueRow):
    """One activity on its way to one inbox."""

    activity_id: int
    inbox: str
    domain: str  # the inbox's server (host, and port when not the default): the circuit breaker's unit


async def enqueue(
    conn: AsyncConnection,
    db: Database,
    *,
    activity: dict[str, Any],
    actor_id: int,
    inboxes: Iterable[str],
    public: bool = False,
    post_id: int | None = None,
) -> int:
    """Store ``activity`` once and queue one delivery per distinct inbox; returns the activity row id."""
    now = utcnow()
    activity_pk = await outbound.store(conn, activity, actor_id=actor_id, public=public, post_id=post_id)
    rows = []
    for inbox in dict.fromkeys(inboxes):  # ordered de-duplication
        try:
            domain = authority_of(inbox)  # per server, so per port: the circuit breaker's unit
        except UnsafeUrl:
            log.warning("not queuing delivery to malformed inbox %r", inbox)
            continue
        rows.append(
            {"activity_id": activity_pk, "inbox": inbox, "domain": domain, "next_attempt_at": now, "created_at": now}
        )
    if rows:
        await conn.execute(db.insert_ignore(deliveries, ["activity_id", "inbox"]), rows)
    return activity_pk


def failure_row(
    activity_pk: int, inbox: str, domain: str, outcome: Outcome, *, created_at: datetime, now: datetime
) -> dict[str, Any]:
    """The ``deliveries`` row that records a send made elsewhere (a fan-out) that did not succeed.

    ``created_at`` is the original event's, so the three days to give up count from it.
    """
    return {
        "activity_id": activity_pk,
        "inbox": inbox,
        "domain": domain,
        "state": outcome.state,
        "attempts": 1,
        "next_attempt_at": outcome.retry_at or now,
        "last_error": outcome.error,
        "created_at": created_at,
        "finished_at": None if outcome.state == "queued" else now,
    }


async def record_failures(conn: AsyncConnection, db: Database, rows: list[dict[str, Any]]) -> None:
    """Write ``failure_row``s: queued ones are retried by the delivery queue, the rest say why they ended."""
    if rows:
        await conn.execute(db.insert_ignore(deliveries, ["activity_id", "inbox"]), rows)


async def drop_queued_to(conn: AsyncConnection, refused: Callable[[str], bool]) -> int:
    """End every queued delivery to a server ``refused(authority)`` refuses (a block just made); how many."""
    domains = (
        (await conn.execute(sa.select(deliveries.c.domain).where(deliveries.c.state == "queued").distinct()))
        .scalars()
        .all()
    )
    dead = [d for d in domains if refused(d)]
    dropped = 0
    for i in range(0, len(dead), 500):
        dropped += (
            await conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.domain.in_(dead[i : i + 500]), deliveries.c.state == "queued")
                .values(state="dead", last_error="the domain is suspended", lease_until=None, finished_at=utcnow())
            )
        ).rowcount
    return dropped


def retry_after(value: str | None, now: datetime) -> datetime | None:
    """The time a ``Retry-After`` header names (seconds or an HTTP date), capped at a day.

    The remote chose the value: digits ``int`` refuses ("²") or a number past what a
    ``timedelta`` holds must not fail the delivery (nor the fan-out sending beside it).
    """
    if not value:
        return None
    value = value.strip()
    when: datetime | None
    if value.isascii() and value.isdigit():
        # More than six digits is more than the day it is capped at anyway.
        when = now + timedelta(seconds=_A_DAY if len(value) > 6 else min(int(value), _A_DAY))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
    return min(max(when, now), now + timedelta(seconds=_A_DAY))


def classify(
    status: int | None, headers: dict[str, str], *, attempts: int, created_at: datetime, now: datetime
) -> Outcome:
    """Turn a remote's answer (``status`` None for a network error) into the row's next state."""
    if status is not None and 200 <= status < 300:
        return Outcome.done()
    if status == 410:
        return Outcome("gone", "410 Gone")
    expired = now - created_at >= GIVE_UP_AFTER
    if status in (429, 503):
        at = retry_after(headers.get("retry-after"), now) or now + backoff(attempts)
        return (
            Outcome("dead", f"gave up after {attempts} attempts: {status}")
            if expired
            else Outcome.retry(at, f"{status}, retry at {at.isoformat()}")
        )
    if status is not None and 400 <= status < 500:
        return Outcome("dead", f"{status} from the remote")
    error = f"HTTP {status}" if status is not None else "network error"
    if expired:
        return Outcome("dead", f"gave up after {attempts} attempts: {error}")
    return Outcome.retry(now + backoff(attempts), error)


def finished(state: str) -> sa.Select[Any]:
    """Deliveries that ended in ``state`` (``done``, ``dead``), by when: a ``server.days`` source."""
    return sa.select(deliveries.c.finished_at.label("at"), deliveries.c.id.label("who")).where(
        deliveries.c.state == state, deliveries.c.finished_at.is_not(None)
    )
