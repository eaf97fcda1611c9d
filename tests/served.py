"""A real ``kith serve`` process on a loopback port, for tests of what only a real process shows."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """The running process, its base URL and (after it stops) its stderr."""

    proc: subprocess.Popen[str]
    base: str
    env: dict[str, str]
    stderr: str = field(default="")


@contextlib.contextmanager
def kith_serve(database_url: str, *args: str, domain: str | None = None, **env: str) -> Iterator[Served]:
    """Run ``kith serve`` on a free loopback port until the block ends; waits until it answers."""
    port = free_port()
    full_env = {
        **os.environ,
        "KITH_DOMAIN": domain or f"127.0.0.1:{port}",
        "KITH_DATABASE_URL": database_url,
        **env,
    }
    cmd = [sys.executable, "-m", "server", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, env=full_env, stderr=subprocess.PIPE, text=True)
    served = Served(proc, f"http://127.0.0.1:{port}", full_env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{served.base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "kith serve did not start"
                time.sleep(0.2)
        yield served
    finally:
        proc.terminate()
        _, served.stderr = proc.communicate(timeout=20)
