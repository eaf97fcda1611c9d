"""Instance federation policy: Mastodon's domain blocks, limited federation, account suspension.

``DomainPolicy`` is the pure matcher; ``Blocklist`` caches one per process and is
handed as ``is_blocked`` to every door (the URL guard, the inbox, fan-out and
delivery). Each admin change is one transaction that records the audit log, bumps
a version (other processes reload within seconds) and acts on what is already
there: members from a suspended domain leave every group, their posts are hidden
(kept for audit), queued deliveries to it are dropped; lifting the block restores
the posts.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database, upsert
from server.errors import BadRequest, NotFound, Unprocessable
from server.tables import (
    admin_audit_log,
    deliveries,
    domain_allows,
    domain_blocks,
    follows,
    instance_settings,
    outbound_activities,
    posts,
    remote_actors,
)
from server.types import utcnow

log = logging.getLogger("kith.blocklist")

SEVERITIES = ("suspend", "silence", "noop")
MODES = ("open", "allowlist")
CSV_HEADER = ["#domain", "#severity", "#reject_media", "#reject_reports", "#public_comment", "#obfuscate"]


def normalize_domain(value: str) -> str:
    """A domain as blocks store it: lowercase, IDNA, no scheme, port, path or trailing dot.

    ``*.example.com`` (Mastodon's CSV wildcard) means ``example.com``: a block covers
    every subdomain anyway. Raises ``Unprocessable`` for anything that is not a domain.
    """
    domain = (value or "").strip().lower()
    if "://" in domain:
        domain = domain.split("://", 1)[1]
    domain = domain.split("/", 1)[0].rstrip(".")
    if domain.startswith("*."):
        domain = domain[2:]
    if not domain or "*" in domain or " " in domain or ".." in domain or domain.startswith("."):
        raise Unprocessable(f"{value!r} is not a domain")
    if len(domain) > 253:
        raise Unprocessable("a domain is at most 253 characters")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise Unprocessable(f"{value!r} is not a domain") from None
    return domain


def host_of_authority(authority: str) -> str:
    """``example.com:8443`` -> ``example.com``; ``[::1]:80`` -> ``::1``."""
    if authority.startswith("["):
        return authority[1 : authority.index("]")]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def parents(host: str) -> Iterable[str]:
    """``a.b.example.com`` -> itself, ``b.example.com``, ``example.com``, ``com``."""
    labels = host.lower().rstrip(".").split(".")
    for i in range(len(labels)):
        yield ".".join(labels[i:])


@dataclass(frozen=True)
class Block:
    """One domain block as the matcher needs it."""

    domain: str
    severity: str
    reject_media: bool = False
    reject_reports: bool = False


@dataclass(frozen=True)
class DomainPolicy:
    """The pure matcher over the instance's blocks, allows and suspended accounts."""

    blocks: Mapping[str, Block] = field(default_factory=dict)
    allows: frozenset[str] = frozenset()
    allowlist_mode: bool = False
    suspended_actors: frozenset[str] = frozenset()

    def block_for(self, host: str) -> Block | None:
        """The block covering ``host`` (itself or a parent domain), most specific first."""
        for candidate in parents(host):
            block = self.blocks.get(candidate)
            if block is not None:
                return block
        return None

    def is_allowed_in_allowlist(self, host: str) -> bool:
        return any(candidate in self.allows for candidate in parents(host))

    def is_suspended(self, host: str) -> bool:
        """Nothing in, nothing out: a suspend block, or outside the allowlist in limited mode."""
        if self.allowlist_mode and not self.is_allowed_in_allowlist(host):
            return True
        block = self.block_for(host)
        return block is not None and block.severity == "suspend"

    def is_silenced(self, host: str) -> bool:
        block = self.block_for(host)
        return block is not None and block.severity == "silence"

    def rejects_media(self, host: str) -> bool:
        block = self.block_for(host)
        return block is not None and (block.reject_media or block.severity == "suspend")

    def rejects_reports(self, host: str) -> bool:
        block = self.block_for(host)
        return block is not None and (block.reject_reports or block.severity == "suspend")

    def actor_suspended(self, uri: str) -> bool:
        return uri in self.suspended_actors


async def load_policy(conn: AsyncConnection) -> DomainPolicy:
    """Read the whole policy; small (thousands of rows at most), so it lives in memory."""
    blocks = {
        r.domain: Block(r.domain, r.severity, r.reject_media, r.reject_reports)
        for r in (await conn.execute(sa.select(domain_blocks))).all()
    }
    allows = frozenset(r.domain for r in (await conn.execute(sa.select(domain_allows.c.domain))).all())
    mode = await _setting(conn, "federation_mode", "open")
    suspended = frozenset(
        r.uri
        for r in (
            await conn.execute(sa.select(remote_actors.c.uri).where(remote_actors.c.suspended_at.is_not(None)))
        ).all()
    )
    return DomainPolicy(blocks, allows, mode == "allowlist", suspended)


async def _setting(conn: AsyncConnection, key: str, default: str) -> str:
    value = (
        await conn.execute(sa.select(instance_settings.c.value).where(instance_settings.c.key == key))
    ).scalar_one_or_none()
    return default if value is None else value


async def _set_setting(conn: AsyncConnection, db: Database, key: str, value: str) -> None:
    await conn.execute(upsert(db.dialect, instance_settings, ["key"], {"key": key, "value": value}, {"value": value}))


async def _bump_version(conn: AsyncConnection, db: Database) -> None:
    version = int(await _setting(conn, "policy_version", "0")) + 1
    await _set_setting(conn, db, "policy_version", str(version))


class Blocklist:
    """The process's cached policy. ``is_blocked`` is the hook every door calls."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.policy = DomainPolicy()
        self.version = ""

    def is_blocked(self, host: str) -> bool:
        """True when nothing may be fetched from, delivered to or accepted from ``host``."""
        return self.policy.is_suspended(host)

    async def reload(self) -> None:
        async with self.db.read() as conn:
            self.version = await _setting(conn, "policy_version", "0")
            self.policy = await load_policy(conn)

    async def refresh_if_changed(self) -> None:
        """Reload when the stored policy version moved (one single-row read)."""
        async with self.db.read() as conn:
            version = await _setting(conn, "policy_version", "0")
        if version != self.version:
            await self.reload()

    async def watch(self, stop: asyncio.Event, interval: float = 2.0) -> None:
        """Reload when another process (a CLI command, another web worker) changed the policy."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                return
            try:
                await self.refresh_if_changed()
            except Exception:  # a database hiccup must not kill the watcher
                log.exception("policy reload failed")


async def audit(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
    reason: str = "",
) -> None:
    """Record one admin change: who, what, when, why."""
    await conn.execute(
        sa.insert(admin_audit_log).values(
            actor=actor,
            action=action,
            target=target,
            detail=json.dumps(detail or {}, default=str),
            reason=reason,
            created_at=utcnow(),
        )
    )


# --------------------------------------------------------------------------- effects


async def reconcile(conn: AsyncConnection) -> dict[str, int]:
    """Make stored data agree with the policy just written (one transaction with the change).

    Suspended origins lose their memberships and pending follows, their posts and our
    Announces of them are hidden, and deliveries queued to them are dropped. Origins no
    longer suspended get their posts back (the memberships are gone: they follow anew).
    """
    policy = await load_policy(conn)
    actors = (await conn.execute(sa.select(remote_actors.c.id, remote_actors.c.uri, remote_actors.c.domain))).all()
    cut = [a.id for a in actors if policy.is_suspended(host_of_authority(a.domain)) or policy.actor_suspended(a.uri)]
    stats = {"memberships_removed": 0, "posts_hidden": 0, "posts_restored": 0, "deliveries_dropped": 0}
    for chunk in _chunks(cut):
        stats["memberships_removed"] += (
            await conn.execute(sa.delete(follows).where(follows.c.actor_id.in_(chunk)))
        ).rowcount
        hidden = (
            (
                await conn.execute(
                    sa.update(posts)
                    .where(posts.c.author_id.in_(chunk), posts.c.state == "visible")
                    .values(state="suspended")
                    .returning(posts.c.id)
                )
            )
            .scalars()
            .all()
        )
        stats["posts_hidden"] += len(hidden)
    await conn.execute(
        sa.update(outbound_activities)
        .where(outbound_activities.c.post_id.in_(sa.select(posts.c.id).where(posts.c.state == "suspended")))
        .values(hidden=True)
    )
    # Restore what is no longer cut off.
    cut_set = set(cut)
    restorable = (
        await conn.execute(sa.select(posts.c.id, posts.c.author_id).where(posts.c.state == "suspended"))
    ).all()
    restore = [p.id for p in restorable if p.author_id not in cut_set]
    for chunk in _chunks(restore):
        await conn.execute(sa.update(posts).where(posts.c.id.in_(chunk)).values(state="visible"))
        await conn.execute(
            sa.update(outbound_activities).where(outbound_activities.c.post_id.in_(chunk)).values(hidden=False)
        )
        stats["posts_restored"] += len(chunk)
    queued = (
        (await conn.execute(sa.select(deliveries.c.domain).where(deliveries.c.state == "queued").distinct()))
        .scalars()
        .all()
    )
    dead = [d for d in queued if policy.is_suspended(host_of_authority(d))]
    for chunk in _chunks(dead):
        stats["deliveries_dropped"] += (
            await conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.domain.in_(chunk), deliveries.c.state == "queued")
                .values(state="dead", last_error="the domain is suspended", lease_until=None, finished_at=utcnow())
            )
        ).rowcount
    return stats


