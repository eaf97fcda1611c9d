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


def _start(database_url: str, args: tuple[str, ...], domain: str | None, env: dict[str, str]) -> Served:
    """Start ``kith serve`` and wait (up to 60 s: a loaded CI machine is slow) until it answers or exits."""
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
    deadline = time.monotonic() + 60
    while proc.poll() is None:
        try:
            httpx.get(f"{served.base}/healthz", timeout=1)
            return served
        except httpx.TransportError:
            if time.monotonic() > deadline:
                proc.kill()
                _, err = proc.communicate(timeout=20)
                raise AssertionError(f"kith serve did not answer within 60 s:\n{err}") from None
            time.sleep(0.2)
    return served


@contextlib.contextmanager
def kith_serve(database_url: str, *args: str, domain: str | None = None, **env: str) -> Iterator[Served]:
    """Run ``kith serve`` on a free loopback port until the block ends; waits until it answers."""
    for attempt in range(3):
        served = _start(database_url, args, domain, env)
        if served.proc.poll() is None:
            break
        _, served.stderr = served.proc.communicate(timeout=20)
        # Another process may take a free port between our look and the server's bind.
        if "address already in use" not in served.stderr or attempt == 2:
            raise AssertionError(f"kith serve exited with {served.proc.returncode}:\n{served.stderr}")
    proc = served.proc
    try:
        yield served
    finally:
        proc.terminate()
        _, served.stderr = proc.communicate(timeout=20)
