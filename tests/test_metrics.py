"""``/metrics`` after real traffic: parsed with prometheus-client's own parser, counted exactly.

Per-process counters live as long as the test process, so each test reads them before and
after its traffic and checks the difference; what the database keeps is read afresh per
scrape, so those values are checked as they are.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml
from prometheus_client.parser import text_string_to_metric_families

from server.accounts import create_user
from server.app import create_app
from server.groups.membership import GroupSpec, create_group
from server.moderation import reports
from server.tables import deliveries, inbox_items, server_health
from server.types import utcnow
from tests.fakes.mastodon import FakeMastodon

GROUP = "https://kith.test/groups/club"
TOKEN = "metrics-token-0123456789"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def scrape(client: httpx.AsyncClient) -> Samples:
    r = await client.get("/metrics")  # the ASGI transport's client is 127.0.0.1: loopback
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


@pytest.fixture
async def down(network) -> FakeMastodon:
    """A second server whose inbox answers 503 to everything."""
    fake = FakeMastodon("down.example", network, status=503)
    fake.add_user("bob")
    yield fake
    await fake.http.aclose()


async def test_counts_after_real_traffic(client, services, worker, mastodon, down) -> None:
    before = await scrape(client)
    await create_user(services.db, "root_admin", admin=True)
    await create_group(services.db, GroupSpec(name="club"))

    # Two members: alice (answers 202) and bob on a server answering 503.
    assert (await mastodon.post(client, "alice", f"{GROUP}/inbox", mastodon.follow("alice", GROUP))).status_code == 202
    assert (await down.post(client, "bob", f"{GROUP}/inbox", down.follow("bob", GROUP))).status_code == 202
    # Two posts, the first delivered twice (a remote's retry).
    creates = [mastodon.create("alice", mastodon.note("alice", f"<p>post {i}</p>", to_group=GROUP)) for i in range(2)]
    for create in creates:
        assert (await mastodon.post(client, "alice", "https://kith.test/inbox", create)).status_code == 202
    assert (await mastodon.post(client, "alice", "https://kith.test/inbox", creates[0])).status_code == 202
    # Refused: unsigned; signed but the body changed after signing; malformed (no id).
    unsigned = await client.post("/inbox", content=json.dumps(mastodon.create("alice", mastodon.note("alice", "x"))))
    assert unsigned.status_code == 401
    forged = mastodon.create("alice", mastodon.note("alice", "y"))
    body = json.dumps(forged).encode()
    headers = mastodon.signed_headers("alice", "https://kith.test/inbox", body)
    tampered = await client.post("/inbox", content=body.replace(b'"y"', b'"z"'), headers=headers)
    assert tampered.status_code == 401
    malformed = await client.post("/inbox", content=b'{"type": "Create", "actor": "https://mastodon.example/u"}')
    assert malformed.status_code == 400

    # Processing lag is read from the database: the oldest waiting activity, 10 minutes old.
    async with services.db.transaction() as conn:
        await conn.execute(sa.update(inbox_items).values(created_at=utcnow() - timedelta(minutes=10)))
    waiting = await scrape(client)
    assert 600 <= value(waiting, "kith_inbox_lag_seconds") < 700
    assert value(waiting, "kith_queue_items", queue="inbox", state="queued") == 4

    await worker.drain()
    # A report, then its resolution.
    flag = {
        "id": mastodon.new_id(),
        "type": "Flag",
        "actor": mastodon.actor_uri("alice"),
        "object": [creates[1]["object"]["id"]],
    }
    assert (await mastodon.post(client, "alice", "https://kith.test/inbox", flag)).status_code == 202
    await worker.drain()
    mid = await scrape(client)
    assert value(mid, "kith_reports_open") == 1 and value(mid, "kith_reports_oldest_open_age_seconds") >= 0
    async with services.db.read() as conn:
        report_id = (await conn.execute(sa.text("SELECT id FROM reports"))).scalar_one()
    await reports.resolve(services, report_id, "root_admin")

    after = await scrape(client)
    # Inbox doors: 5 stored (2 follows, 2 creates, 1 flag), 1 duplicate, 3 refused with their reasons.
    assert delta(after, before, "kith_inbox_requests_total", outcome="accepted", reason="") == 5
    assert delta(after, before, "kith_inbox_requests_total", outcome="duplicate", reason="") == 1
    assert delta(after, before, "kith_inbox_requests_total", outcome="refused", reason="unsigned") == 1
    assert delta(after, before, "kith_inbox_requests_total", outcome="refused", reason="bad_signature") == 1
    assert delta(after, before, "kith_inbox_requests_total", outcome="refused", reason="malformed") == 1
    # Every signed request but the tampered one verified (6), the tampered one failed.
    assert delta(after, before, "kith_signatures_total", result="verified") == 6
    assert delta(after, before, "kith_signatures_total", result="failed") == 1
    # Fetches: alice's and bob's actor documents, once each (then cached); none failed.
    assert delta(after, before, "kith_fetches_total", outcome="ok") == 2
    assert sum(v for (n, lab), v in after.items() if n == "kith_fetches_total" and ("outcome", "ok") not in lab) == sum(
        v for (n, lab), v in before.items() if n == "kith_fetches_total" and ("outcome", "ok") not in lab
    )
    # Sends, counted against what the two servers actually received.
    assert len(mastodon.received) > 0 and len(down.received) > 0
    assert delta(after, before, "kith_deliveries_total", outcome="done", status_class="2xx") == len(mastodon.received)
    assert delta(after, before, "kith_deliveries_total", outcome="queued", status_class="5xx") == len(down.received)
    # What could not be sent waits as delivery rows (none is due again yet): the Accept and
    # both posts' two Announces, for bob's server; the send that failed first stops the rest.
    async with services.db.read() as conn:
        queued = (
            await conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(deliveries.c.state == "queued"))
        ).scalar_one()
        failures = (await conn.execute(sa.select(server_health.c.failures))).scalar_one()
    assert queued == 5
    assert value(after, "kith_queue_items", queue="deliveries", state="queued") == queued
    assert failures == len(down.received)
    assert value(after, "kith_circuit_breakers_open") == (1 if failures >= 5 else 0)
    # Everything the inbox took was processed: no lag, nothing queued, five done.
    assert value(after, "kith_inbox_lag_seconds") == 0
    assert value(after, "kith_queue_items", queue="inbox", state="queued") == 0
    assert value(after, "kith_queue_items", queue="inbox", state="done") == 5
    # Fan-outs: one per redistributed post, each timed.
    fanouts_done = value(after, "kith_queue_items", queue="fanouts", state="done")
    assert fanouts_done == 2
    assert delta(after, before, "kith_fanout_duration_seconds_count", outcome="done") == fanouts_done
    # Reports: one opened, one resolved, none open.
    assert value(after, "kith_reports_opened_total") == 1
    assert value(after, "kith_reports_resolved_total") == 1
    assert value(after, "kith_reports_open") == 0 and value(after, "kith_reports_oldest_open_age_seconds") == 0
    assert value(after, "kith_database_up") == 1


@pytest.mark.parametrize(
    ("peer", "token", "authorization", "headers", "status"),
    [
        ("127.0.0.1", None, None, {}, 200),  # loopback, no token configured
        ("::1", TOKEN, None, {}, 200),  # loopback, token configured but not needed
        ("203.0.113.9", TOKEN, f"Bearer {TOKEN}", {}, 200),  # from anywhere with the token
        ("203.0.113.9", TOKEN, "Bearer wrong-token-000000000", {}, 401),
        ("203.0.113.9", TOKEN, None, {}, 401),
        ("203.0.113.9", None, None, {}, 403),  # neither: no token configured, not loopback
        ("203.0.113.9", None, "Bearer anything-at-all-0000", {}, 403),
        # A proxy on this host forwards a client from elsewhere: loopback peer, but not local.
        ("127.0.0.1", None, None, {"X-Forwarded-For": "198.51.100.7"}, 403),
        ("127.0.0.1", TOKEN, None, {"Forwarded": "for=198.51.100.7"}, 401),
    ],
)
async def test_access_rule(settings, services, peer, token, authorization, headers, status) -> None:
    import dataclasses

    configured = dataclasses.replace(settings, metrics_token=token)
    app = create_app(configured, services=dataclasses.replace(services, settings=configured), run_worker=False)
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    if authorization:
        headers = {**headers, "Authorization": authorization}
    async with httpx.AsyncClient(transport=transport, base_url="https://kith.test") as c:
        r = await c.get("/metrics", headers=headers)
    assert r.status_code == status, r.text
    if status == 200:
        assert ("kith_database_up", ()) in parse(r.text)
    else:
        assert r.json()["error"]  # a reason, never an empty refusal
        assert "kith_" not in r.text
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")


async def test_alert_rules_name_only_real_metrics(client) -> None:
    """Every metric an alert in docs/prometheus-alerts.yml uses appears in a real scrape."""
    import re

    rules = yaml.safe_load((Path(__file__).parent.parent / "docs" / "prometheus-alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert {rule["alert"] for group in rules["groups"] for rule in group["rules"]} >= {
        "KithProcessingLag",
        "KithDeliveryFailureRate",
        "KithReportsWaiting",
    }
    # Count a few things so the labelled counters have samples to show.
    await client.post("/inbox", content=b"{}")
    text = (await client.get("/metrics")).text
    exposed = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    # A labelled counter nothing has counted yet shows only its HELP and TYPE: its family.
    for family in text_string_to_metric_families(text):
        exposed |= {
            family.name,
            *(
                family.name + s
                for s in {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [])
            ),
        }
    for expr in exprs:
        names = set(re.findall(r"\b(kith_[a-z_]+)", expr))
        assert names, expr
        assert names <= exposed, (expr, names - exposed)


_COUNT_IN_A_PROCESS = """
import sys
from server import metrics
for _ in range(int(sys.argv[1])):
    metrics.inbox("accepted")
    metrics.delivery("done", 202)
