"""The ``kith`` command. Thin: parse arguments, call the domain, print.

Every failure ends with one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from server import __version__, cli_moderation
from server.errors import BadRequest, KithError
from server.settings import Settings

if TYPE_CHECKING:  # the commands import what they use when they run, to start fast
    from server.db import Database
    from server.moderation.blocklist.store import DomainBlock


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


async def _with_db(settings: Settings, fn: Callable[[Any], Awaitable[Any]], *, migrate: bool = True) -> Any:
    from server.db import Database

    db = Database(settings.database_url)
    try:
        await db.check()
        if migrate:
            await db.migrate()
        return await fn(db)
    finally:
        await db.dispose()


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def run(db: Any) -> None:
        applied = await db.migrate()
        print(f"applied {', '.join(applied)}" if applied else "database is up to date")

    asyncio.run(_with_db(settings, run, migrate=False))
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from server.instance import ensure_instance
    from server.serving import Limits, uvicorn_options

    async def prepare(db: Any) -> None:
        await ensure_instance(db, settings.secret_key)

    asyncio.run(_with_db(settings, prepare))
    print(f"Kith {__version__} serving {settings.base_url} on http://{args.host}:{args.port}", file=sys.stderr)
    if args.no_worker:
        os.environ["KITH_NO_WORKER"] = "1"  # read by app_from_env in each web process
    limits = Limits(header_timeout=args.header_timeout, max_connections=args.max_connections)
    uvicorn.run(
        "server.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        access_log=args.access_log,
        proxy_headers=True,
        server_header=False,
        **uvicorn_options(limits),
    )
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from server.jobs import build_worker
    from server.services import Services

    async def run() -> None:
        services = await Services.open(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"kith worker started on {services.db.safe_url}", file=sys.stderr)
        try:
            await build_worker(services).run_forever(stop)
        finally:
            await services.close()
        print("kith worker stopped", file=sys.stderr)

    asyncio.run(run())
    return 0


def cmd_user_create(settings: Settings, args: argparse.Namespace) -> int:
    from server.accounts import create_user

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None

    async def run(db: Any) -> Any:
        return await create_user(db, args.name, admin=args.admin, password=password)

    _user, generated = asyncio.run(_with_db(settings, run))
    print(f"created user {args.name}" + (" (admin)" if args.admin else ""), file=sys.stderr)
    if generated:
        print(generated)
    return 0


def cmd_token_create(settings: Settings, args: argparse.Namespace) -> int:
    from server.oauth import create_user_token

    async def run(db: Any) -> Any:
        return await create_user_token(db, args.name, args.scopes)

    issued = asyncio.run(_with_db(settings, run))
    print(f"created a token for {args.name} with scopes: {' '.join(issued.scopes)}", file=sys.stderr)
    print(issued.token)
    return 0


def _group_json(settings: Settings, group: Any, **extra: Any) -> dict[str, Any]:
    from server.links import Links

    links = Links(settings.base_url)
    return {
        "name": group.name,
        "handle": f"@{group.name}@{settings.domain}",
        "id": links.group(group.name),
        "title": group.title,
        "summary": group.summary,
        "approval": group.approval,
        "posting": group.posting,
        "rules": [r for r in group.rules.splitlines() if r.strip()],
        "created_at": group.created_at.isoformat(),
        **extra,
    }


def cmd_group_create(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.membership import GroupSpec, create_group

    spec = GroupSpec(
        name=args.name,
        title=args.title or "",
        summary=args.summary or "",
        owner=args.owner,
        approval=args.approval,
        posting=args.posting,
        rules="\n".join(args.rule),
    )

    async def run(db: Any) -> Any:
        return await create_group(db, spec)

    group = asyncio.run(_with_db(settings, run))
    _print_json(_group_json(settings, group))
    return 0


def cmd_group_list(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.following import count_members
    from server.groups.membership import list_groups

    async def run(db: Any) -> list[dict[str, Any]]:
        async with db.read() as conn:
            return [_group_json(settings, g, members=await count_members(conn, g.id)) for g in await list_groups(conn)]

    _print_json(asyncio.run(_with_db(settings, run)))
    return 0


def cmd_group_show(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.following import count_members, list_follows
    from server.groups.membership import get_group
    from server.moderation.authority import moderator_names

    async def run(db: Any) -> dict[str, Any]:
        async with db.read() as conn:
            g = await get_group(conn, args.name)
            pending = await list_follows(conn, g.id, "pending")
            return _group_json(
                settings,
                g,
                members=await count_members(conn, g.id),
                pending_follows=len(pending),
                moderators=[{"name": n, "role": r} for n, r in await moderator_names(conn, g.id)],
            )

    _print_json(asyncio.run(_with_db(settings, run)))
    return 0


def cmd_group_follows(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.following import list_follows
    from server.groups.membership import get_group

    async def run(db: Any) -> list[dict[str, Any]]:
        async with db.read() as conn:
            g = await get_group(conn, args.name)
            rows = await list_follows(conn, g.id, "pending" if args.pending else None)
        return [
            {
                "actor": r.actor_uri,
                "handle": f"@{r.preferred_username}@{r.domain}" if r.preferred_username else None,
                "state": r.state,
                "requested_at": r.created_at.isoformat(),
            }
            for r in rows
        ]

    _print_json(asyncio.run(_with_db(settings, run)))
    return 0


def cmd_group_decide(settings: Settings, args: argparse.Namespace) -> int:
    from server.groups.following import decide_follow
    from server.services import Services

    async def run() -> str:
        services = await Services.open(settings)
        try:
            return await decide_follow(services, args.name, args.actor, approve=args.action == "approve")
        finally:
            await services.close()

    state = asyncio.run(run())
    print(f"{args.actor}: {state}")
    return 0


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

    block, effects = asyncio.run(_with_db(settings, run))
    _print_json({**block_json(block), "effects": effects})
    return 0


def cmd_domain_unblock(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation.blocklist.store import BLOCKS, delete, find

    async def run(db: Database) -> DomainBlock:
        async with db.read() as conn:
            block = await find(conn, BLOCKS, args.domain)
        return await delete(db, BLOCKS, block.id, actor="cli")

    block = asyncio.run(_with_db(settings, run))
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

    _print_json(asyncio.run(_with_db(settings, run)))
    return 0


def cmd_domain_import(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation.blocklist.mastodon_csv import ImportReport, import_csv

    try:
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8-sig").read()  # noqa: SIM115
    except OSError as exc:
        raise BadRequest(f"cannot read {args.file}: {exc.strerror}") from None

    def progress(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            print(f"imported {done}/{total}", file=sys.stderr)

    async def run(db: Database) -> ImportReport:
        return await import_csv(db, text, actor="cli", progress=progress)

    report = asyncio.run(_with_db(settings, run))
    for line, domain, reason in report.skipped:
        print(f"skipped line {line} ({domain or 'empty'}): {reason}", file=sys.stderr)
    print(f"{report.added} added, {report.updated} updated, {len(report.skipped)} skipped")
    return 0


def cmd_domain_export(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation.blocklist.mastodon_csv import export_csv

    async def run(db: Database) -> str:
        async with db.read() as conn:
            return await export_csv(conn)

    text = asyncio.run(_with_db(settings, run))
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

    domain = asyncio.run(_with_db(settings, run))
    print(f"{'allowed' if args.action == 'allow' else 'disallowed'} {domain}")
    return 0


def cmd_federation_mode(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation.blocklist.store import set_federation_mode

    async def run(db: Database) -> dict[str, int]:
        return await set_federation_mode(db, args.mode, actor="cli")

    stats = asyncio.run(_with_db(settings, run))
    print(f"federation mode: {args.mode}")
    if any(stats.values()):
        print(json.dumps(stats), file=sys.stderr)
    return 0


def cmd_account_suspend(settings: Settings, args: argparse.Namespace) -> int:
    from server.moderation.blocklist.store import set_account_suspended

    suspend = args.action == "suspend"

    async def run(db: Database) -> dict[str, int]:
        return await set_account_suspended(db, args.uri, suspend, actor="cli", reason=args.reason or "")

    asyncio.run(_with_db(settings, run))
    print(f"{'suspended' if suspend else 'unsuspended'} {args.uri}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kith", description="Kith, a federated community server.")
    parser.add_argument("--version", action="version", version=f"kith {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="migrate, then serve HTTP with an in-process worker")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="serve HTTP only; run `kith worker` beside it")
    serve.add_argument("--workers", type=int, default=1, help="web processes (each with its own background worker)")
    serve.add_argument("--access-log", action="store_true", help="log every request (usually the proxy's job)")
    serve.add_argument(
        "--header-timeout", type=float, default=10.0, help="seconds a request may take to send its headers"
    )
    serve.add_argument("--max-connections", type=int, default=1000, help="connections served at once (beyond: 503)")
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("worker", help="run background work only").set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    user = sub.add_parser("user", help="local accounts").add_subparsers(dest="action", required=True)
    ucreate = user.add_parser("create", help="create a local account")
    ucreate.add_argument("name")
    ucreate.add_argument("--admin", action="store_true")
    ucreate.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    ucreate.set_defaults(func=cmd_user_create)

    token = sub.add_parser("token", help="OAuth bearer tokens for the API").add_subparsers(dest="action", required=True)
    tcreate = token.add_parser("create", help="print a bearer token for a local account")
    tcreate.add_argument("name")
    tcreate.add_argument("--scopes", default="read", help='space-separated, e.g. "read write admin:read admin:write"')
    tcreate.set_defaults(func=cmd_token_create)

    group = sub.add_parser("group", help="groups").add_subparsers(dest="action", required=True)
    gcreate = group.add_parser("create", help="create a group actor")
    gcreate.add_argument("name")
    gcreate.add_argument("--title")
    gcreate.add_argument("--summary")
    gcreate.add_argument("--owner")
    gcreate.add_argument("--rule", action="append", default=[], help="a group rule; repeat for each rule")
    gcreate.add_argument("--approval", choices=["auto", "manual"], default="auto")
    gcreate.add_argument("--posting", choices=["members", "anyone", "moderators"], default="members")
    gcreate.set_defaults(func=cmd_group_create)
    group.add_parser("list", help="list groups as JSON").set_defaults(func=cmd_group_list)
    gshow = group.add_parser("show", help="one group as JSON")
    gshow.add_argument("name")
    gshow.set_defaults(func=cmd_group_show)
    gfollows = group.add_parser("follows", help="members and pending follow requests as JSON")
    gfollows.add_argument("name")
    gfollows.add_argument("--pending", action="store_true", help="only requests awaiting a decision")
    gfollows.set_defaults(func=cmd_group_follows)
    for action, text in (("approve", "accept a pending follow"), ("reject", "refuse a pending follow")):
        decide = group.add_parser(action, help=text)
        decide.add_argument("name")
        decide.add_argument("actor", help="the follower's actor URI, as `kith group follows` lists it")
        decide.set_defaults(func=cmd_group_decide)

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

    cli_moderation.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kith`` console script."""
    args = build_parser().parse_args(argv)
    # Long-running commands log their work; one-shot commands print only results and errors.
    verbose = args.command in ("serve", "worker")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        return int(args.func(settings, args) or 0)
    except KithError as exc:
        print(f"kith: error: {exc.reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
