"""Slow and greedy clients against a real ``kith serve`` on loopback (issue 12, item 7).

A connection that trickles its headers is closed after ``--header-timeout``; beyond
``--max-connections`` new requests get 503 instead of piling up; a trickled inbox body
gets 408. Before these limits, 400 slow connections stayed open 40 s.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from server.errors import RequestTimeout
from server.inbox.endpoint import read_capped

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "KITH_DOMAIN": f"{HOST}:{port}", "KITH_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}"}
    log = (tmp_path / "log").open("wb")
    args = [
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-worker",
        "--header-timeout",
        "1",
        "--max-connections",
        "40",
    ]
    proc = subprocess.Popen([sys.executable, "-m", "server", *args], env=env, cwd=tmp_path, stdout=log, stderr=log)
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 90  # a loaded machine: start-up migrates and makes a key
        while True:
            try:
                if httpx.get(base + "/.well-known/nodeinfo", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _slow_client(port: int) -> socket.socket:
    """A client that sends half a request line and then nothing more."""
    s = socket.create_connection((HOST, port))
    s.sendall(b"GET /.well-known/node")
    s.settimeout(5)
    return s


def _closed_by_server(s: socket.socket) -> bool:
    try:
        return s.recv(1024) == b""
    except (ConnectionResetError, TimeoutError):
        return False


def test_slow_headers_are_cut_off_and_a_connection_flood_gets_503(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    started = time.monotonic()
    slow = [_slow_client(port) for _ in range(60)]  # more than --max-connections
    try:
        statuses = []
        while time.monotonic() - started < 3 and 503 not in statuses:  # until the server has taken them all
            statuses.append(httpx.get(server + "/.well-known/nodeinfo", timeout=5, trust_env=False).status_code)
        assert statuses[-1] == 503, statuses
        for s in slow:
            s.settimeout(max(0.1, started + 10 - time.monotonic()))
        assert all(_closed_by_server(s) for s in slow)  # each recv returns once its server side closes
        assert time.monotonic() - started < 10  # --header-timeout 4, not the 40 s seen before
        assert httpx.get(server + "/.well-known/nodeinfo", timeout=5, trust_env=False).status_code == 200
    finally:
        for s in slow:
            s.close()


def test_a_complete_request_on_the_same_footing_is_served(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection((HOST, port)) as s:
        s.sendall(b"GET /.well-known/nodeinfo HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.5)  # within the header deadline
        s.sendall(b"\r\n")
        s.settimeout(5)
        assert s.recv(64).startswith(b"HTTP/1.1 200")


async def test_a_trickled_body_gets_408() -> None:
    async def receive() -> dict[str, object]:
        await asyncio.sleep(10)  # the body never comes
        return {"type": "http.request", "body": b"", "more_body": False}

    request = Request({"type": "http", "method": "POST", "path": "/inbox", "headers": []}, receive)
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        await read_capped(request, deadline=0.2)
    assert time.monotonic() - started < 2
