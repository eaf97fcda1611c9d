"""``kith backup`` and ``kith restore``: a consistent copy of a live SQLite database, and back.

SQLite's online backup API (the standard library's ``sqlite3.Connection.backup``) copies
the database page by page inside one read transaction. Kith runs SQLite in WAL mode, where
a reader never blocks writers, so the server keeps accepting writes while the copy is
made, and the copy is the database as it was at one instant. The copy is written beside
its destination and renamed into place only after SQLite's integrity check passes, so a
backup that exists is whole.

PostgreSQL has its own tools for this (``pg_dump``/``pg_restore``); Kith says which
command to run rather than wrap them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from server.db import head_revision, known_revisions
from server.errors import ConfigError


@dataclass(frozen=True)
class Copy:
    """What a backup or restore copied: where to, its size and schema revision."""

    path: Path
    bytes: int
    revision: str | None


def sqlite_file(database_url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL, or None for PostgreSQL."""
    url = make_url(database_url)
    return Path(url.database or "") if url.get_backend_name() == "sqlite" else None


def pg_dump_advice(database_url: str, path: Path) -> str:
    """How to back up a PostgreSQL database with its own tools (the password left out)."""
    safe = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=True)
    return (
        f"kith backup copies SQLite databases; for PostgreSQL run: pg_dump --format=custom --file={path} '{safe}'"
        f" (and to restore, into an empty database: pg_restore --no-owner --dbname='{safe}' {path}, then kith migrate)"
    )


@contextlib.contextmanager
def _connect(path: Path, *, read_only: bool) -> Iterator[sqlite3.Connection]:
    uri = f"file:{path}?mode=ro" if read_only else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, timeout=30)
    try:
        yield conn
    finally:
        conn.close()


def _check(conn: sqlite3.Connection, what: str) -> str | None:
    """SQLite's integrity check passes on ``conn``; returns its schema revision."""
    result = conn.execute("PRAGMA integrity_check").fetchone()
    if result is None or result[0] != "ok":
        raise ConfigError(f"{what} fails SQLite's integrity check: {result[0] if result else 'no answer'}")
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        raise ConfigError(f"{what} is not a Kith database (it has no schema revision)") from None
    return row[0] if row else None


def backup_sqlite(source: Path, dest: Path) -> Copy:
    """Copy the live database ``source`` to the new file ``dest``, consistently and online."""
    if not source.is_file():
        raise ConfigError(f"there is no database at {source}")
    if dest.exists():
        raise ConfigError(f"{dest} already exists; name a new file")
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        with _connect(source, read_only=True) as src, _connect(partial, read_only=False) as dst:
            src.backup(dst)  # one step, in one read transaction: WAL writers carry on meanwhile
            revision = _check(dst, "the copy")
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return Copy(dest, dest.stat().st_size, revision)


def _is_empty(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return True
    with _connect(path, read_only=True) as conn:
        return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def restore_sqlite(backup: Path, dest: Path) -> Copy:
    """Copy ``backup`` into ``dest``, which must be absent or empty: a live database is never overwritten."""
    if not backup.is_file():
        raise ConfigError(f"there is no backup at {backup}")
    if not _is_empty(dest):
        raise ConfigError(f"{dest} holds a database already; restore only into a new or empty one")
    with _connect(backup, read_only=True) as src:
        revision = _check(src, str(backup))
        if revision not in known_revisions():
            newest = head_revision()
            raise ConfigError(f"{backup} is at schema {revision}, which this Kith does not know (newest: {newest})")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _connect(dest, read_only=False) as dst:
            src.backup(dst)
            _check(dst, "the restored database")
    return Copy(dest, dest.stat().st_size, revision)
