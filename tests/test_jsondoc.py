"""The one JSON parser for every door: depth cap, NUL refused, clear 400s (issue 12, items 4 and 6)."""

from __future__ import annotations

import json

import pytest

from server.jsondoc import MAX_DEPTH, JsonRefused, depth_exceeds, has_nul, parse_json


def test_a_surrogate_pair_is_fine():
    assert parse_json('{"emoji": "\\ud83d\\ude00"}') == {"emoji": "\U0001f600"}


def test_ordinary_documents_parse():
    doc = {"type": "Create", "object": {"tag": [{"type": "Mention", "href": "https://a.example/u"}]}}
    assert parse_json(json.dumps(doc).encode()) == doc
    assert parse_json(json.dumps(doc)) == doc


@pytest.mark.parametrize(
    "text, reason",
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper"),
        ("[" * 2_000 + "]" * 2_000, "nested deeper"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested deeper"),
        ('{"content": "a\\u0000b"}', "NUL"),
        ('{"a\\u0000": 1}', "NUL"),
        ('{"content": "\\ud800"}', "surrogate"),
        ('{"\\uDC00": 1}', "surrogate"),
        ("{not json", "not JSON"),
        (b'{"a": "\x80"}', "not UTF-8"),
    ],
)
def test_refused_with_a_reason(text, reason):
    with pytest.raises(JsonRefused, match=reason):
        parse_json(text)


def test_depth_limit_is_exact():
    assert not depth_exceeds(json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH), MAX_DEPTH)
    assert depth_exceeds(json.loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)), MAX_DEPTH)
    assert depth_exceeds({"a": [{"b": [1]}]}, 3)
    assert not depth_exceeds({"a": [{"b": 1}]}, 3)


def test_has_nul():
    assert has_nul("du\x00r")
    assert not has_nul("dur", None)


async def test_deep_nesting_at_the_doors_is_400_without_authentication(client):
    # 200 KB to the inbox (its cap is 256 KiB); 60 KB to the API and OAuth (their cap is 64 KiB).
    for path, levels in (
        ("/inbox", 100_000),
        ("/api/v1/apps", 30_000),
        ("/oauth/token", 30_000),
        ("/oauth/revoke", 30_000),
    ):
        deep = "[" * levels + "]" * levels
        response = await client.post(path, content=deep, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (path, response.status_code, response.text)
        assert "nested deeper" in response.json().get("error", "") + response.json().get("error_description", "")


async def test_nul_in_the_url_is_400(client):
    for path in ("/groups/du%00r", "/groups/du%00r/inbox", "/.well-known/webfinger?resource=acct:a%00@kith.test"):
        response = await client.get(path) if "inbox" not in path else await client.post(path, content=b"{}")
        assert response.status_code == 400, (path, response.status_code)
        assert "NUL" in response.json()["error"]


async def test_a_job_that_can_never_succeed_is_dead_at_once(services, worker):
    """A stored activity that cannot be read fails the same way on every retry: dead after one try."""
    import sqlalchemy as sa

    from server.tables import inbox_items
    from server.types import utcnow

    now = utcnow()
    async with services.db.transaction() as conn:
        await conn.execute(
            sa.insert(inbox_items).values(
                activity_uri="https://m.example/a/1",
                actor_uri="https://m.example/u/a",
                body="{not json",
                next_attempt_at=now,
                created_at=now,
            )
        )
    await worker.drain()
    async with services.db.read() as conn:
        row = (await conn.execute(sa.select(inbox_items))).one()
    assert (row.state, row.attempts) == ("dead", 1)
    assert "JSONDecodeError" in row.last_error
