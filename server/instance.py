"""The instance itself: its Application actor (signs our fetches), its secret key and its settings.

The one owner of the ``instance_settings`` table (a few key/value pairs: the generated
secret key, the federation mode, the policy version).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database, upsert
from server.errors import Conflict, NotFound
from server.links import INSTANCE_ACTOR_NAME
from server.local_actors import get_local_actor, insert_local_actor, signing_key
from server.tables import instance_settings
from server.types import utcnow


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
        try:
            actor = await get_local_actor(conn, INSTANCE_ACTOR_NAME, "application")
        except NotFound:
            actor = await insert_local_actor(conn, name=INSTANCE_ACTOR_NAME, kind="application")
        key = await signing_key(conn, actor.id)
        secret = configured_secret or await _stored_secret(conn)
    return Instance(actor.id, key.private_key_pem, actor.public_key_pem, secret)


async def _stored_secret(conn: AsyncConnection) -> str:
    value = await get_setting(conn, "secret_key")
    if value is None:
        value = secrets.token_urlsafe(48)
        await conn.execute(sa.insert(instance_settings).values(key="secret_key", value=value))
    return value


async def get_setting(conn: AsyncConnection, key: str, default: str | None = None) -> str | None:
    """An instance-wide setting, or ``default`` when it was never set."""
    value = (
        await conn.execute(sa.select(instance_settings.c.value).where(instance_settings.c.key == key))
    ).scalar_one_or_none()
    return default if value is None else value


async def set_setting(conn: AsyncConnection, dialect: str, key: str, value: str) -> None:
    """Set an instance-wide setting, in the caller's transaction."""
    await conn.execute(upsert(dialect, instance_settings, ["key"], {"key": key, "value": value}, {"value": value}))


#: The instance setting each running worker stamps with the time, every ``HEARTBEAT_EVERY`` seconds.
HEARTBEAT_KEY = "worker_heartbeat"
HEARTBEAT_EVERY = 30.0


async def beat(db: Database) -> None:
    """Record that a worker is alive now (read by ``kith check``)."""
    async with db.transaction() as conn:
        await set_setting(conn, db.dialect, HEARTBEAT_KEY, utcnow().isoformat())


async def last_heartbeat(db: Database) -> datetime | None:
    """When a worker last said it was alive, or None if none ever ran here."""
    async with db.read() as conn:
        value = await get_setting(conn, HEARTBEAT_KEY)
    return datetime.fromisoformat(value) if value else None
