"""Local actors: groups, people and the instance actor share one table and one name space."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import Conflict, NotFound
from server.federation.keys import generate_rsa_keypair
from server.tables import local_actors
from server.types import utcnow


async def new_keypair() -> tuple[str, str]:
    """An RSA-2048 pair as PEM; generated in a thread since it takes ~50-200 ms of CPU."""
    pair = await asyncio.to_thread(generate_rsa_keypair)
    return pair.private_pem, pair.public_pem


async def insert_local_actor(conn: AsyncConnection, *, name: str, kind: str, **fields: Any) -> sa.Row:
    """Insert a local actor with a fresh key pair; ``Conflict`` if the name is taken."""
    private_pem, public_pem = await new_keypair()
    try:
        result = await conn.execute(
            sa.insert(local_actors)
            .values(
                name=name,
                kind=kind,
                private_key_pem=private_pem,
                public_key_pem=public_pem,
                created_at=utcnow(),
                **fields,
            )
            .returning(*local_actors.c)
        )
    except IntegrityError:
        raise Conflict(f"the name {name!r} is already taken") from None
    return result.one()


async def get_local_actor(conn: AsyncConnection, name: str, kind: str | None = None) -> sa.Row:
    """The local actor called ``name`` (of ``kind`` when given), else ``NotFound``."""
    query = sa.select(local_actors).where(local_actors.c.name == name)
    if kind is not None:
        query = query.where(local_actors.c.kind == kind)
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        raise NotFound(f"no {kind or 'actor'} named {name!r}")
    return row


async def name_taken(conn: AsyncConnection, name: str) -> bool:
    row = await conn.execute(sa.select(local_actors.c.id).where(local_actors.c.name == name))
    return row.first() is not None


async def ensure_no_clash(conn: AsyncConnection, name: str) -> None:
    """Fail early (before key generation) when ``name`` is in use."""
    if await name_taken(conn, name):
        raise Conflict(f"the name {name!r} is already taken")
