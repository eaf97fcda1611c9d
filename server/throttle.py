"""Slowing down password guessing: the one owner of the ``sign_in_failures`` table.

Each failed sign-in is remembered twice, under the account name that was tried (whether
or not such an account exists, so the answer says nothing about that) and under the
client's address. When either has ``LIMIT`` failures within ``WINDOW``, sign-in is
refused (429) until the oldest of them leaves the window. The rows live in the database,
so every web process of ``kith serve --workers N`` counts the same failures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.tables import sign_in_failures
from server.types import utcnow

LIMIT = 10
WINDOW = timedelta(minutes=15)
SCOPES = ("account", "address")


def retry_after(failures: Sequence[datetime], now: datetime, *, limit: int = LIMIT, window: timedelta = WINDOW) -> int:
    """Seconds to wait before the next try, given the failures' times within the window; 0: go ahead.

    Pure: with ``limit`` or more failures, the wait lasts until the one that made the
    count reach ``limit`` (counting back from the newest) drops out of the window.
    """
    recent = sorted(t for t in failures if t > now - window)
    if len(recent) < limit:
        return 0
    blocking = recent[len(recent) - limit]
    return max(1, math.ceil((blocking + window - now).total_seconds()))


def keys(account: str, address: str) -> list[tuple[str, str]]:
    """The (scope, key) pairs one attempt counts under."""
    return [("account", account.strip().lower()[:255]), ("address", address[:255])]


def outdated(now: datetime) -> sa.ColumnElement[bool]:
    """Failed sign-ins older than the window: they no longer count, and the prune deletes them."""
    return sign_in_failures.c.created_at <= now - WINDOW


async def wait_for(conn: AsyncConnection, account: str, address: str) -> int:
    """Seconds until this account name and address may try again (0: now)."""
    now = utcnow()
    wait = 0
    for scope, key in keys(account, address):
        query = (
            sa.select(sign_in_failures.c.created_at)
            .where(
                sign_in_failures.c.scope == scope,
                sign_in_failures.c.key == key,
                sign_in_failures.c.created_at > now - WINDOW,
            )
            .order_by(sign_in_failures.c.created_at.desc())
            .limit(LIMIT)
        )
        times = list((await conn.execute(query)).scalars().all())
        wait = max(wait, retry_after(times, now))
    return wait


async def record_failure(conn: AsyncConnection, account: str, address: str) -> None:
    """Remember a failed attempt (and forget those older than the window)."""
    now = utcnow()
    await conn.execute(sa.delete(sign_in_failures).where(sign_in_failures.c.created_at <= now - WINDOW))
    await conn.execute(
        sa.insert(sign_in_failures),
        [{"scope": scope, "key": key, "created_at": now} for scope, key in keys(account, address)],
    )


async def forget_account(conn: AsyncConnection, account: str) -> None:
    """A successful sign-in clears the account's failures (not the address's: a guesser may
    hold one real account)."""
    [(scope, key), _] = keys(account, "")
    await conn.execute(
        sa.delete(sign_in_failures).where(sign_in_failures.c.scope == scope, sign_in_failures.c.key == key)
    )
