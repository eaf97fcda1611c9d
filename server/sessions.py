"""Console sign-in sessions: the one owner of the ``sessions`` table.

A session is a row; the browser's cookie carries only a random token, which is stored
here as its SHA-256 digest (a stolen database copy signs nobody in). A session lasts
``LIFETIME`` from sign-in, ends at sign-out, and ends early when its account is disabled
or an admin signs the account out everywhere. A session that passed the password but
still owes a second factor is ``second_factor_pending`` and lets its holder do nothing
but give the code, for ``PENDING_LIFETIME``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.rows import record
from server.tables import local_actors, sessions, users
from server.types import utcnow

LIFETIME = timedelta(days=14)
PENDING_LIFETIME = timedelta(minutes=10)
TOUCH_EVERY = timedelta(minutes=5)  # last_seen_at is for people reading it: no write per request


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser, with the account it belongs to."""

    id: int
    user_id: int
    second_factor_pending: bool
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    username: str
    is_admin: bool


def digest(token: str) -> str:
    """How a session token is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


def expired(now: datetime) -> sa.ColumnElement[bool]:
    """Sessions past their end: the worker's prune deletes them (``server.retention``)."""
    return sessions.c.expires_at < now


async def start(
    conn: AsyncConnection,
    user_id: int,
    *,
    second_factor_pending: bool = False,
    address: str = "",
    user_agent: str = "",
) -> str:
    """A new session for an account; returns the token for the cookie (never stored as such)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    await conn.execute(
        sa.insert(sessions).values(
            token_hash=digest(token),
            user_id=user_id,
            second_factor_pending=second_factor_pending,
            address=address[:64],
            user_agent=user_agent[:255],
            created_at=now,
            last_seen_at=now,
            expires_at=now + (PENDING_LIFETIME if second_factor_pending else LIFETIME),
        )
    )
    # A small table kept small: whoever signs in sweeps what has run out.
    await conn.execute(sa.delete(sessions).where(sessions.c.expires_at < now))
    return token


_FIND = (
    sa.select(
        sessions.c.id,
        sessions.c.user_id,
        sessions.c.second_factor_pending,
        sessions.c.created_at,
        sessions.c.last_seen_at,
        sessions.c.expires_at,
        local_actors.c.name.label("username"),
        users.c.is_admin,
    )
    .join(users, users.c.id == sessions.c.user_id)
    .join(local_actors, local_actors.c.id == users.c.actor_id)
    .where(sessions.c.token_hash == sa.bindparam("token_hash"), users.c.disabled_at.is_(None))
)


async def find(conn: AsyncConnection, token: str) -> Session | None:
    """The live session for a cookie's token, or None (unknown, expired, or its account disabled)."""
    row = (await conn.execute(_FIND, {"token_hash": digest(token)})).one_or_none()
    if row is None or row.expires_at <= utcnow():
        return None
    return record(Session, row)


def stale(session: Session) -> bool:
    """Is the session's ``last_seen_at`` old enough to be worth a write?"""
    return utcnow() - session.last_seen_at >= TOUCH_EVERY


async def touch(conn: AsyncConnection, session: Session) -> None:
    """Note that the session was used now."""
    await conn.execute(sa.update(sessions).where(sessions.c.id == session.id).values(last_seen_at=utcnow()))


async def complete_second_factor(conn: AsyncConnection, session: Session) -> None:
    """The code was right: the pending session becomes a full one, for the full lifetime."""
    now = utcnow()
    await conn.execute(
        sa.update(sessions)
        .where(sessions.c.id == session.id)
        .values(second_factor_pending=False, last_seen_at=now, expires_at=now + LIFETIME)
    )


async def end(conn: AsyncConnection, token: str) -> bool:
    """Sign out: the session's row goes. False when there was none."""
    return (await conn.execute(sa.delete(sessions).where(sessions.c.token_hash == digest(token)))).rowcount > 0


async def end_all(conn: AsyncConnection, user_id: int, *, keep: int | None = None) -> int:
    """Sign an account out everywhere (but the session ``keep``, when given); how many ended."""
    stmt = sa.delete(sessions).where(sessions.c.user_id == user_id)
    if keep is not None:
        stmt = stmt.where(sessions.c.id != keep)
    return (await conn.execute(stmt)).rowcount


async def count_for(conn: AsyncConnection, user_id: int) -> int:
    """How many live sessions an account has."""
    query = sa.select(sa.func.count()).where(sessions.c.user_id == user_id, sessions.c.expires_at > utcnow())
    return int((await conn.execute(query)).scalar_one())
