"""Kith's own API against its OpenAPI description, fuzzed by schemathesis (issue 12).

A real ``kith serve`` on loopback, a group with an owner and a token for them; schemathesis
generates requests for every operation the description lists (valid and invalid ones) and
the assertion is the issue's: no response is a server error. Run on SQLite and on
PostgreSQL, whose stricter types (32-bit ids, no NUL in text) are where 500s hid before.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.schemas import APIOperation

HOST = "127.0.0.1"
EXAMPLES = 6  # per operation and mode: about 200 requests per database


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``kith serve`` on this test's database: (base URL, a read/write token of the group's owner)."""
    port = _free_port()
    env = {**os.environ, "KITH_DOMAIN": f"{HOST}:{port}", "KITH_DATABASE_URL": database_url}

    def kith(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "server", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    kith("user", "create", "owner1")
    kith("group", "create", "bookclub", "--owner", "owner1")
    token = kith("token", "create", "owner1", "--scopes", "read write")
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--host", HOST, "--port", str(port), "--no-worker"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=log,
    )
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(base + "/.well-known/nodeinfo", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        yield base, token
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def test_no_server_errors(served: tuple[str, str]) -> None:
    """Every operation, with generated valid (positive) and invalid (negative) requests: never a 5xx."""
    base, token = served
    schema = schemathesis.openapi.from_url(base + "/api/kith/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15  # the description lists every route of /api/kith/v1
    statuses: list[int] = []

    def fuzz(operation: APIOperation, mode: GenerationMode) -> None:
        @given(case=operation.as_strategy(mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def call(case: schemathesis.Case) -> None:
            response = case.call(base_url=base, headers={"Authorization": f"Bearer {token}"})
            statuses.append(response.status_code)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
            )

        try:
            call()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation with nothing to get wrong: no invalid request exists

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode)
    print(f"schemathesis: {len(statuses)} requests to {len(operations)} operations, 5xx: 0")
    assert len(statuses) > 2 * len(operations)