metrics.delivery("queued", None)
"""

_SCRAPE_IN_A_PROCESS = """
import sys
from server import scrape
sys.stdout.write(scrape.exposition(None).decode())
"""


def test_multiprocess_mode_sums_every_process(tmp_path) -> None:
    """Several processes (web and workers) counting into one PROMETHEUS_MULTIPROC_DIR: any one scrape
    sums them, and the counts of a process that has exited stay counted."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (3, 4, 5):  # three processes, run one after another and exited
        subprocess.run([sys.executable, "-c", _COUNT_IN_A_PROCESS, str(n)], env=env, check=True)
    out = subprocess.run(
        [sys.executable, "-c", _SCRAPE_IN_A_PROCESS], env=env, check=True, capture_output=True, text=True
    ).stdout
    samples = parse(out)
    assert value(samples, "kith_inbox_requests_total", outcome="accepted", reason="") == 12
    assert value(samples, "kith_deliveries_total", outcome="done", status_class="2xx") == 12
    assert value(samples, "kith_deliveries_total", outcome="queued", status_class="network") == 3
    assert value(samples, "kith_database_up") == 0  # no snapshot given: the database part says so


async def test_a_database_that_does_not_answer_is_a_metric_not_a_500(settings, services) -> None:
    import dataclasses

    from server.db import Database

    down = Database("postgresql://postgres@127.0.0.1:1/nowhere")  # nothing listens there
    app = create_app(settings, services=dataclasses.replace(services, db=down), run_worker=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://kith.test") as c:
            r = await c.get("/metrics")
    finally:
        await down.dispose()
    assert r.status_code == 200
    samples = parse(r.text)
    assert value(samples, "kith_database_up") == 0
    assert not any(name == "kith_queue_items" for name, _ in samples)
