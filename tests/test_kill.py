"""SIGKILL under load: real ``kith serve --no-worker`` and ``kith worker`` killed mid-way and restarted.

The scenario is ``bench.kill`` (``python -m bench.kill`` runs it with 1,000 activities and
prints the figures); here 200 signed Creates from members on 4 loopback servers, on a
fresh PostgreSQL database. What it promises, checked below: every activity that got a
202 is processed exactly once (one inbox row, done; one post; one fan-out), and every
member server receives each of the group's Announces with a valid signature exactly
once, except the Announces of fan-outs the killed worker held, which may arrive twice
(a fan-out resumes after its last checkpoint, so the sends since then go out again;
receivers de-duplicate by id), never more.
"""

from __future__ import annotations

import pytest

from bench.kill import passed, run_scenario


async def test_killed_web_and_worker_lose_nothing_and_process_once(database_url):
    if database_url.startswith("sqlite"):
        pytest.skip("needs PostgreSQL: a separate web process and worker share one database only there")
    figures = await run_scenario(activities=200, servers=4, rate=60.0, timeout=180.0)
    report = "\n".join(figures.lines())
    assert passed(figures) == [], report
    assert figures.accepted == figures.posts == figures.fanouts == 200, report
    assert figures.deliveries_expected == 200 * 2 * 4 and figures.missing == 0, report
    assert figures.duplicates == figures.duplicates_allowed and figures.most_copies <= 2, report
    # The kills happened in the middle: some of the load before each, some after.
    assert 0 < figures.web_killed_after < figures.worker_killed_after < 200, report
