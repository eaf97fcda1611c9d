"""``kith user ...`` and ``kith token ...``: local accounts and API tokens."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from typing import TYPE_CHECKING, Any

from server.cli.common import with_db, with_services
from server.settings import Settings

if TYPE_CHECKING:  # the commands import what they use when they run, to start fast
    from server.accounts import User
    from server.db import Database
    from server.oauth import IssuedToken
    from server.services import Services


def cmd_user_create(settings: Settings, args: argparse.Namespace) -> int:
    from server.accounts import create_user

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None

    async def run(db: Database) -> tuple[User, str | None]:
        return await create_user(db, args.name, admin=args.admin, password=password)

    _user, generated = asyncio.run(with_db(settings, run))
    print(f"created user {args.name}" + (" (admin)" if args.admin else ""), file=sys.stderr)
    if generated:
        print(generated)
    return 0


def cmd_user_access(settings: Settings, args: argparse.Namespace) -> int:
    """``disable``, ``enable``, ``sign-out`` (every session), ``make-admin``, ``revoke-admin`` and ``password``."""
    from server import signin
    from server.accounts import set_admin, set_password

    async def run(db: Database) -> str:
        match args.action:
            case "disable" | "enable":
                await signin.disable_account(db, args.name, args.action == "disable")
                return f"{args.action}d {args.name}"
            case "make-admin" | "revoke-admin":
                await set_admin(db, args.name, args.action == "make-admin")
                return f"{args.name} is {'now' if args.action == 'make-admin' else 'no longer'} an admin"
            case "sign-out":
                ended = await signin.sign_out_everywhere(db, args.name)
                return f"signed {args.name} out of {ended} session{'s' if ended != 1 else ''}"
            case _:
                if args.password_stdin:
                    password = sys.stdin.readline().rstrip("\n")
                    generated = None
                else:
                    password = generated = secrets.token_urlsafe(15)
                await set_password(db, args.name, password)
                ended = await signin.sign_out_everywhere(db, args.name)
                if generated:
                    print(generated)
                return f"set the password of {args.name}; {ended} session(s) signed out"

    print(asyncio.run(with_db(settings, run)), file=sys.stderr)
    return 0


def cmd_user_link(settings: Settings, args: argparse.Namespace) -> int:
    """``link NAME ACTOR-URI``: notices go to that fediverse account and its replies act; ``unlink NAME``."""
    from server.moderation.notices import link_account

    async def run(services: Services) -> str | None:
        return await link_account(services, args.name, getattr(args, "actor", None))

    linked = asyncio.run(with_services(settings, run))
    print(f"linked {args.name} to {linked}" if linked else f"unlinked {args.name}", file=sys.stderr)
    return 0


def cmd_token_create(settings: Settings, args: argparse.Namespace) -> int:
    from server.oauth import create_user_token

    async def run(db: Database) -> IssuedToken:
        return await create_user_token(db, args.name, args.scopes)

    issued = asyncio.run(with_db(settings, run))
    print(f"created a token for {args.name} with scopes: {' '.join(issued.scopes)}", file=sys.stderr)
    print(issued.token)
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``user`` and ``token``."""
    user = sub.add_parser("user", help="local accounts").add_subparsers(dest="action", required=True)
    ucreate = user.add_parser("create", help="create a local account")
    ucreate.add_argument("name")
    ucreate.add_argument("--admin", action="store_true")
    ucreate.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    ucreate.set_defaults(func=cmd_user_create)
    for action, text in (
        ("disable", "disable an account: no sign-in; its sessions and API tokens stop working"),
        ("enable", "enable a disabled account again"),
        ("sign-out", "end every console session of an account"),
        ("make-admin", "make an account an instance admin"),
        ("revoke-admin", "take an account's admin rights away"),
        ("password", "set an account's password (printed when generated) and end its sessions"),
    ):
        p = user.add_parser(action, help=text)
        p.add_argument("name")
        if action == "password":
            p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        p.set_defaults(func=cmd_user_access)

    link = user.add_parser(
        "link", help="the fediverse account a moderator gets notices on and acts from by replying (fetched first)"
    )
    link.add_argument("name")
    link.add_argument("actor", metavar="ACTOR-URI", help="e.g. https://mastodon.example/users/ann")
    link.set_defaults(func=cmd_user_link)
    unlink = user.add_parser("unlink", help="forget a moderator's linked fediverse account")
    unlink.add_argument("name")
    unlink.set_defaults(func=cmd_user_link)

    token = sub.add_parser("token", help="OAuth bearer tokens for the API").add_subparsers(dest="action", required=True)
    tcreate = token.add_parser("create", help="print a bearer token for a local account")
    tcreate.add_argument("name")
    tcreate.add_argument("--scopes", default="read", help='space-separated, e.g. "read write admin:read admin:write"')
    tcreate.set_defaults(func=cmd_token_create)
