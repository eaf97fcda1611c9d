"""Signing in to the console: password, throttle, second factor, session; and signing out.

Composes the engine's owners (``accounts``, ``throttle``, ``two_factor``, ``sessions``)
into the steps the web console and the command line take. Every refusal of a password
looks the same (``refused``), whether the account exists, is disabled or the password
is wrong, and costs the same (``accounts.authenticate``).
"""

from __future__ import annotations

from dataclasses import dataclass

from server import accounts, sessions, throttle, two_factor
from server.accounts import User
from server.db import Database
from server.errors import NotFound
from server.sessions import Session


@dataclass(frozen=True)
class Attempt:
    """What a sign-in step came to.

    ``outcome``: ``signed_in`` (``token`` is the new session's), ``second_factor`` (``token``
    is a pending session's, good only for giving the code), ``refused``, or ``throttled``
    (try again in ``retry_after`` seconds).
    """

    outcome: str
    token: str | None = None
    retry_after: int = 0


async def sign_in(db: Database, username: str, password: str, *, address: str, user_agent: str = "") -> Attempt:
    """Check a user name and password, unless this name or address has failed too often lately."""
    async with db.read() as conn:
        wait = await throttle.wait_for(conn, username, address)
    if wait:
        return Attempt("throttled", retry_after=wait)
    user = await accounts.authenticate(db, username, password)
    async with db.transaction() as conn:
        if user is None:
            await throttle.record_failure(conn, username, address)
            return Attempt("refused")
        await throttle.forget_account(conn, username)
        pending = await two_factor.enabled(conn, user.id)
        token = await sessions.start(
            conn, user.id, second_factor_pending=pending, address=address, user_agent=user_agent
        )
    return Attempt("second_factor" if pending else "signed_in", token)


async def give_second_factor(db: Database, session: Session, code: str, *, address: str) -> Attempt:
    """The code (TOTP or a recovery code) of a session that passed its password; throttled as passwords are."""
    async with db.read() as conn:
        wait = await throttle.wait_for(conn, session.username, address)
    if wait:
        return Attempt("throttled", retry_after=wait)
    async with db.transaction() as conn:
        if not await two_factor.verify(conn, session.user_id, code):
            await throttle.record_failure(conn, session.username, address)
            return Attempt("refused")
        await throttle.forget_account(conn, session.username)
        await sessions.complete_second_factor(conn, session)
    return Attempt("signed_in")


async def current(db: Database, token: str | None) -> Session | None:
    """The live session a cookie's token names, or None; notes its use."""
    if not token:
        return None
    async with db.read() as conn:
        found = await sessions.find(conn, token)
    if found is not None and sessions.stale(found):  # most requests write nothing
        async with db.transaction() as conn:
            await sessions.touch(conn, found)
    return found


async def sign_out(db: Database, token: str) -> None:
    """End this session."""
    async with db.transaction() as conn:
        await sessions.end(conn, token)


async def sign_out_everywhere(db: Database, name: str) -> int:
    """An admin (or the user) ends every session of an account; how many ended."""
    async with db.transaction() as conn:
        user = await accounts.get_user(conn, name)
        return await sessions.end_all(conn, user.id)


async def disable_account(db: Database, name: str, disabled: bool = True) -> User:
    """An admin disables an account (its sessions end at once) or enables it again."""
    async with db.transaction() as conn:
        user = await accounts.set_disabled(conn, name, disabled)
        if disabled:
            await sessions.end_all(conn, user.id)
    return user


async def change_password(db: Database, session: Session, current_password: str, new_password: str) -> int:
    """A signed-in user changes their password; their other sessions end. How many ended."""
    await accounts.change_password(db, session.username, current_password, new_password)
    async with db.transaction() as conn:
        return await sessions.end_all(conn, session.user_id, keep=session.id)


async def find_user(db: Database, name: str) -> User | None:
    """The account called ``name``, or None."""
    try:
        async with db.read() as conn:
            return await accounts.get_user(conn, name)
    except NotFound:
        return None
