"""The instance itself: its Application actor (signs our fetches) and its secret key."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from server.db import Database
from server.errors import Conflict
from server.links import INSTANCE_ACTOR_NAME
from server.local_actors import insert_local_actor
from server.tables import instance_settings, local_actors


@dataclass(frozen=True)
class Instance:
    """What the running server needs to know about itself."""

    actor_id: int
    private_key_pem: str
    public_key_pem: str
    secret_key: str


async def ensure_instance(db: Database, configured_secret: str | None = None) -> Instance:
    """Load the instance actor and secret, creating them on first start.

    Processes started together on a fresh database (``kith worker & kith worker &``)
    race to create them: the loser's insert fails on the unique name, and it then
    loads what the winner committed.
    """
    try:
        return await _load_or_create(db, configured_secret)
    except (Conflict, sa.exc.IntegrityError):  # Conflict: the actor's name; IntegrityError: the secret's key
        return await _load_or_create(db, configured_secret)


async def _load_or_create(db: Database, configured_secret: str | None) -> Instance:
    async with db.transaction() as conn:
        row = (
            await conn.execute(sa.select(local_actors).where(local_actors.c.name == INSTANCE_ACTOR_NAME))
        ).one_or_none()
        if row is None:
            row = await insert_local_actor(conn, name=INSTANCE_ACTOR_NAME, kind="application")
        secret = configured_secret or await _stored_secret(conn)
    return Instance(row.id, row.private_key_pem, row.public_key_pem, secret)


async def _stored_secret(conn: sa.ext.asyncio.AsyncConnection) -> str:
    value = (
        await conn.execute(sa.select(instance_settings.c.value).where(instance_settings.c.key == "secret_key"))
    ).scalar_one_or_none()
    if value is None:
        value = secrets.token_urlsafe(48)
        await conn.execute(sa.insert(instance_settings).values(key="secret_key", value=value))
    return value
