"""Mastodon's blocklist CSV: the format its admin UI exports and published blocklists use.

``#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate``, with or
without that header (a plain export is one domain per line). A line whose domain is not
a domain (``normalize_domain`` says why) or is obfuscated (``ex*mple.com``) is skipped
and reported, never guessed at.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database
from server.errors import Unprocessable
from server.moderation.blocklist.store import BLOCKS, BlockSpec, page, put_block, settle

CSV_HEADER = ["#domain", "#severity", "#reject_media", "#reject_reports", "#public_comment", "#obfuscate"]

Skipped = tuple[int, str, str]
"""A line left out: (line number, the domain as written, why)."""


@dataclass
class ImportReport:
    """What an import did: blocks added, updated, and lines skipped with the reason."""

    added: int = 0
    updated: int = 0
    skipped: list[Skipped] = field(default_factory=list)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def _spec_of(fields: Mapping[str, str]) -> BlockSpec:
    """One line's block, validated (``Unprocessable`` saying why not)."""
    severity = (fields.get("severity") or "").strip().lower() or "suspend"
    return BlockSpec(
        domain=(fields.get("domain") or "").strip(),
        severity=severity,
        reject_media=_truthy(fields.get("reject_media")),
        reject_reports=_truthy(fields.get("reject_reports")),
        public_comment=(fields.get("public_comment") or "").strip(),
        obfuscate=_truthy(fields.get("obfuscate")),
    ).validated()


def parse_csv(text: str) -> tuple[list[tuple[int, BlockSpec]], list[Skipped]]:
    """Mastodon's blocklist CSV (with or without the ``#`` header) -> specs by line number, and skipped lines."""
    reader = csv.reader(io.StringIO(text))
    try:
        rows = list(reader)
    except csv.Error as exc:  # a field over the csv module's size limit, an unclosed quote at the end
        raise Unprocessable(f"line {reader.line_num} is not CSV: {exc}") from None
    if not rows:
        return [], []
    header = [h.strip().lstrip("#").lower() for h in rows[0]]
    has_header = "domain" in header
    if not has_header:
        header = [h.lstrip("#") for h in CSV_HEADER]
    specs: list[tuple[int, BlockSpec]] = []
    skipped: list[Skipped] = []
    for number, row in enumerate(rows[1:] if has_header else rows, start=2 if has_header else 1):
        fields = dict(zip(header, row, strict=False))
        raw_domain = (fields.get("domain") or "").strip()
        if not any(cell.strip() for cell in row) or raw_domain.startswith("#"):
            continue  # a blank or comment line
        try:
            specs.append((number, _spec_of(fields)))
        except Unprocessable as exc:
            reason = "obfuscated domain: the real name is unknown" if "*" in raw_domain.lstrip("*.") else exc.reason
            skipped.append((number, raw_domain, reason))
    return specs, skipped


async def import_csv(
    db: Database, text: str, *, actor: str, progress: Callable[[int, int], None] | None = None
) -> ImportReport:
    """Load a published blocklist: new domains are blocked, existing blocks updated, one audit row each.

    One transaction per line (a long list does not hold one lock for minutes), then one
    new policy version and its effects.
    """
    specs, skipped = parse_csv(text)
    report = ImportReport(skipped=skipped)
    for i, (number, spec) in enumerate(specs, start=1):
        async with db.transaction() as conn:
            added = await put_block(conn, spec, actor=actor, detail={"import_line": number})
        if added:
            report.added += 1
        else:
            report.updated += 1
        if progress is not None:
            progress(i, len(specs))
    await settle(db)
    return report


async def export_csv(conn: AsyncConnection) -> str:
    """Every block in Mastodon's CSV shape, oldest first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for block in reversed(await page(conn, BLOCKS)):
        writer.writerow(
            [
                block.domain,
                block.severity,
                str(block.reject_media).lower(),
                str(block.reject_reports).lower(),
                block.public_comment,
                str(block.obfuscate).lower(),
            ]
        )
    return out.getvalue()
