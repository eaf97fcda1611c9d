"""Local accounts (admins, moderators): creation and passwords (argon2id)."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database
from server.errors import BadRequest, NotFound
from server.local_actors import ensure_no_clash, insert_local_actor
from server.names import validate_name
from server.tables import local_actors, users
from server.types import utcnow

_hasher = PasswordHasher()
MIN_PASSWORD = 10


async def create_user(
    db: Database, name: str, *, admin: bool = False, password: str | None = None
) -> tuple[sa.Row, str | None]:
    """Create a local account; returns the row and the generated password, if one was made."""
    validate_name(name)
    generated = None
    if password is None:
        generated = password = secrets.token_urlsafe(15)
    elif len(password) < MIN_PASSWORD:
        raise BadRequest(f"the password must be at least {MIN_PASSWORD} characters")
    async with db.transaction() as conn:
        await ensure_no_clash(conn, name)
        actor = await insert_local_actor(conn, name=name, kind="person", title=name)
        user = (
            await conn.execute(
                sa.insert(users)
                .values(
                    actor_id=actor.id,
                    password_hash=_hasher.hash(password),
                    is_admin=admin,
                    created_at=utcnow(),
                )
                .returning(*users.c)
            )
        ).one()
    return user, generated


async def get_user(conn: AsyncConnection, name: str) -> sa.Row:
    """The account called ``name`` joined with its actor, else ``NotFound``."""
    row = (
        await conn.execute(
            sa.select(users, local_actors.c.name)
            .join(local_actors, local_actors.c.id == users.c.actor_id)
            .where(local_actors.c.name == name)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no user named {name!r}")
    return row


def check_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches the stored argon2 hash."""
    try:
        return _hasher.verify(password_hash, password)
    except VerificationError:
        return False
