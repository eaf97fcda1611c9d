"""``kith user ...`` and ``kith token ...``: local accounts and API tokens."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from server.cli.common import with_db
from server.settings import Settings

if TYPE_CHECKING:  # the commands import what they use when they run, to start fast
    from server.accounts import User
    from server.db import Database
    from server.oauth import IssuedToken


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

    token = sub.add_parser("token", help="OAuth bearer tokens for the API").add_subparsers(dest="action", required=True)
    tcreate = token.add_parser("create", help="print a bearer token for a local account")
    tcreate.add_argument("name")
    tcreate.add_argument("--scopes", default="read", help='space-separated, e.g. "read write admin:read admin:write"')
    tcreate.set_defaults(func=cmd_token_create)
