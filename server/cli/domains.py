"""``kith domain ...``, ``kith federation mode`` and ``kith account ...``: the instance's federation policy."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from server.cli.common import print_json, with_db
from server.errors import BadRequest
from server.settings import Settings

if TYPE_CHECKING:  # the commands import what they use when they run, to start fast
    from server.db import Database
    from server.moderation.blocklist.store import DomainBlock


def cmd_domain_block(settings: Settings, args: argparse.Namespace) -> int:
    from server.api.mastodon import block_json
    from server.moderation.blocklist.store import BLOCKS, BlockSpec, create

    spec = BlockSpec(
        domain=args.domain,
        severity=args.severity,
        reject_media=args.reject_media,
        reject_reports=args.reject_reports,
        public_comment=args.public_comment or "",
        private_comment=args.private_comment or "",
        obfuscate=args.obfuscate,
    )

    async def run(db: Database) -> tuple[DomainBlock, dict[str, int]]:
        return await create(db, BLOCKS, spec, actor="cli", reason=args.reason or "")

    block, effects = asyncio.run(with_db(settings, run))
    print_json({**block_json(block), "effects": effects})
    return 0


def cmd_domain_unblock(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation.blocklist.store import BLOCKS, delete, find

    async def run(db: Database) -> DomainBlock:
        async with db.read() as conn:
            block = await find(conn, BLOCKS, args.domain)
        return await delete(db, BLOCKS, block.id, actor="cli")

    block = asyncio.run(with_db(settings, run))
    print(f"unblocked {block.domain}")
    return 0


def cmd_domain_list(settings: Settings, args: argparse.Namespace) -> int:
    from server.api.mastodon import block_json
    from server.moderation.blocklist.store import ALLOWS, BLOCKS, federation_mode, page

    async def run(db: Database) -> dict[str, Any]:
        async with db.read() as conn:
            return {
                "mode": await federation_mode(conn),
                "blocks": [block_json(b) for b in reversed(await page(conn, BLOCKS))],
                "allows": [a.domain for a in reversed(await page(conn, ALLOWS))],
            }

    print_json(asyncio.run(with_db(settings, run)))
    return 0


def cmd_domain_import(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation.blocklist.mastodon_csv import ImportReport, import_csv

    try:
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8-sig").read()  # noqa: SIM115
    except OSError as exc:
        raise BadRequest(f"cannot read {args.file}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{args.file} is not UTF-8 text (byte {exc.start} cannot be read)") from None

    def progress(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            print(f"imported {done}/{total}", file=sys.stderr)

    async def run(db: Database) -> ImportReport:
        return await import_csv(db, text, actor="cli", progress=progress)

    report = asyncio.run(with_db(settings, run))
    for line, domain, reason in report.skipped:
        print(f"skipped line {line} ({domain or 'empty'}): {reason}", file=sys.stderr)
    print(f"{report.added} added, {report.updated} updated, {len(report.skipped)} skipped")
    return 0


def cmd_domain_export(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation.blocklist.mastodon_csv import export_csv

    async def run(db: Database) -> str:
        async with db.read() as conn:
            return await export_csv(conn)

    text = asyncio.run(with_db(settings, run))
    if args.file in (None, "-"):
        sys.stdout.write(text)
    else:
        with open(args.file, "w", encoding="utf-8") as out:
            out.write(text)
    return 0


def cmd_domain_allow(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation.blocklist.store import ALLOWS, AllowSpec, create, delete, find

    async def run(db: Database) -> str:
        if args.action == "allow":
            allow, _effects = await create(db, ALLOWS, AllowSpec(args.domain), actor="cli")
            return allow.domain
        async with db.read() as conn:
            allow = await find(conn, ALLOWS, args.domain)
        return (await delete(db, ALLOWS, allow.id, actor="cli")).domain

    domain = asyncio.run(with_db(settings, run))
    print(f"{'allowed' if args.action == 'allow' else 'disallowed'} {domain}")
    return 0


def cmd_federation_mode(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation.blocklist.store import set_federation_mode

    async def run(db: Database) -> dict[str, int]:
        return await set_federation_mode(db, args.mode, actor="cli")

    stats = asyncio.run(with_db(settings, run))
    print(f"federation mode: {args.mode}")
    if any(stats.values()):
        print(json.dumps(stats), file=sys.stderr)
    return 0


def cmd_account_suspend(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation.blocklist.store import set_account_suspended

    suspend = args.action == "suspend"

    async def run(db: Database) -> dict[str, int]:
        return await set_account_suspended(db, args.uri, suspend, actor="cli", reason=args.reason or "")

    asyncio.run(with_db(settings, run))
    print(f"{'suspended' if suspend else 'unsuspended'} {args.uri}")
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``domain``, ``federation`` and ``account``."""
    domain = sub.add_parser("domain", help="instance-level domain blocks and the allowlist").add_subparsers(
        dest="action", required=True
    )
    block = domain.add_parser("block", help="block a domain and its subdomains")
    block.add_argument("domain")
    block.add_argument("--severity", choices=["suspend", "silence", "noop"], default="suspend")
    block.add_argument("--reject-media", action="store_true")
    block.add_argument("--reject-reports", action="store_true")
    block.add_argument("--public-comment")
    block.add_argument("--private-comment")
    block.add_argument("--obfuscate", action="store_true", help="obfuscate the domain in the public listing")
    block.add_argument("--reason", help="why, for the audit log (defaults to the private comment)")
    block.set_defaults(func=cmd_domain_block)
    unblock = domain.add_parser("unblock", help="lift a domain block")
    unblock.add_argument("domain")
    unblock.set_defaults(func=cmd_domain_unblock)
    domain.add_parser("list", help="blocks, allows and the federation mode as JSON").set_defaults(func=cmd_domain_list)
    dimport = domain.add_parser("import", help="import Mastodon's blocklist CSV (- for stdin)")
    dimport.add_argument("file")
    dimport.set_defaults(func=cmd_domain_import)
    dexport = domain.add_parser("export", help="export blocks as Mastodon's CSV (stdout by default)")
    dexport.add_argument("file", nargs="?")
    dexport.set_defaults(func=cmd_domain_export)
    for action, text in (("allow", "allow a domain (limited federation)"), ("disallow", "remove an allowed domain")):
        allow = domain.add_parser(action, help=text)
        allow.add_argument("domain")
        allow.set_defaults(func=cmd_domain_allow)

    federation = sub.add_parser("federation", help="federation mode").add_subparsers(dest="action", required=True)
    mode = federation.add_parser("mode", help="open, or allowlist (only allowed domains federate)")
    mode.add_argument("mode", choices=["open", "allowlist"])
    mode.set_defaults(func=cmd_federation_mode)

    account = sub.add_parser("account", help="remote accounts").add_subparsers(dest="action", required=True)
    for action, text in (("suspend", "suspend one remote account instance-wide"), ("unsuspend", "lift it")):
        acc = account.add_parser(action, help=text)
        acc.add_argument("uri", help="the account's actor URI")
        acc.add_argument("--reason")
        acc.set_defaults(func=cmd_account_suspend)