def _chunks(items: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass
class PolicyChange:
    """The open transaction of a policy change, and what it did once committed."""

    conn: AsyncConnection
    effects: dict[str, int] = field(default_factory=dict)


@asynccontextmanager
async def policy_change(
    db: Database, *, actor: str, action: str, target: str, detail: dict[str, Any] | None = None, reason: str = ""
) -> AsyncIterator[PolicyChange]:
    """One admin change: the caller's writes, then its audit row, a new policy version and its effects,
    all in one transaction."""
    async with db.transaction() as conn:
        change = PolicyChange(conn)
        yield change
        await audit(conn, actor=actor, action=action, target=target, detail=detail, reason=reason)
        await _bump_version(conn, db)
        change.effects = await reconcile(conn)


async def _by_id(conn: AsyncConnection, table: sa.Table, row_id: int, missing: str) -> Any:
    row = (await conn.execute(sa.select(table).where(table.c.id == row_id))).one_or_none()
    if row is None:
        raise NotFound(missing)
    return row


async def _by_domain(conn: AsyncConnection, table: sa.Table, domain: str, missing: str) -> Any:
    domain = normalize_domain(domain)
    row = (await conn.execute(sa.select(table).where(table.c.domain == domain))).one_or_none()
    if row is None:
        raise NotFound(f"{domain} {missing}")
    return row


# --------------------------------------------------------------------------- domain blocks


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
        if self.severity not in SEVERITIES:
            raise Unprocessable(f"severity must be one of {', '.join(SEVERITIES)}")
        if len(self.public_comment) > 1000 or len(self.private_comment) > 1000:
            raise Unprocessable("comments must be at most 1000 characters")
        return BlockSpec(**{**self.__dict__, "domain": normalize_domain(self.domain)})


async def create_block(db: Database, spec: BlockSpec, *, actor: str, reason: str = "") -> tuple[Any, dict[str, int]]:
    """Add a block (422 if the domain already has one); returns the row and what it acted on."""
    spec = spec.validated()
    now = utcnow()
    async with policy_change(
        db,
        actor=actor,
        action="domain_block.create",
        target=spec.domain,
        detail=spec.__dict__,
        reason=reason or spec.private_comment,
    ) as change:
        try:
            row = (
                await change.conn.execute(
                    sa.insert(domain_blocks)
                    .values(**spec.__dict__, created_at=now, updated_at=now)
                    .returning(*domain_blocks.c)
                )
            ).one()
        except IntegrityError:
            raise Unprocessable(f"{spec.domain} is already blocked") from None
    stats = change.effects
    log.info("%s blocked %s (%s): %s", actor, spec.domain, spec.severity, stats)
    return row, stats


async def update_block(db: Database, block_id: int, changes: Mapping[str, Any], *, actor: str) -> Any:
    """Change a block's severity, flags or comments (not its domain)."""
    allowed = {"severity", "reject_media", "reject_reports", "public_comment", "private_comment", "obfuscate"}
    unknown = set(changes) - allowed
    if unknown:
        raise Unprocessable(f"cannot change {', '.join(sorted(unknown))}")
    async with db.read() as conn:
        current = await get_block(conn, block_id)
    spec = BlockSpec(**{**{k: getattr(current, k) for k in allowed}, "domain": current.domain, **changes}).validated()
    async with policy_change(
        db, actor=actor, action="domain_block.update", target=current.domain, detail=dict(changes)
    ) as change:
        row = (
            await change.conn.execute(
                sa.update(domain_blocks)
                .where(domain_blocks.c.id == block_id)
                .values(**{k: getattr(spec, k) for k in allowed}, updated_at=utcnow())
                .returning(*domain_blocks.c)
            )
        ).one()
    return row


async def delete_block(db: Database, block_id: int, *, actor: str) -> Any:
    """Lift a block; posts it hid come back."""
    async with db.read() as conn:
        row = await get_block(conn, block_id)
    async with policy_change(db, actor=actor, action="domain_block.delete", target=row.domain) as change:
        await change.conn.execute(sa.delete(domain_blocks).where(domain_blocks.c.id == block_id))
    return row


async def get_block(conn: AsyncConnection, block_id: int) -> Any:
    return await _by_id(conn, domain_blocks, block_id, "no such domain block")


async def find_block(conn: AsyncConnection, domain: str) -> Any:
    return await _by_domain(conn, domain_blocks, domain, "is not blocked")


async def list_blocks(
    conn: AsyncConnection,
    *,
    max_id: int | None = None,
    since_id: int | None = None,
    min_id: int | None = None,
    limit: int | None = None,
) -> list[Any]:
    """Blocks newest first (or oldest first after ``min_id``), Mastodon's id pagination."""
    return await _page(conn, domain_blocks, max_id=max_id, since_id=since_id, min_id=min_id, limit=limit)


async def _page(
    conn: AsyncConnection,
    table: sa.Table,
    *,
    max_id: int | None,
    since_id: int | None,
    min_id: int | None,
    limit: int | None,
) -> list[Any]:
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
    rows = list((await conn.execute(query)).all())
    return sorted(rows, key=lambda r: r.id, reverse=True)


def obfuscated(domain: str) -> str:
    """The domain as Mastodon shows an obfuscated block: the middle half starred, dots kept."""
    length = len(domain)
    visible = length // 4
    return "".join("*" if visible < i < length - visible and ch != "." else ch for i, ch in enumerate(domain))


def digest(domain: str) -> str:
    """SHA-256 of the domain, published beside obfuscated entries so others can match them."""
    return hashlib.sha256(domain.encode()).hexdigest()


# --------------------------------------------------------------------------- allowlist and mode


async def create_allow(db: Database, domain: str, *, actor: str) -> Any:
    domain = normalize_domain(domain)
    async with policy_change(db, actor=actor, action="domain_allow.create", target=domain) as change:
        try:
            row = (
                await change.conn.execute(
                    sa.insert(domain_allows).values(domain=domain, created_at=utcnow()).returning(*domain_allows.c)
                )
            ).one()
        except IntegrityError:
            raise Unprocessable(f"{domain} is already allowed") from None
    return row


async def delete_allow(db: Database, allow_id: int, *, actor: str) -> Any:
    async with db.read() as conn:
        row = await get_allow(conn, allow_id)
    async with policy_change(db, actor=actor, action="domain_allow.delete", target=row.domain) as change:
        await change.conn.execute(sa.delete(domain_allows).where(domain_allows.c.id == allow_id))
    return row


async def get_allow(conn: AsyncConnection, allow_id: int) -> Any:
    return await _by_id(conn, domain_allows, allow_id, "no such domain allow")


async def find_allow(conn: AsyncConnection, domain: str) -> Any:
    return await _by_domain(conn, domain_allows, domain, "is not on the allowlist")


async def list_allows(
    conn: AsyncConnection,
    *,
    max_id: int | None = None,
    since_id: int | None = None,
    min_id: int | None = None,
    limit: int | None = None,
) -> list[Any]:
    return await _page(conn, domain_allows, max_id=max_id, since_id=since_id, min_id=min_id, limit=limit)


async def federation_mode(conn: AsyncConnection) -> str:
    return await _setting(conn, "federation_mode", "open")


async def set_federation_mode(db: Database, mode: str, *, actor: str) -> dict[str, int]:
    """``open`` or ``allowlist`` (limited federation: only allowed domains federate at all)."""
    if mode not in MODES:
        raise BadRequest(f"mode must be one of {', '.join(MODES)}")
    async with policy_change(db, actor=actor, action="federation.mode", target=mode) as change:
        await _set_setting(change.conn, db, "federation_mode", mode)
    return change.effects


# --------------------------------------------------------------------------- accounts


async def set_account_suspended(db: Database, uri: str, suspended: bool, *, actor: str, reason: str = "") -> dict:
    """Suspend (or lift the suspension of) one remote account instance-wide."""
    action = "account.suspend" if suspended else "account.unsuspend"
    async with policy_change(db, actor=actor, action=action, target=uri, reason=reason) as change:
        result = await change.conn.execute(
            sa.update(remote_actors)
            .where(remote_actors.c.uri == uri)
            .values(suspended_at=utcnow() if suspended else None)
        )
        if result.rowcount == 0:
            raise NotFound(f"no known remote account {uri}")
    return change.effects


# --------------------------------------------------------------------------- CSV


@dataclass
class ImportReport:
    """What an import did: blocks added, updated, and lines skipped with the reason."""

    added: int = 0
    updated: int = 0
    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # (line, domain, reason)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def parse_csv(text: str) -> tuple[list[tuple[int, BlockSpec]], list[tuple[int, str, str]]]:
    """Mastodon's blocklist CSV (with or without the ``#`` header) -> specs and skipped lines."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return [], []
    header = [h.strip().lstrip("#").lower() for h in rows[0]]
    has_header = "domain" in header
    if not has_header:
        header = [h.lstrip("#") for h in CSV_HEADER]
    body = rows[1:] if has_header else rows
    specs: list[tuple[int, BlockSpec]] = []
    skipped: list[tuple[int, str, str]] = []
    for number, row in enumerate(body, start=2 if has_header else 1):
        if not row or not any(cell.strip() for cell in row):
            continue
        record = dict(zip(header, row, strict=False))
        raw_domain = (record.get("domain") or "").strip()
        if raw_domain.startswith("#"):
            continue  # a comment line
        severity = (record.get("severity") or "suspend").strip().lower() or "suspend"
        try:
            spec = BlockSpec(
                domain=raw_domain,
                severity=severity,
                reject_media=_truthy(record.get("reject_media")),
                reject_reports=_truthy(record.get("reject_reports")),
                public_comment=(record.get("public_comment") or "").strip(),
                obfuscate=_truthy(record.get("obfuscate")),
            ).validated()
        except Unprocessable as exc:
            reason = "obfuscated domain: the real name is unknown" if "*" in raw_domain.lstrip("*.") else exc.reason
            skipped.append((number, raw_domain, reason))
            continue
        specs.append((number, spec))
    return specs, skipped


async def import_csv(db: Database, text: str, *, actor: str, progress: Any = None) -> ImportReport:
    """Load a published blocklist: new domains are blocked, existing blocks updated, one audit row each."""
    specs, skipped = parse_csv(text)
    report = ImportReport(skipped=skipped)
    for i, (number, spec) in enumerate(specs, start=1):
        async with db.transaction() as conn:
            existing = (
                await conn.execute(sa.select(domain_blocks).where(domain_blocks.c.domain == spec.domain))
            ).one_or_none()
            now = utcnow()
            if existing is None:
                await conn.execute(sa.insert(domain_blocks).values(**spec.__dict__, created_at=now, updated_at=now))
                report.added += 1
                action = "domain_block.create"
            else:
                values = {k: v for k, v in spec.__dict__.items() if k not in ("domain", "private_comment")}
                await conn.execute(
                    sa.update(domain_blocks).where(domain_blocks.c.id == existing.id).values(**values, updated_at=now)
                )
                report.updated += 1
                action = "domain_block.update"
            await audit(conn, actor=actor, action=action, target=spec.domain, detail={"import_line": number})
        if progress is not None:
            progress(i, len(specs))
    async with db.transaction() as conn:
        await _bump_version(conn, db)
        await reconcile(conn)
    return report


async def export_csv(conn: AsyncConnection) -> str:
    """Every block in Mastodon's CSV shape, oldest first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for r in (await conn.execute(sa.select(domain_blocks).order_by(domain_blocks.c.id))).all():
        writer.writerow(
            [
                r.domain,
                r.severity,
                str(r.reject_media).lower(),
                str(r.reject_reports).lower(),
                r.public_comment,
                str(r.obfuscate).lower(),
            ]
        )
    return out.getvalue()
