"""Local accounts (admins, moderators): creation, passwords (argon2id), disabling. The owner of ``users``."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database
from server.errors import BadRequest, NotFound
from server.local_actors import PUBLIC_COLUMNS, LocalActor, ensure_no_clash, insert_local_actor
from server.names import validate_name
from server.rows import chunked, record
from server.tables import local_actors, users
from server.types import utcnow

_hasher = PasswordHasher()
MIN_PASSWORD = 10


@dataclass(frozen=True, slots=True)
class User:
    """A local account and the name of its person actor."""

    id: int
    actor_id: int
    name: str
    is_admin: bool
    password_hash: str = field(repr=False)
    created_at: datetime
    disabled_at: datetime | None
    linked_actor: str | None  # the fediverse account moderation notices go to (``kith user link``)

    @property
    def disabled(self) -> bool:
        """An admin disabled the account: it signs in nowhere and its sessions and tokens stop working."""
        return self.disabled_at is not None


async def create_user(
    db: Database, name: str, *, admin: bool = False, password: str | None = None
) -> tuple[User, str | None]:
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
        await conn.execute(
            sa.insert(users).values(
                actor_id=actor.id, password_hash=_hasher.hash(password), is_admin=admin, created_at=utcnow()
            )
        )
        user = await get_user(conn, name)
    return user, generated


_USER = sa.select(users, local_actors.c.name).join(local_actors, local_actors.c.id == users.c.actor_id)


async def get_user(conn: AsyncConnection, name: str) -> User:
    """The account called ``name``, else ``NotFound``."""
    row = (await conn.execute(_USER.where(local_actors.c.name == name))).one_or_none()
    if row is None:
        raise NotFound(f"no user named {name!r}")
    return record(User, row)


async def get_user_by_id(conn: AsyncConnection, user_id: int) -> User:
    """The account with this id, else ``NotFound``."""
    row = (await conn.execute(_USER.where(users.c.id == user_id))).one_or_none()
    if row is None:
        raise NotFound("no such user")
    return record(User, row)


async def count_users(conn: AsyncConnection) -> int:
    """How many local accounts there are."""
    return int((await conn.execute(sa.select(sa.func.count()).select_from(users))).scalar_one())


def check_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches the stored argon2 hash."""
    try:
        return _hasher.verify(password_hash, password)
    except VerificationError:
        return False


_dummy_hash: str | None = None


def normal_name(name: str) -> str:
    """A typed user name as stored (names are lower case; people type them otherwise)."""
    return name.strip().lower()


async def authenticate(db: Database, username: str, password: str) -> User | None:
    """The enabled account with this name and password, or None: the same cost either way.

    An unknown name is checked against a throwaway argon2 hash, so that it takes as long
    as a wrong password and the answer's timing does not tell whether the account exists.
    """
    global _dummy_hash
    user: User | None = None
    try:
        async with db.read() as conn:
            user = await get_user(conn, normal_name(username))
        stored = user.password_hash
    except (NotFound, BadRequest):
        if _dummy_hash is None:
            _dummy_hash = await asyncio.to_thread(_hasher.hash, secrets.token_urlsafe(16))
        stored = _dummy_hash
    # argon2 costs tens of milliseconds of CPU: off the event loop.
    ok = await asyncio.to_thread(check_password, stored, password)
    if not ok or user is None or user.disabled:
        return None
    return user


def _checked(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"the password must be at least {MIN_PASSWORD} characters")
    if len(password) > 1000:
        raise BadRequest("the password must be at most 1000 characters")
    return password


async def change_password(db: Database, name: str, current: str, new: str) -> User:
    """A user changes their own password: the current one must match. Returns the account."""
    _checked(new)
    async with db.read() as conn:
        user = await get_user(conn, name)
    if not await asyncio.to_thread(check_password, user.password_hash, current):
        raise BadRequest("the current password is wrong")
    return await set_password(db, name, new)


async def set_password(db: Database, name: str, password: str) -> User:
    """Set an account's password (its owner through ``change_password``, or an admin from the shell)."""
    hashed = await asyncio.to_thread(_hasher.hash, _checked(password))
    async with db.transaction() as conn:
        user = await get_user(conn, name)
        await conn.execute(sa.update(users).where(users.c.id == user.id).values(password_hash=hashed))
        return await get_user(conn, name)


async def set_disabled(conn: AsyncConnection, name: str, disabled: bool) -> User:
    """Disable an account (or enable it again), in the caller's transaction; its sessions end with
    ``sessions.end_all`` in the same transaction (``signin.disable_account`` does both)."""
    user = await get_user(conn, name)
    value = (user.disabled_at or utcnow()) if disabled else None
    await conn.execute(sa.update(users).where(users.c.id == user.id).values(disabled_at=value))
    return await get_user(conn, name)


async def set_admin(db: Database, name: str, admin: bool) -> User:
    """Make an account an instance admin, or take that away (``kith user make-admin|revoke-admin``, the console)."""
    async with db.transaction() as conn:
        user = await get_user(conn, name)
        await conn.execute(sa.update(users).where(users.c.id == user.id).values(is_admin=admin))
        return await get_user(conn, name)


async def set_linked_actor(db: Database, name: str, actor_uri: str | None) -> User:
    """Link an account to its fediverse account (an actor URI, already verified), or unlink it (None).

    One fediverse account links to one local account at most: a reply it signs must name
    exactly one moderator.
    """
    async with db.transaction() as conn:
        user = await get_user(conn, name)
        if actor_uri is not None:
            taken = (
                await conn.execute(_USER.where(users.c.linked_actor == actor_uri, users.c.id != user.id))
            ).one_or_none()
            if taken is not None:
                raise BadRequest(f"{actor_uri} is linked to {taken.name} already")
        await conn.execute(sa.update(users).where(users.c.id == user.id).values(linked_actor=actor_uri))
        return await get_user(conn, name)


async def list_users(conn: AsyncConnection, *, after: str = "", limit: int = 50) -> list[User]:
    """Accounts by name, the page after ``after`` (keyset paging for the admin console)."""
    query = _USER.order_by(local_actors.c.name).limit(limit)
    if after:
        query = query.where(local_actors.c.name > after)
    return [record(User, r) for r in (await conn.execute(query)).all()]


@dataclass(frozen=True, slots=True)
class LocalAccount:
    """A local actor and, for a person, its account: what reports show of local people and groups."""

    actor: LocalActor
    user_id: int | None
    is_admin: bool | None


async def local_accounts(
    conn: AsyncConnection, *, names: Sequence[str] = (), user_ids: Sequence[int] = (), actor_ids: Sequence[int] = ()
) -> list[LocalAccount]:
    """Local actors named by name, by account id or by actor id, each with its account when it has one."""
    query = sa.select(*PUBLIC_COLUMNS, users.c.id.label("user_id"), users.c.is_admin).outerjoin(
        users, users.c.actor_id == local_actors.c.id
    )
    conditions = [
        *(local_actors.c.name.in_(c) for c in chunked(names)),
        *(users.c.id.in_(c) for c in chunked(user_ids)),
        *(local_actors.c.id.in_(c) for c in chunked(actor_ids)),
    ]
    found: dict[int, LocalAccount] = {}
    for condition in conditions:
        for row in (await conn.execute(query.where(condition))).all():
            found[row.id] = LocalAccount(record(LocalActor, row), row.user_id, row.is_admin)
    return list(found.values())
