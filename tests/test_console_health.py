"""The admin console's federation health page, /console/admin/health, on SQLite and PostgreSQL.

A world with members on two fake servers (their Follows came in signed, their Accepts went
out through the delivery queue), a server that answers 500 until its circuit opens and one
that refuses with 403 (dead deliveries). The page must show them, and its charts' bars
must add up to what the database holds.
"""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from server.accounts import create_user
from server.federation import delivery, nodeinfo
from server.federation.sender import CIRCUIT_THRESHOLD
from server.groups import servers
from server.tables import deliveries, inbox_items, server_health
from server.types import utcnow
from server.web.console.admin_health import waited
from tests.console_helpers import sign_in
from tests.fakes.world import GROUP

PASSWORD = "correct horse battery"
PAGE = "/console/admin/health"


def _answering(status: int):
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="down for maintenance" if status >= 500 else "no")

    return handler


async def _queue(services, world, inboxes: list[str]) -> None:
    async with services.db.transaction() as conn:
        for n, inbox in enumerate(inboxes):
            activity = {"id": f"{GROUP}#health-{n}-{inbox}", "type": "Announce", "actor": GROUP, "object": GROUP}
            await delivery.enqueue(conn, services.db, activity=activity, actor_id=world.group.id, inboxes=[inbox])


@pytest.fixture
async def health_world(client, services, worker, network, world, mastodon):
    """bookclub with alice and carol (mastodon.example) and bob (social.example); down.example's
    circuit open after failing sends; two deliveries to refusing.example dead; ada the admin signed in."""
    mastodon.add_user("carol")
    r = await mastodon.post(client, "carol", f"{GROUP}/inbox", mastodon.follow("carol", GROUP))
    assert r.status_code == 202
    network.add_handler("down.example", _answering(500))
    network.add_handler("refusing.example", _answering(403))
    await _queue(services, world, [f"https://down.example/users/u{n}/inbox" for n in range(CIRCUIT_THRESHOLD + 1)])
    await _queue(services, world, ["https://refusing.example/inbox", "https://refusing.example/users/x/inbox"])
    await worker.drain()
    await create_user(services.db, "ada", admin=True, password=PASSWORD)
    assert (await sign_in(client, "ada", PASSWORD)).status_code == 303
    return world


def _bars(html: str, chart_id: str, css_class: str) -> int:
    svg = re.search(rf'<svg class="chart" id="{chart_id}".*?</svg>', html, re.S)
    assert svg is not None, chart_id
    return sum(int(n) for n in re.findall(rf'<rect class="{css_class}"[^>]*data-count="(\d+)"', svg.group(0)))


def _row(html: str, domain: str) -> str:
    match = re.search(rf'<tr[^>]*>\s*<td class="lead" data-label="Server">{re.escape(domain)}</td>.*?</tr>', html, re.S)
    assert match is not None, f"no row for {domain}"
    return match.group(0)


async def test_the_page_shows_servers_breakers_queues_and_charts_that_add_up(client, services, health_world):
    async with services.db.read() as conn:
        done = (await conn.execute(sa.select(sa.func.count()).where(deliveries.c.state == "done"))).scalar_one()
        dead = (await conn.execute(sa.select(sa.func.count()).where(deliveries.c.state == "dead"))).scalar_one()
        waiting = (await conn.execute(sa.select(sa.func.count()).where(deliveries.c.state == "queued"))).scalar_one()
        received = (await conn.execute(sa.select(sa.func.count()).select_from(inbox_items))).scalar_one()
        breaker = (await conn.execute(sa.select(server_health).where(server_health.c.domain == "down.example"))).one()
    assert done >= 3 and dead == 2 and received >= 3  # the Accepts to alice, bob and carol; refusing.example
    assert breaker.open_until > utcnow() and waiting >= CIRCUIT_THRESHOLD

    r = await client.get(PAGE)
    assert r.status_code == 200, r.text[:400]
    html = r.text
    assert 'aria-current="page">Federation health</a>' in html
    # Members per server, healthy ones delivered to; the software is not known (the survey has not run).
    alice = _row(html, "mastodon.example")
    assert "2 members" in alice and "delivered <time" in alice
    assert "software unknown" in alice and "circuit closed" in alice and "not failing" in alice
    assert "1 member<" in _row(html, "social.example")
    down = _row(html, "down.example")
    assert 'class="failing"' in down and "sends paused until" in down and "HTTP 500" in down
    assert f"{CIRCUIT_THRESHOLD} failures in a row" in down
    refusing = _row(html, "refusing.example")
    assert (
        'last given up: <span class="error-text">403 from the remote' in refusing and "no delivery recorded" in refusing
    )
    assert html.index("down.example") < html.index("mastodon.example")  # failing servers first
    assert "1 with sends paused" in html
    # Queues as /metrics counts them.
    assert f"{waiting} waiting" in html and "Deliveries (retries and direct sends)" in html
    # The charts: one bar per hour with anything in it; their counts are the database's.
    assert _bars(html, "chart-deliveries", "ok") == done
    assert _bars(html, "chart-deliveries", "failed") == dead
    assert _bars(html, "chart-inbox", "ok") == received
    assert '<title id="chart-deliveries-title">Deliveries per hour</title>' in html
    assert f"{done} succeeded, {dead} failed" in html  # the chart's <desc>
    # And the same numbers as a table, for those who cannot see the chart.
    assert "The numbers, as a table" in html
    # Once the worker's survey read a server's NodeInfo, its software shows.
    async with services.db.transaction() as conn:
        await nodeinfo.remember(
            conn, services.db.dialect, "social.example", nodeinfo.Software("gotosocial"), now=utcnow()
        )
    social = _row((await client.get(PAGE)).text, "social.example")
    assert ">gotosocial<" in social and "software unknown" not in social


async def test_overview_links_to_it_and_others_get_a_403_page(client, services, health_world):
    r = await client.get("/console/admin")
    assert 'href="/console/admin/health"' in r.text
    await client.post("/logout", data={})
    client.cookies.clear()
    await create_user(services.db, "mara", password=PASSWORD)
    await sign_in(client, "mara", PASSWORD)
    r = await client.get(PAGE)
    assert r.status_code == 403 and "admins only" in r.text and "down.example" not in r.text


async def test_servers_are_paged_fifty_at_a_time(client, services, health_world):
    async with services.db.read() as conn:
        known = await servers.count(conn)
    now = utcnow()
    async with services.db.transaction() as conn:
        await conn.execute(
            sa.insert(server_health),
            [
                {"domain": f"x{n:03}.example", "failures": 1, "last_error": "HTTP 502", "updated_at": now}
                for n in range(60)
            ],
        )
    r = await client.get(PAGE)
    pages = -(-(known + 60) // 50)
    assert f"Page 1 of {pages}" in r.text and r.text.count('data-label="Server"') == 50
    r2 = await client.get(PAGE + "?page=2")
    assert r2.text.count('data-label="Server"') == known + 60 - 50 and "mastodon.example" in r2.text
    assert "No servers on this page" in (await client.get(PAGE + "?page=9")).text
    assert (await client.get(PAGE + "?page=abc")).status_code == 400


def test_waited_reads_as_a_person_would():
    now = utcnow()
    assert waited(None, now) == "–"
    assert waited(now - timedelta(seconds=5), now) == "5 s"
    assert waited(now - timedelta(minutes=125), now) == "2 h 5 min"
    assert waited(now - timedelta(days=3), now) == "3 days"
