"""``kith backup`` under write load and ``kith restore``: every group, key, member, post and report is there."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import uuid
from pathlib import Path

from server.accounts import create_user
from server.groups.membership import GroupSpec, create_group
from server.settings import Settings

GROUP = "https://kith.test/groups/bookclub"
# What a restore must bring back (raw JSON of posts and reports included, as rows).
TABLES = ("local_actors", "users", "follows", "posts", "reports", "mod_log")


async def kith(settings: Settings, *args: str, url: str | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "KITH_DOMAIN": settings.domain, "KITH_DATABASE_URL": url or settings.database_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


def rows(path: Path) -> dict[str, dict[int, tuple]]:
    """Every row of ``TABLES`` in the SQLite file at ``path``, by id."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return {t: {r[0]: tuple(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY id")} for t in TABLES}


async def post_one(client, mastodon, n: int) -> None:
    note = mastodon.note("alice", f"<p>post {n}</p>", to_group=GROUP)
    r = await mastodon.post(client, "alice", "https://kith.test/inbox", mastodon.create("alice", note))
    assert r.status_code == 202


async def test_backup_under_write_load_and_restore(settings, client, services, worker, mastodon, tmp_path) -> None:
    backup = tmp_path / "backup.db"
    if services.db.is_sqlite is False:
        code, _, err = await kith(settings, "backup", str(backup))
        assert code == 1 and "pg_dump --format=custom" in err and "pg_restore" in err
        assert not backup.exists()
        return

    await create_user(services.db, "mod1")
    await create_group(services.db, GroupSpec(name="bookclub", owner="mod1"))
    await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))
    await post_one(client, mastodon, 0)
    flag = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{mastodon.base}/flags/{uuid.uuid4().hex}",
        "type": "Flag",
        "actor": mastodon.actor_uri("alice"),
        "object": [GROUP],
        "content": "please look",
    }
    assert (await mastodon.post(client, "alice", "https://kith.test/inbox", flag)).status_code == 202
    await worker.drain()
    live = Path(settings.database_url.removeprefix("sqlite:///"))
    before = rows(live)
    assert all(before[t] for t in ("local_actors", "follows", "posts", "reports"))

    # Members keep posting, and the worker keeps writing, while a separate process copies.
    done = asyncio.Event()
    written = 0

    async def write_load() -> None:
        nonlocal written
        while not done.is_set() or written < 6:
            written += 1
            await post_one(client, mastodon, written)
            await worker.drain()

    load = asyncio.create_task(write_load())
    while written < 3:
        await asyncio.sleep(0.01)
    code, out, err = await kith(settings, "backup", str(backup))
    done.set()
    await load
    await post_one(client, mastodon, written + 1)  # one surely after the copy
    await worker.drain()
    assert code == 0, err
    assert '"schema"' in out

    # A backup never overwrites, and a restore never lands on a database that holds one.
    assert (await kith(settings, "backup", str(backup)))[0] == 1
    code, _, err = await kith(settings, "restore", str(backup))
    assert code == 1 and "holds a database already" in err

    restored_path = tmp_path / "restored" / "kith.db"
    code, out, err = await kith(settings, "restore", str(backup), url=f"sqlite:///{restored_path}")
    assert code == 0, err
    restored, after = rows(restored_path), rows(live)
    for table in TABLES:
        # Everything there before the backup began is there, unchanged or as later written...
        assert set(before[table]) <= set(restored[table]), table
        # ...and nothing the copy holds was made up: each row is one the live database has.
        assert all(after[table].get(i) == row for i, row in restored[table].items()), table
    # The copy is of one instant in the middle of the load: some posts of the load, not all.
    assert len(before["posts"]) + 2 <= len(restored["posts"]) <= len(after["posts"]) - 1
    with sqlite3.connect(restored_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
