"""Logs: JSON lines under KITH_LOG_FORMAT=json, a request id on every web line, no credentials."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from server import logs
from server.errors import ConfigError
from server.settings import Settings
from tests.served import kith_serve


def test_redact_hides_credential_query_values_and_keeps_the_rest() -> None:
    line = "GET /oauth/authorize?client_id=abc&code=s3cret&state=x&access_token=t0k HTTP/1.1"
    out = logs.redact(line)
    assert "s3cret" not in out and "t0k" not in out
    assert "client_id=abc" in out and "state=x" in out and "code=[redacted]" in out


def test_json_formatter_writes_one_object_with_the_request_id() -> None:
    record = logging.LogRecord("kith.test", logging.WARNING, __file__, 1, "failed %s", ("/x?password=pw",), None)
    token = logs.request_id.set("req-1")
    try:
        logs.RequestContext().filter(record)
    finally:
        logs.request_id.reset(token)
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["level"] == "warning" and line["logger"] == "kith.test" and line["request_id"] == "req-1"
    assert line["message"] == "failed /x?password=[redacted]"


def test_log_format_is_validated() -> None:
    assert Settings.from_env({"KITH_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="KITH_LOG_FORMAT"):
        Settings.from_env({"KITH_LOG_FORMAT": "xml"})


async def test_answers_carry_a_request_id(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-Id": "proxy-7.a_b"})
    assert given.headers["x-request-id"] == "proxy-7.a_b"
    made = await client.get("/healthz", headers={"X-Request-Id": "no spaces <allowed>"})
    assert made.headers["x-request-id"] != "no spaces <allowed>" and len(made.headers["x-request-id"]) == 32


def test_kith_serve_logs_json_lines_with_request_ids_and_no_tokens(settings: Settings) -> None:
    """A real ``kith serve``: every stderr line is JSON, the access line has the id, the token is gone."""
    with kith_serve(settings.database_url, "--access-log", domain=settings.domain, KITH_LOG_FORMAT="json") as served:
        r = httpx.get(f"{served.base}/readyz?access_token=SEKRET123", headers={"X-Request-Id": "trace-42"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "trace-42"
    err = served.stderr
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # fails on any non-JSON line
    assert any(line["message"].startswith("Kith ") and "serving" in line["message"] for line in lines)
    access = [line for line in lines if line["logger"] == "uvicorn.access" and "/readyz" in line["message"]]
    assert len(access) == 1 and access[0]["request_id"] == "trace-42"
    assert "SEKRET123" not in err
