"""Local actors: groups, people and the instance actor share one table and one name space.

The one owner of the ``local_actors`` table. A ``LocalActor`` carries everything public
about an actor; the private key stays in the database and is read only by the code that
signs (``signing_key``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import Conflict, NotFound
from server.federation.keys import generate_rsa_keypair
from server.rows import record
from server.tables import local_actors
from server.types import utcnow


@dataclass(frozen=True, slots=True)
class LocalActor:
    """A local group, person or the instance's Application actor, as the world may see it."""

    id: int
    name: str
    kind: str  # group | person | application
    title: str
    summary: str
    public_key_pem: str
    approval: str  # auto | manual
    posting: str  # members | anyone | moderators
    discoverable: bool
    rules: str  # one rule per line
    created_at: datetime
    benefits: str  # what members gain (groups)
    objectives: str  # what the group sets out to do
    welcome: str  # the direct message a new member gets
    welcome_enabled: bool


#: The parts of a local actor its leaders may change (``update_profile``).
PROFILE_FIELDS = frozenset(
    {"title", "summary", "rules", "benefits", "objectives", "welcome", "welcome_enabled", "approval", "posting"}
)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """What signs a local actor's requests: its kind and name (for the key id) and its private key."""

    actor_id: int
    kind: str
    name: str
    private_key_pem: str


# The public columns, in LocalActor's order: the private key never leaves this module unasked.
PUBLIC_COLUMNS = [local_actors.c[name] for name in LocalActor.__dataclass_fields__]


async def new_keypair() -> tuple[str, str]:
    """An RSA-2048 pair as PEM; generated in a thread since it takes ~50-200 ms of CPU."""
    pair = await asyncio.to_thread(generate_rsa_keypair)
    return pair.private_pem, pair.public_pem


async def insert_local_actor(conn: AsyncConnection, *, name: str, kind: str, **fields: Any) -> LocalActor:
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
            .returning(*PUBLIC_COLUMNS)
        )
    except IntegrityError:
        raise Conflict(f"the name {name!r} is already taken") from None
    return record(LocalActor, result.one())


async def update_profile(conn: AsyncConnection, actor_id: int, values: dict[str, Any]) -> LocalActor:
    """Change the ``PROFILE_FIELDS`` in ``values`` (already validated); returns the actor as it now is."""
    unknown = set(values) - PROFILE_FIELDS
    if unknown:
        raise ValueError(f"not profile fields: {sorted(unknown)}")
    result = await conn.execute(
        sa.update(local_actors).where(local_actors.c.id == actor_id).values(**values).returning(*PUBLIC_COLUMNS)
    )
    return record(LocalActor, result.one())


async def get_local_actor(conn: AsyncConnection, name: str, kind: str | None = None) -> LocalActor:
    """The local actor called ``name`` (of ``kind`` when given), else ``NotFound``."""
    query = sa.select(*PUBLIC_COLUMNS).where(local_actors.c.name == name)
    if kind is not None:
        query = query.where(local_actors.c.kind == kind)
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        raise NotFound(f"no {kind or 'actor'} named {name!r}")
    return record(LocalActor, row)


async def get_local_actor_by_id(conn: AsyncConnection, actor_id: int, kind: str | None = None) -> LocalActor:
    """The local actor with this id (of ``kind`` when given), else ``NotFound``."""
    query = sa.select(*PUBLIC_COLUMNS).where(local_actors.c.id == actor_id)
    if kind is not None:
        query = query.where(local_actors.c.kind == kind)
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        raise NotFound(f"no such {kind or 'actor'}")
    return record(LocalActor, row)


async def list_local_actors(conn: AsyncConnection, kind: str) -> list[LocalActor]:
    """Every local actor of ``kind``, by name."""
    query = sa.select(*PUBLIC_COLUMNS).where(local_actors.c.kind == kind).order_by(local_actors.c.name)
    return [record(LocalActor, r) for r in (await conn.execute(query)).all()]


async def count_local_actors(conn: AsyncConnection, kind: str) -> int:
    """How many local actors of ``kind`` there are."""
    query = sa.select(sa.func.count()).where(local_actors.c.kind == kind)
    return int((await conn.execute(query)).scalar_one())


_SIGNING_KEY = sa.select(
    local_actors.c.id.label("actor_id"), local_actors.c.kind, local_actors.c.name, local_actors.c.private_key_pem
)


async def signing_key(conn: AsyncConnection, actor_id: int) -> SigningKey:
    """The private key of a local actor, for the one place that signs with it."""
    row = (await conn.execute(_SIGNING_KEY.where(local_actors.c.id == actor_id))).one()
    return record(SigningKey, row)


async def name_taken(conn: AsyncConnection, name: str) -> bool:
    """Whether a group, person or the instance already holds ``name``."""
    row = await conn.execute(sa.select(local_actors.c.id).where(local_actors.c.name == name))
    return row.first() is not None


async def ensure_no_clash(conn: AsyncConnection, name: str) -> None:
    """Fail early (before key generation) when ``name`` is in use."""
    if await name_taken(conn, name):
        raise Conflict(f"the name {name!r} is already taken")
