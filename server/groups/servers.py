"""The servers Kith knows, for the admin's federation health page: read only.

A server is known when Kith has met an actor of it (``remote_actors``, written by
``federation/actors``) or has sent to it through the delivery queue or failed to
(``deliveries`` and ``server_health``, written by ``federation/delivery`` and
``federation/sender``). For each: its members here (people of it with an accepted
membership, ``follows``, written by ``groups/following``), its circuit breaker, the
last delivery row it took and why the last one that died died (a 4xx answer kills a
delivery without counting against the breaker, which counts only 5xx and network errors). Fan-out
sends that succeed the first time write no row, so "last delivery" is the last one that
went through the delivery queue (a direct send such as an Accept, or a retry).

Its software is what its NodeInfo named (``server_software``, written by ``federation/nodeinfo``
from the worker's survey of member servers), or None when it was never asked or did not say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.tables import deliveries, follows, remote_actors, server_health, server_software


@dataclass(frozen=True, slots=True)
class KnownServer:
    """One remote server as the admin sees it."""

    domain: str
    actors: int  # actors of it Kith has stored
    members: int  # of them, members of at least one group here
    failures: int  # consecutive failed sends (0: healthy, or never failed)
    last_error: str | None
    open_until: datetime | None  # the circuit breaker: sends paused until then
    last_delivered: datetime | None  # the last delivery row it took
    last_dead: str | None = None  # why the latest delivery that was given up on failed
    software: str | None = None  # what its NodeInfo names (None: not known)

    def circuit_open(self, now: datetime) -> bool:
        """True while sends to this server are paused."""
        return self.open_until is not None and self.open_until > now


def _domains() -> sa.Subquery:
    return sa.union(
        sa.select(remote_actors.c.domain), sa.select(server_health.c.domain), sa.select(deliveries.c.domain)
    ).subquery("known")


def _per_domain() -> tuple[sa.Subquery, sa.Subquery, sa.Subquery]:
    actors = (
        sa.select(remote_actors.c.domain, sa.func.count().label("n")).group_by(remote_actors.c.domain).subquery("a")
    )
    members = (
        sa.select(remote_actors.c.domain, sa.func.count(sa.distinct(follows.c.actor_id)).label("n"))
        .select_from(follows.join(remote_actors, remote_actors.c.id == follows.c.actor_id))
        .where(follows.c.state == "accepted")
        .group_by(remote_actors.c.domain)
        .subquery("m")
    )
    delivered = (
        sa.select(deliveries.c.domain, sa.func.max(deliveries.c.finished_at).label("at"))
        .where(deliveries.c.state == "done")
        .group_by(deliveries.c.domain)
        .subquery("d")
    )
    return actors, members, delivered


async def count(conn: AsyncConnection) -> int:
    """How many servers Kith knows."""
    return int((await conn.execute(sa.select(sa.func.count()).select_from(_domains()))).scalar_one())


async def page(conn: AsyncConnection, *, offset: int, limit: int) -> list[KnownServer]:
    """Known servers, failing ones first (most failures first), then by members, then by name."""
    known = _domains()
    actors, members, delivered = _per_domain()
    failures = sa.func.coalesce(server_health.c.failures, 0)
    dead = deliveries.alias("dead")
    last_dead = (
        sa.select(dead.c.last_error)
        .where(dead.c.domain == known.c.domain, dead.c.state == "dead")
        .order_by(dead.c.finished_at.desc(), dead.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    member_count = sa.func.coalesce(members.c.n, 0)
    stmt: sa.Select[Any] = (
        sa.select(
            known.c.domain,
            sa.func.coalesce(actors.c.n, 0),
            member_count,
            failures,
            server_health.c.last_error,
            server_health.c.open_until,
            delivered.c.at,
            last_dead,
            server_software.c.software,
        )
        .select_from(
            known.outerjoin(actors, actors.c.domain == known.c.domain)
            .outerjoin(members, members.c.domain == known.c.domain)
            .outerjoin(server_health, server_health.c.domain == known.c.domain)
            .outerjoin(delivered, delivered.c.domain == known.c.domain)
            .outerjoin(server_software, server_software.c.domain == known.c.domain)
        )
        .order_by(failures.desc(), member_count.desc(), known.c.domain)
        .offset(offset)
        .limit(limit)
    )
    rows = (await conn.execute(stmt)).all()
    return [KnownServer(d, int(a), int(m), int(f), e, o, _moment(at), x, sw) for d, a, m, f, e, o, at, x, sw in rows]


def _moment(value: Any) -> datetime | None:
    """An aggregate's moment: SQLite hands back the column's naive UTC text, PostgreSQL an aware datetime."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
