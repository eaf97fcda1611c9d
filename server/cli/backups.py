"""``kith backup PATH`` and ``kith restore PATH``."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from server.cli.common import print_json, with_db
from server.errors import ConfigError
from server.settings import Settings


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    from server.backup import backup_sqlite, pg_dump_advice, sqlite_file

    source = sqlite_file(settings.database_url)
    if source is None:
        raise ConfigError(pg_dump_advice(settings.database_url, args.path))
    copy = backup_sqlite(source, args.path)
    print_json({"backup": str(copy.path), "bytes": copy.bytes, "schema": copy.revision})
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    from server.backup import pg_dump_advice, restore_sqlite, sqlite_file

    dest = sqlite_file(settings.database_url)
    if dest is None:
        raise ConfigError(pg_dump_advice(settings.database_url, args.path))
    copy = restore_sqlite(args.path, dest)

    async def migrate(db: Any) -> list[str]:
        return await db.migrate()

    applied = asyncio.run(with_db(settings, migrate, migrate=False))  # a backup from an older Kith is brought up
    print_json({"restored": str(copy.path), "bytes": copy.bytes, "schema": copy.revision, "migrated": applied})
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``backup`` and ``restore``."""
    backup = sub.add_parser("backup", help="copy the live SQLite database to a new file, consistently")
    backup.add_argument("path", type=Path)
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", help="restore a backup into a new or empty database")
    restore.add_argument("path", type=Path)
    restore.set_defaults(func=cmd_restore)
