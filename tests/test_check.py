"""``kith check`` against a real ``kith serve``: all well, then each way an install goes wrong."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from server.checkup import compare_clock, compare_seen
from server.settings import Settings
from tests.served import free_port, kith_serve


def kith_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "check"], env=env, capture_output=True, text=True, timeout=60
    )


def test_check_passes_on_a_running_install_and_names_each_check(settings: Settings) -> None:
    with kith_serve(settings.database_url) as served:
        deadline = time.monotonic() + 20
        while (r := kith_check(served.env)).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.5)  # the in-process worker's first heartbeat may be a moment behind
        assert r.returncode == 0, r.stdout + r.stderr
        names = [line.split()[1].rstrip(":") for line in r.stdout.splitlines()]
        assert all(line.startswith("ok") for line in r.stdout.splitlines())
        assert {"database", "dns", "webfinger", "proxy", "worker", "clock"} <= set(names)

        # The same install, named by a domain where nothing of it answers: WebFinger fails.
        elsewhere = {**served.env, "KITH_DOMAIN": f"127.0.0.1:{free_port()}"}
        r = kith_check(elsewhere)
        assert r.returncode == 1
        assert any(line.startswith("FAIL  webfinger:") for line in r.stdout.splitlines()), r.stdout


def test_check_reports_an_unmigrated_database(tmp_path) -> None:
    env = {**os.environ, "KITH_DOMAIN": "127.0.0.1:9", "KITH_DATABASE_URL": f"sqlite:///{tmp_path}/new.db"}
    r = kith_check(env)
    assert r.returncode == 1 and r.stdout.startswith("FAIL  database:") and "kith migrate" in r.stdout


def test_proxy_and_clock_comparisons() -> None:
    settings = Settings(domain="groups.example", scheme="https")
    assert compare_seen(settings, {"host": "groups.example", "scheme": "https"}).ok
    rewritten = compare_seen(settings, {"host": "127.0.0.1:8000", "scheme": "https"})
    assert not rewritten.ok and "Host header" in rewritten.detail
    plain = compare_seen(settings, {"host": "groups.example", "scheme": "http"})
    assert not plain.ok and "X-Forwarded-Proto" in plain.detail
    now = datetime.now(UTC)
    assert compare_clock("x", now + timedelta(seconds=30), now).ok
    assert not compare_clock("x", now - timedelta(minutes=5), now).ok
