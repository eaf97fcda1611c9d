"""The ``kith`` command, run as a user runs it.

Most commands run in-process (``tests.shell.kith``: ``server.cli.main`` with the
environment, stdin and output of a shell); the installed console script and the
long-running ``worker`` are proven in real subprocesses.
"""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.cli import build_parser
from tests.shell import kith

__all__ = ["kith"]  # other modules import it from here


def console(settings, *args):
    """The installed ``kith`` console script, in a subprocess."""
    script = shutil.which("kith", path=str(Path(sys.executable).parent)) or shutil.which("kith")
    assert script is not None, "the kith console script is not installed"
    env = {**os.environ, "KITH_DOMAIN": settings.domain, "KITH_DATABASE_URL": settings.database_url}
    return subprocess.run([script, *args], capture_output=True, text=True, env=env, timeout=60)


def test_group_create_list_show(settings):
    r = kith(settings, "user", "create", "alice", "--admin")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip()) >= 16  # a generated password
    r = kith(
        settings,
        "group",
        "create",
        "bookclub",
        "--title",
        "Book Club",
        "--summary",
        "We read.",
        "--owner",
        "alice",
        "--approval",
        "manual",
        "--posting",
        "anyone",
    )
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    assert created["id"] == "https://kith.test/groups/bookclub"
    assert created["handle"] == "@bookclub@kith.test"
    assert (created["approval"], created["posting"]) == ("manual", "anyone")
    listed = json.loads(kith(settings, "group", "list").stdout)
    assert [g["name"] for g in listed] == ["bookclub"] and listed[0]["members"] == 0
    shown = json.loads(kith(settings, "group", "show", "bookclub").stdout)
    assert shown["moderators"] == [{"name": "alice", "role": "owner"}]
    assert shown["title"] == "Book Club"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["group", "create", "Bad-Name"], "invalid name"),
        (["group", "create", "admin"], "reserved"),
        (["group", "show", "missing"], "no group named"),
        (["group", "create", "g", "--owner", "ghost"], "no user named"),
    ],
)
def test_errors_are_one_line_and_nonzero(settings, args, message):
    r = kith(settings, *args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_duplicate_name_across_users_and_groups(settings):
    assert kith(settings, "group", "create", "shared").returncode == 0
    for args in (["group", "create", "shared"], ["user", "create", "shared"]):
        r = kith(settings, *args)
        assert r.returncode == 1
        assert r.stderr.strip() == "kith: error: the name 'shared' is already taken"


def test_password_stdin(settings):
    r = kith(settings, "user", "create", "bob", "--password-stdin", stdin="correct horse battery\n")
    assert r.returncode == 0 and r.stdout == ""
    r = kith(settings, "user", "create", "carol", "--password-stdin", stdin="short\n")
    assert r.returncode == 1 and "at least" in r.stderr


def test_bad_database_url_and_bad_setting(settings):
    r = kith(settings, "group", "list", env_extra={"KITH_DATABASE_URL": "mysql://nope"})
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "KITH_DATABASE_URL" in r.stderr
    r = kith(settings, "group", "list", env_extra={"KITH_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"})
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "cannot connect to the database" in r.stderr
    r = kith(settings, "migrate", env_extra={"KITH_SCHEME": "gopher"})
    assert r.returncode == 1 and "KITH_SCHEME" in r.stderr


def test_migrate_is_idempotent(settings):
    r = kith(settings, "migrate")
    assert r.returncode == 0 and "up to date" in r.stdout


def test_the_console_script_runs_commands_and_fails_with_one_line(settings):
    r = console(settings, "migrate")
    assert r.returncode == 0 and "up to date" in r.stdout, r.stderr
    r = console(settings, "group", "show", "missing")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == "kith: error: no group named 'missing'\n"


def test_worker_stops_cleanly_on_sigterm(settings):
    env = {**os.environ, "KITH_DOMAIN": settings.domain, "KITH_DATABASE_URL": settings.database_url}
    proc = subprocess.Popen([sys.executable, "-m", "server", "worker"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline and "started" not in line:
        line = proc.stderr.readline()
    assert "started" in line
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert "stopped" in proc.stderr.read()


def test_parser_has_architecture_flags():
    parser = build_parser()
    args = parser.parse_args(["serve", "--host", "0.0.0.0", "--port", "9000", "--no-worker"])
    assert (args.host, args.port, args.no_worker) == ("0.0.0.0", 9000, True)


async def test_pending_follows_listed_and_decided(settings, client, services, worker, mastodon):
    """A moderator lists and decides pending follows from a shell; the Accept goes out."""
    group_uri = "https://kith.test/groups/club"
    r = await asyncio.to_thread(kith, settings, "group", "create", "club", "--approval", "manual")
    assert r.returncode == 0, r.stderr
    mastodon.add_user("bob")
    for name in ("alice", "bob"):
        resp = await mastodon.post(client, name, f"{group_uri}/inbox", mastodon.follow(name, group_uri))
        assert resp.status_code == 202
    await worker.drain()
    pending = json.loads((await asyncio.to_thread(kith, settings, "group", "follows", "club", "--pending")).stdout)
    # The worker may take both Follows at once, so which request was recorded first is not fixed.
    assert sorted(p["handle"] for p in pending) == ["@alice@mastodon.example", "@bob@mastodon.example"]
    r = await asyncio.to_thread(kith, settings, "group", "approve", "club", mastodon.actor_uri("alice"))
    assert r.returncode == 0 and "accepted" in r.stdout
    r = await asyncio.to_thread(kith, settings, "group", "reject", "club", mastodon.actor_uri("bob"))
    assert r.returncode == 0 and "rejected" in r.stdout
    r = await asyncio.to_thread(kith, settings, "group", "approve", "club", "https://nowhere.example/u/x")
    assert r.returncode == 1 and "no follow" in r.stderr
    await worker.drain()
    assert [a.signer for a in mastodon.of_type("Accept")] == [group_uri]
    assert len(mastodon.of_type("Reject")) == 1
    everyone = json.loads((await asyncio.to_thread(kith, settings, "group", "follows", "club")).stdout)
    assert [(f["handle"], f["state"]) for f in everyone] == [("@alice@mastodon.example", "accepted")]


def test_domain_import_of_a_file_that_is_not_utf8_is_one_clear_line(settings, tmp_path):
    path = tmp_path / "blocks.csv"
    path.write_bytes(b"#domain,#severity\nbad\xff.example,suspend\n")
    r = kith(settings, "domain", "import", str(path))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"kith: error: {path} is not UTF-8 text (byte 21 cannot be read)"]
