"""Optional TOTP two-factor sign-in (RFC 6238) and one-time recovery codes.

The one owner of the ``totp_credentials`` and ``recovery_codes`` tables. The codes are
computed by ``pyotp`` (a well-kept library; nothing of RFC 6238 is written here). A code
is accepted within one 30-second step either side of now (clocks drift), and only once:
the last accepted step is stored, so a code seen over a shoulder cannot be replayed.
Recovery codes are random (64 bits each) and stored as SHA-256 digests: being random,
unlike passwords, they need no slow hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import BadRequest, Conflict
from server.tables import recovery_codes, totp_credentials
from server.types import utcnow

RECOVERY_CODES = 10
DRIFT_STEPS = 1


def _digest(code: str) -> str:
    return hashlib.sha256(normal_code(code).encode()).hexdigest()


def normal_code(code: str) -> str:
    """A typed code without spaces or dashes, lower case (recovery codes are shown grouped)."""
    return "".join(c for c in code.lower() if c.isalnum())


def matching_step(secret: str, code: str, at: datetime) -> int | None:
    """The time step whose TOTP is ``code`` (now, or one step either side), else None."""
    code = normal_code(code)
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(at)
    for offset in (0, *[d for k in range(1, DRIFT_STEPS + 1) for d in (-k, k)]):
        if hmac.compare_digest(totp.generate_otp(now_step + offset), code):
            return now_step + offset
    return None


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (typed in, or from a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


async def enabled(conn: AsyncConnection, user_id: int) -> bool:
    """Does this account ask for a code at sign-in?"""
    query = sa.select(totp_credentials.c.confirmed_at).where(totp_credentials.c.user_id == user_id)
    return (await conn.execute(query)).scalar_one_or_none() is not None


async def begin(conn: AsyncConnection, user_id: int) -> str:
    """Start setting up (a new secret, not yet asked at sign-in); returns the base32 secret."""
    row = (await conn.execute(sa.select(totp_credentials).where(totp_credentials.c.user_id == user_id))).one_or_none()
    if row is not None and row.confirmed_at is not None:
        raise Conflict("two-factor sign-in is already on; turn it off first")
    secret = pyotp.random_base32()
    await conn.execute(sa.delete(totp_credentials).where(totp_credentials.c.user_id == user_id))
    await conn.execute(sa.insert(totp_credentials).values(user_id=user_id, secret=secret, created_at=utcnow()))
    return secret


async def pending_secret(conn: AsyncConnection, user_id: int) -> str | None:
    """The secret being set up (not yet confirmed), or None."""
    query = sa.select(totp_credentials.c.secret).where(
        totp_credentials.c.user_id == user_id, totp_credentials.c.confirmed_at.is_(None)
    )
    return (await conn.execute(query)).scalar_one_or_none()


async def confirm(conn: AsyncConnection, user_id: int, code: str) -> list[str]:
    """The first right code turns two-factor sign-in on; returns fresh recovery codes (shown once)."""
    secret = await pending_secret(conn, user_id)
    if secret is None:
        raise BadRequest("start setting up two-factor sign-in first")
    step = matching_step(secret, code, utcnow())
    if step is None:
        raise BadRequest("that code is not right; check the authenticator's clock and try the next one")
    await conn.execute(
        sa.update(totp_credentials)
        .where(totp_credentials.c.user_id == user_id)
        .values(confirmed_at=utcnow(), last_step=step)
    )
    return await new_recovery_codes(conn, user_id)


async def new_recovery_codes(conn: AsyncConnection, user_id: int) -> list[str]:
    """Replace an account's recovery codes; returns them (they are stored only as digests)."""
    codes = [secrets.token_hex(8) for _ in range(RECOVERY_CODES)]
    await conn.execute(sa.delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
    await conn.execute(sa.insert(recovery_codes), [{"user_id": user_id, "code_hash": _digest(c)} for c in codes])
    return [f"{c[:4]}-{c[4:8]}-{c[8:12]}-{c[12:]}" for c in codes]


async def verify(conn: AsyncConnection, user_id: int, code: str) -> bool:
    """A sign-in's second factor: a TOTP code not used before, or an unused recovery code (used up now)."""
    row = (await conn.execute(sa.select(totp_credentials).where(totp_credentials.c.user_id == user_id))).one_or_none()
    if row is None or row.confirmed_at is None:
        return False
    step = matching_step(row.secret, code, utcnow())
    if step is not None:
        # Conditional on the stored step, so two requests racing with one code cannot both pass.
        result = await conn.execute(
            sa.update(totp_credentials)
            .where(
                totp_credentials.c.user_id == user_id,
                sa.or_(totp_credentials.c.last_step.is_(None), totp_credentials.c.last_step < step),
            )
            .values(last_step=step)
        )
        return result.rowcount > 0
    result = await conn.execute(
        sa.update(recovery_codes)
        .where(
            recovery_codes.c.user_id == user_id,
            recovery_codes.c.code_hash == _digest(code),
            recovery_codes.c.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    return result.rowcount > 0


async def recovery_codes_left(conn: AsyncConnection, user_id: int) -> int:
    """How many unused recovery codes an account has."""
    query = sa.select(sa.func.count()).where(recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None))
    return int((await conn.execute(query)).scalar_one())


async def turn_off(conn: AsyncConnection, user_id: int) -> None:
    """Two-factor sign-in off: the secret and the recovery codes go."""
    await conn.execute(sa.delete(totp_credentials).where(totp_credentials.c.user_id == user_id))
    await conn.execute(sa.delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
