"""The real fediblockhole (from PyPI, its ``fediblock-sync`` command, default settings) against a real Kith.

Kith is served by uvicorn on a loopback port; the published blocklist is a CSV served on
another; the admin's token comes from ``kith token create``. fediblockhole reads the
list, reads Kith's blocks through the admin API, asks ``/api/v1/admin/measures`` for
``instance_follows`` before it raises a domain to suspend (and stops at silence where
people here would lose their groups), and creates and updates blocks. Before Kith had
the measures endpoint, this run failed on its 404.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import socket
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn

from server.app import create_app
from server.groups.membership import GroupSpec, create_group
from server.moderation.blocklist import store
from server.moderation.blocklist.store import BlockSpec
from server.services import Services
from server.tables import admin_audit_log, domain_blocks, follows
from tests.fakes.members import add_members

BLOCKLIST = """domain,severity
new.example,suspend
changed.example,suspend
same.example,silence
members.example,suspend
"""


@pytest.fixture
def published(tmp_path: Path) -> Iterator[str]:
    """The blocklist, published as a CSV on a loopback URL."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "blocklist.csv").write_text(BLOCKLIST)
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]  # quiet
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/blocklist.csv"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclasses.dataclass
class Served:
    domain: str
    services: Services
    env: dict[str, str]


@pytest.fixture
async def kith(settings, network, tmp_path: Path) -> AsyncIterator[Served]:
    """Kith on a free loopback port (uvicorn on this test's event loop)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    domain = f"127.0.0.1:{sock.getsockname()[1]}"
    local = dataclasses.replace(settings, domain=domain, scheme="http")
    services = await Services.open(local, transport=network, migrate=False)
    server = uvicorn.Server(uvicorn.Config(create_app(local, services=services, run_worker=False), log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(KITH_DOMAIN=domain, KITH_SCHEME="http", KITH_DATABASE_URL=settings.database_url, NO_PROXY="*")
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.01)
        yield Served(domain, services, env)
    finally:
        server.should_exit = True
        await task
        await services.close()
        sock.close()


async def run(env: dict[str, str], cwd: Path, *argv: str) -> str:
    """A command in a subprocess, without blocking the loop that serves Kith; its stdout, or fail with its output."""
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode == 0, f"{argv[0]} exited {proc.returncode}:\n{out.decode()}\n{err.decode()[-4000:]}"
    return out.decode()


async def seed(services: Services) -> None:
    """Blocks already in place, and two people of members.example in a group."""
    for spec in (
        BlockSpec("changed.example", severity="silence"),
        BlockSpec("same.example", severity="silence"),
        BlockSpec("kept.example", severity="suspend", public_comment="spam", private_comment="ours", obfuscate=True),
    ):
        await store.create(services.db, store.BLOCKS, spec, actor="cli")
    group = await create_group(services.db, GroupSpec(name="books"))
    await add_members(services.db, group.id, [(f"https://members.example/users/{n}", None) for n in ("ann", "ben")])


async def blocks(services: Services) -> dict[str, dict]:
    async with services.db.read() as conn:
        return {r.domain: r._asdict() for r in (await conn.execute(sa.select(domain_blocks))).all()}


async def test_fediblockhole_merges_and_pushes_a_published_blocklist(kith: Served, published: str, tmp_path: Path):
    fediblock_sync = shutil.which("fediblock-sync", path=str(Path(sys.executable).parent))
    assert fediblock_sync is not None, "fediblockhole is in the test extras"
    await seed(kith.services)
    kith_cmd = [sys.executable, "-m", "server"]
    await run(kith.env, tmp_path, *kith_cmd, "user", "create", "ada", "--admin")
    token = (
        await run(kith.env, tmp_path, *kith_cmd, "token", "create", "ada", "--scopes", "admin:read admin:write")
    ).strip()
    before = await blocks(kith.services)
    config = tmp_path / "fediblockhole.conf.toml"
    config.write_text(
        f'blocklist_url_sources = [{{ url = "{published}", format = "csv" }}]\n'
        f'blocklist_instance_destinations = [{{ domain = "{kith.domain}", token = "{token}", scheme = "http" }}]\n'
    )

    await run(kith.env, tmp_path, fediblock_sync, "-c", str(config))

    after = await blocks(kith.services)
    assert set(after) == {"new.example", "changed.example", "same.example", "kept.example", "members.example"}
    assert after["new.example"]["severity"] == "suspend"  # no one here: suspended
    assert after["changed.example"]["severity"] == "suspend"  # raised from silence, in place
    assert after["changed.example"]["id"] == before["changed.example"]["id"]
    # Two people of members.example are in a group: fediblockhole's default stops at silence.
    assert after["members.example"]["severity"] == "silence"
    for untouched in ("same.example", "kept.example"):
        assert after[untouched] == before[untouched]
    async with kith.services.db.read() as conn:
        actions = [
            (r.action, r.target)
            for r in (await conn.execute(sa.select(admin_audit_log).where(admin_audit_log.c.actor == "ada"))).all()
        ]
        members = (await conn.execute(sa.select(sa.func.count()).select_from(follows))).scalar_one()
    assert sorted(actions) == sorted(
        [
            ("domain_block.create", "new.example"),
            ("domain_block.update", "changed.example"),
            ("domain_block.create", "members.example"),
        ]
    ), actions
    assert members == 2  # a silence keeps them in their group

    # Run again: nothing left to change.
    await run(kith.env, tmp_path, fediblock_sync, "-c", str(config))
    assert await blocks(kith.services) == after
