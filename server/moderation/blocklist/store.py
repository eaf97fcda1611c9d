"""The one writer of the instance's federation policy: blocks, allows, the mode, suspended accounts.

Domain blocks and domain allows are two tables with one life cycle (create, read, list,
delete; blocks also update), so one set of functions serves both, told which by a
``PolicyTable`` (``BLOCKS`` or ``ALLOWS``). Every change is one ``policy_change``: the
caller's writes, the audit row, a new policy version (other processes reload within
seconds) and ``effects.reconcile``, which makes stored data agree with the new policy, all
in one transaction.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database
from server.errors import BadRequest, NotFound, Unprocessable
from server.federation.actors import set_suspended
from server.instance import set_setting
from server.jsondoc import has_nul
from server.moderation.blocklist.cache import FEDERATION_MODE, POLICY_VERSION, read_setting
from server.moderation.blocklist.effects import Effects, reconcile
from server.moderation.blocklist.matcher import MODES, SEVERITIES, normalize_domain
from server.rows import chunked, record
from server.tables import admin_audit_log, domain_allows, domain_blocks
from server.types import utcnow

log = logging.getLogger("kith.blocklist")

# --------------------------------------------------------------------------- rows and specs


@dataclass(frozen=True, slots=True)
class DomainBlock:
    """One stored domain block (Mastodon's Admin::DomainBlock)."""

    id: int
    domain: str
    severity: str
    reject_media: bool
    reject_reports: bool
    public_comment: str
    private_comment: str
    obfuscate: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DomainAllow:
    """One domain on the allowlist (Mastodon's Admin::DomainAllow)."""

    id: int
    domain: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the admin audit log: who changed what, when, why."""

    id: int
    actor: str
    action: str
    target: str
    detail: str  # JSON
    reason: str
    created_at: datetime


BLOCK_SETTINGS = ("severity", "reject_media", "reject_reports", "public_comment", "private_comment", "obfuscate")
# What an import (``put_block``) sets on a block that exists: all but the admin's private comment.
IMPORTED_SETTINGS = tuple(k for k in BLOCK_SETTINGS if k != "private_comment")


@dataclass(frozen=True)
class BlockSpec:
    """A domain block as an admin asks for it."""

    domain: str
    severity: str = "suspend"
    reject_media: bool = False
    reject_reports: bool = False
    public_comment: str = ""
    private_comment: str = ""
    obfuscate: bool = False

    def validated(self) -> BlockSpec:
        """The spec with its domain normalised; ``Unprocessable`` saying what is wrong."""
        if self.severity not in SEVERITIES:
            raise Unprocessable(f"severity must be one of {', '.join(SEVERITIES)}")
        if len(self.public_comment) > 1000 or len(self.private_comment) > 1000:
            raise Unprocessable("comments must be at most 1000 characters")
        if has_nul(self.public_comment, self.private_comment):  # PostgreSQL text cannot hold one
            raise Unprocessable("comments must not contain a NUL character")
        return dataclasses.replace(self, domain=normalize_domain(self.domain))

    def columns(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def note(self) -> str:
        """The audit reason when the admin gave none."""
        return self.private_comment


@dataclass(frozen=True)
class AllowSpec:
    """A domain to put on the allowlist."""

    domain: str

    def validated(self) -> AllowSpec:
        return AllowSpec(normalize_domain(self.domain))

    def columns(self) -> dict[str, Any]:
        return {"domain": self.domain}

    @property
    def note(self) -> str:
        return ""


R = TypeVar("R", DomainBlock, DomainAllow)
S = TypeVar("S", BlockSpec, AllowSpec)


@dataclass(frozen=True)
class PolicyTable(Generic[R, S]):
    """One of the two domain tables: its rows, its audit action names and its wording."""

    table: sa.Table
    row: type[R]
    noun: str  # audit actions are "<noun>.create", "<noun>.update", "<noun>.delete"
    present: str  # "<domain> is already blocked"
    absent: str  # "<domain> is not blocked"
    unknown: str  # no row with that id

    def action(self, verb: str) -> str:
        return f"{self.noun}.{verb}"


BLOCKS: PolicyTable[DomainBlock, BlockSpec] = PolicyTable(
    domain_blocks, DomainBlock, "domain_block", "is already blocked", "is not blocked", "no such domain block"
)
ALLOWS: PolicyTable[DomainAllow, AllowSpec] = PolicyTable(
    domain_allows, DomainAllow, "domain_allow", "is already allowed", "is not on the allowlist", "no such domain allow"
)


class AlreadyPresent(Unprocessable):
    """The domain already has a row in that table (Mastodon answers with the existing one)."""


# --------------------------------------------------------------------------- one change


async def audit(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    target: str,
    detail: Mapping[str, Any] | None = None,
    reason: str = "",
) -> None:
    """Record one admin change: who, what, when, why."""
    await conn.execute(
        sa.insert(admin_audit_log).values(
            actor=actor,
            action=action,
            target=target,
            detail=json.dumps(dict(detail or {}), default=str),
            reason=reason,
            created_at=utcnow(),
        )
    )


async def _set_setting(conn: AsyncConnection, db: Database, key: str, value: str) -> None:
    await set_setting(conn, db.dialect, key, value)


async def _bump_version(conn: AsyncConnection, db: Database) -> None:
    version = int(await read_setting(conn, POLICY_VERSION, "0")) + 1
    await _set_setting(conn, db, POLICY_VERSION, str(version))


@dataclass
class PolicyChange:
    """The open transaction of a policy change, and what it did once committed."""

    conn: AsyncConnection
    effects: Effects = field(default_factory=dict)


@asynccontextmanager
async def policy_change(
    db: Database, *, actor: str, action: str, target: str, detail: Mapping[str, Any] | None = None, reason: str = ""
) -> AsyncIterator[PolicyChange]:
    """One admin change: the caller's writes, then its audit row, a new policy version and its effects,
    all in one transaction."""
    async with db.transaction() as conn:
        change = PolicyChange(conn)
        yield change
        await audit(conn, actor=actor, action=action, target=target, detail=detail, reason=reason)
        await _bump_version(conn, db)
        change.effects = await reconcile(conn)


async def settle(db: Database) -> Effects:
    """A new policy version and its effects, after writes that each had their own transaction (an import)."""
    async with db.transaction() as conn:
        await _bump_version(conn, db)
        return await reconcile(conn)


# --------------------------------------------------------------------------- blocks and allows


async def create(db: Database, kind: PolicyTable[R, S], spec: S, *, actor: str, reason: str = "") -> tuple[R, Effects]:
    """Add a block or an allow; ``AlreadyPresent`` (422) if the domain has one. Returns it and its effects."""
    spec = spec.validated()
    columns = spec.columns()
    now = utcnow()
    stamps = {name: now for name in ("created_at", "updated_at") if name in kind.table.c}
    async with policy_change(
        db, actor=actor, action=kind.action("create"), target=spec.domain, detail=columns, reason=reason or spec.note
    ) as change:
        try:
            row = (
                await change.conn.execute(sa.insert(kind.table).values(**columns, **stamps).returning(*kind.table.c))
            ).one()
        except IntegrityError:
            raise AlreadyPresent(f"{spec.domain} {kind.present}") from None
    log.info("%s: %s %s: %s", actor, kind.action("create"), spec.domain, change.effects)
    return record(kind.row, row), change.effects


async def get(conn: AsyncConnection, kind: PolicyTable[R, S], row_id: int) -> R:
    """The block or allow with this id, else ``NotFound``."""
    row = (await conn.execute(sa.select(kind.table).where(kind.table.c.id == row_id))).one_or_none()
    if row is None:
        raise NotFound(kind.unknown)
    return record(kind.row, row)


async def find(conn: AsyncConnection, kind: PolicyTable[R, S], domain: str) -> R:
    """The block or allow of exactly this domain (as typed by an admin), else ``NotFound``."""
    domain = normalize_domain(domain)
    row = (await conn.execute(sa.select(kind.table).where(kind.table.c.domain == domain))).one_or_none()
    if row is None:
        raise NotFound(f"{domain} {kind.absent}")
    return record(kind.row, row)


async def page(
    conn: AsyncConnection,
    kind: PolicyTable[R, S],
    *,
    max_id: int | None = None,
    since_id: int | None = None,
    min_id: int | None = None,
    limit: int | None = None,
) -> list[R]:
    """Rows newest first (the page just above ``min_id`` when given), Mastodon's id pagination."""
    table = kind.table
    query = sa.select(table)
    if max_id is not None:
        query = query.where(table.c.id < max_id)
    if since_id is not None:
        query = query.where(table.c.id > since_id)
    if min_id is not None:
        query = query.where(table.c.id > min_id).order_by(table.c.id.asc())
    else:
        query = query.order_by(table.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    rows = [record(kind.row, r) for r in (await conn.execute(query)).all()]
    return sorted(rows, key=lambda r: r.id, reverse=True)


async def blocks_by_domain(conn: AsyncConnection, domains: Sequence[str]) -> dict[str, DomainBlock]:
    """The blocks of exactly these (normalised) domains, by domain."""
    found: dict[str, DomainBlock] = {}
    for chunk in chunked(domains):
        rows = (await conn.execute(sa.select(domain_blocks).where(domain_blocks.c.domain.in_(chunk)))).all()
        found.update((r.domain, record(DomainBlock, r)) for r in rows)
    return found


async def count(conn: AsyncConnection, kind: PolicyTable[R, S]) -> int:
    """How many blocks (or allows) there are."""
    return int((await conn.execute(sa.select(sa.func.count()).select_from(kind.table))).scalar_one())


async def audit_page(conn: AsyncConnection, *, max_id: int | None = None, limit: int = 50) -> list[AuditEntry]:
    """The admin audit log, newest first (the page below ``max_id`` when given)."""
    query = sa.select(admin_audit_log).order_by(admin_audit_log.c.id.desc()).limit(limit)
    if max_id is not None:
        query = query.where(admin_audit_log.c.id < max_id)
    return [record(AuditEntry, r) for r in (await conn.execute(query)).all()]


async def delete(db: Database, kind: PolicyTable[R, S], row_id: int, *, actor: str) -> R:
    """Lift a block (the posts it hid come back) or remove an allow; returns what was removed."""
    async with db.read() as conn:
        row = await get(conn, kind, row_id)
    async with policy_change(db, actor=actor, action=kind.action("delete"), target=row.domain) as change:
        await change.conn.execute(sa.delete(kind.table).where(kind.table.c.id == row_id))
    return row


async def update_block(db: Database, block_id: int, changes: Mapping[str, Any], *, actor: str) -> DomainBlock:
    """Change a block's severity, flags or comments (not its domain)."""
    unknown = set(changes) - set(BLOCK_SETTINGS)
    if unknown:
        raise Unprocessable(f"cannot change {', '.join(sorted(unknown))}")
    async with db.read() as conn:
        current = await get(conn, BLOCKS, block_id)
    spec = BlockSpec(**{**{k: getattr(current, k) for k in BLOCK_SETTINGS}, "domain": current.domain, **changes})
    settings = {k: v for k, v in spec.validated().columns().items() if k != "domain"}
    async with policy_change(
        db, actor=actor, action=BLOCKS.action("update"), target=current.domain, detail=changes
    ) as change:
        row = (
            await change.conn.execute(
                sa.update(domain_blocks)
                .where(domain_blocks.c.id == block_id)
                .values(**settings, updated_at=utcnow())
                .returning(*domain_blocks.c)
            )
        ).one()
    return record(DomainBlock, row)


async def put_block(conn: AsyncConnection, spec: BlockSpec, *, actor: str, detail: Mapping[str, Any]) -> bool:
    """Add or update one block with its audit row, in the caller's transaction; True when it is new.

    For imports: many of these, then one ``settle``. An update keeps the private comment.
    """
    spec = spec.validated()
    existing = (
        await conn.execute(sa.select(domain_blocks.c.id).where(domain_blocks.c.domain == spec.domain))
    ).scalar_one_or_none()
    now = utcnow()
    if existing is None:
        await conn.execute(sa.insert(domain_blocks).values(**spec.columns(), created_at=now, updated_at=now))
    else:
        values = {k: v for k, v in spec.columns().items() if k in IMPORTED_SETTINGS}
        await conn.execute(
            sa.update(domain_blocks).where(domain_blocks.c.id == existing).values(**values, updated_at=now)
        )
    action = BLOCKS.action("create" if existing is None else "update")
    await audit(conn, actor=actor, action=action, target=spec.domain, detail=detail)
    return existing is None


# --------------------------------------------------------------------------- mode and accounts


async def federation_mode(conn: AsyncConnection) -> str:
    """``open`` or ``allowlist``."""
    return await read_setting(conn, FEDERATION_MODE, "open")


async def set_federation_mode(db: Database, mode: str, *, actor: str) -> Effects:
    """``open`` or ``allowlist`` (limited federation: only allowed domains federate at all)."""
    if mode not in MODES:
        raise BadRequest(f"mode must be one of {', '.join(MODES)}")
    async with policy_change(db, actor=actor, action="federation.mode", target=mode) as change:
        await _set_setting(change.conn, db, FEDERATION_MODE, mode)
    return change.effects


async def set_account_suspended(db: Database, uri: str, suspended: bool, *, actor: str, reason: str = "") -> Effects:
    """Suspend (or lift the suspension of) one remote account instance-wide."""
    action = "account.suspend" if suspended else "account.unsuspend"
    async with policy_change(db, actor=actor, action=action, target=uri, reason=reason) as change:
        if not await set_suspended(change.conn, uri, suspended):
            raise NotFound(f"no known remote account {uri}")
    return change.effects
