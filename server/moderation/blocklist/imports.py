"""Blocklist imports from the admin console: a preview of exactly what will change, then background work.

The one owner of the ``blocklist_imports`` table. An admin uploads Mastodon's CSV
(``mastodon_csv.parse_csv`` reads it, the same parser as ``kith domain import``);
``preview`` compares each line with the stored blocks as ``store.put_block`` would
apply it, line after line (a domain listed twice is compared with its earlier line).
Nothing changes until the admin applies it; then the worker runs it (``run``), one
``put_block`` per transaction with the import's progress moved in the same transaction,
and one ``store.settle`` at the end, as ``mastodon_csv.import_csv`` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from server.db import Database
from server.errors import BadRequest, NotFound
from server.moderation.blocklist.mastodon_csv import Skipped, parse_csv
from server.moderation.blocklist.store import IMPORTED_SETTINGS, BlockSpec, blocks_by_domain, put_block, settle
from server.queue import Outcome, QueueRow
from server.rows import record
from server.tables import blocklist_imports
from server.types import utcnow

MAX_CSV = 4 * 1024 * 1024  # a published blocklist of tens of thousands of domains is well under this
LEASE = timedelta(minutes=5)


# --------------------------------------------------------------------------- the preview (pure)


@dataclass(frozen=True)
class LineChange:
    """What one line of the CSV will do: add a block, change one (which settings), or nothing."""

    line: int
    spec: BlockSpec
    fields: tuple[str, ...] = ()  # the settings it changes on an existing block
    before: dict[str, object] = field(default_factory=dict)  # those settings as they are now


@dataclass(frozen=True)
class Preview:
    """Every line of an import, sorted by what it will do."""

    added: list[LineChange] = field(default_factory=list)
    changed: list[LineChange] = field(default_factory=list)
    unchanged: list[LineChange] = field(default_factory=list)
    refused: list[Skipped] = field(default_factory=list)

    @property
    def total(self) -> int:
        """The lines that will be applied (each writes its block and an audit row)."""
        return len(self.added) + len(self.changed) + len(self.unchanged)


def compare(
    specs: list[tuple[int, BlockSpec]], refused: list[Skipped], current: dict[str, dict[str, object]]
) -> Preview:
    """What applying ``specs`` in order would do to blocks whose imported settings are ``current`` (by domain)."""
    preview = Preview(refused=list(refused))
    state = dict(current)
    for line, spec in specs:
        wanted = {k: getattr(spec, k) for k in IMPORTED_SETTINGS}
        before = state.get(spec.domain)
        if before is None:
            preview.added.append(LineChange(line, spec))
        else:
            fields = tuple(k for k in IMPORTED_SETTINGS if before[k] != wanted[k])
            target = preview.changed if fields else preview.unchanged
            target.append(LineChange(line, spec, fields, {k: before[k] for k in fields}))
        state[spec.domain] = wanted
    return preview


# --------------------------------------------------------------------------- stored imports


@dataclass(frozen=True, slots=True)
class BlocklistImport(QueueRow):
    """An uploaded CSV and how far its import has come (``state``: preview, queued, done, dead)."""

    actor: str
    csv: str
    total: int
    done: int
    added: int
    updated: int
    refused: str  # JSON

    @property
    def percent(self) -> int:
        """Progress, 0 to 100 (100 only once finished)."""
        if self.state == "done":
            return 100
        return min(99, self.done * 100 // self.total) if self.total else 0

    @property
    def refused_lines(self) -> list[Skipped]:
        return [tuple(x) for x in json.loads(self.refused)]  # type: ignore[misc]


async def preview_text(db: Database, text: str) -> Preview:
    """The preview of a CSV against the blocks stored now."""
    specs, refused = parse_csv(text)
    async with db.read() as conn:
        existing = await blocks_by_domain(conn, [s.domain for _, s in specs])
    current = {d: {k: getattr(b, k) for k in IMPORTED_SETTINGS} for d, b in existing.items()}
    return compare(specs, refused, current)


async def upload(db: Database, text: str, *, actor: str) -> int:
    """Keep an uploaded CSV for its preview; nothing is applied yet. Returns the import's id."""
    if len(text.encode()) > MAX_CSV:
        raise BadRequest(f"the file is larger than {MAX_CSV // (1024 * 1024)} MiB")
    specs, refused = parse_csv(text)
    if not specs and not refused:
        raise BadRequest("the file has no blocklist lines")
    now = utcnow()
    async with db.transaction() as conn:
        result = await conn.execute(
            sa.insert(blocklist_imports)
            .values(
                actor=actor,
                csv=text,
                total=len(specs),
                refused=json.dumps(refused),
                state="preview",
                next_attempt_at=now,
                created_at=now,
            )
            .returning(blocklist_imports.c.id)
        )
        return int(result.scalar_one())


async def get_import(db: Database, import_id: int) -> BlocklistImport:
    """The import with this id, else ``NotFound``."""
    async with db.read() as conn:
        query = sa.select(blocklist_imports).where(blocklist_imports.c.id == import_id)
        row = (await conn.execute(query)).one_or_none()
    if row is None:
        raise NotFound("no such import")
    return record(BlocklistImport, row)


async def apply(db: Database, import_id: int) -> None:
    """Queue a previewed import for the worker (only once)."""
    async with db.transaction() as conn:
        moved = await conn.execute(
            sa.update(blocklist_imports)
            .where(blocklist_imports.c.id == import_id, blocklist_imports.c.state == "preview")
            .values(state="queued", next_attempt_at=utcnow())
        )
    if moved.rowcount == 0:
        await get_import(db, import_id)  # NotFound when there is none
        raise BadRequest("this import was already applied or discarded")


async def discard(db: Database, import_id: int) -> None:
    """Forget a previewed import that was not applied."""
    async with db.transaction() as conn:
        gone = await conn.execute(
            sa.delete(blocklist_imports).where(
                blocklist_imports.c.id == import_id, blocklist_imports.c.state == "preview"
            )
        )
    if gone.rowcount == 0:
        await get_import(db, import_id)
        raise BadRequest("only an import that was not applied can be discarded")


class _LeaseLost(Exception):
    """Another worker holds the import now (ours ran out): stop without writing."""


async def run(db: Database, item: BlocklistImport) -> Outcome:
    """The worker's job: apply the lines after ``done``, one transaction each, then settle the policy."""
    specs, _refused = parse_csv(item.csv)
    lease = item.lease_until
    table = blocklist_imports
    try:
        for index in range(item.done, len(specs)):
            number, spec = specs[index]
            now = utcnow()
            renewed = now + LEASE if lease is None or lease - now < LEASE / 2 else lease
            async with db.transaction() as conn:
                added = await put_block(conn, spec, actor=item.actor, detail={"import": item.id, "import_line": number})
                moved = await conn.execute(
                    sa.update(table)
                    .where(table.c.id == item.id, table.c.done == index, table.c.lease_until == lease)
                    .values(
                        done=index + 1,
                        added=table.c.added + int(added),
                        updated=table.c.updated + int(not added),
                        lease_until=renewed,
                    )
                )
                if moved.rowcount == 0:
                    raise _LeaseLost
            lease = renewed
    except _LeaseLost:
        return Outcome.retry(utcnow(), "another worker took this import over")
    await settle(db)
    return Outcome.done(lease_until=lease)
