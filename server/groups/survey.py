"""The worker's NodeInfo survey: which software each member server runs, asked rarely.

A schedule beside the job loops (like the retention prune): every ``interval`` it takes
the member servers whose software was never asked or is due again
(``federation/nodeinfo.due``), leaves out every server the blocklist refuses (a
suspended server is never asked anything), asks up to ``per_round`` of them, a few at a
time, through the guarded fetcher (which refuses private addresses), and stores the
answers. Fan-outs read what it learnt (``groups/fanout``); until then a server gets both
forms of a post, so the survey only ever saves requests.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import timedelta

from server.db import Database
from server.federation import nodeinfo
from server.federation.client import Fetcher
from server.federation.urls import authority_of, host_of, origin_of
from server.groups.following import member_servers
from server.types import utcnow

log = logging.getLogger("kith.survey")

INTERVAL = timedelta(minutes=10)
FIRST_DELAY = timedelta(seconds=30)
PER_ROUND = 1000  # servers asked per round: 10,000 new members' servers are known within two hours
IN_FLIGHT = 20  # lookups at once (two GETs each): a background task, never a burst
WRITE_EVERY = 100  # answers stored per transaction


class SoftwareSurvey:
    """Asks member servers for their NodeInfo on a schedule; one per worker process."""

    def __init__(
        self,
        db: Database,
        fetcher: Fetcher,
        *,
        is_blocked: Callable[[str], bool],
        interval: timedelta = INTERVAL,
        first: timedelta = FIRST_DELAY,
        per_round: int = PER_ROUND,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        self.db = db
        self.fetcher = fetcher
        self.is_blocked = is_blocked
        self.interval = interval
        self.first = first
        self.per_round = per_round
        self.in_flight = in_flight

    async def run_once(self) -> int:
        """One round: ask the servers that are due (at most ``per_round``); returns how many were asked."""
        now = utcnow()
        async with self.db.read() as conn:
            inboxes = await member_servers(conn, is_blocked=self.is_blocked)
            origins = {authority_of(inbox): "{}://{}".format(*origin_of(inbox)) for inbox in inboxes}
            domains = await nodeinfo.due(conn, origins, now=now)
        # Checked again here, by host: member_servers filtered inboxes, and the policy may have changed since.
        domains = [d for d in domains if not self.is_blocked(host_of(origins[d]))][: self.per_round]
        pending = iter(domains)
        answers: list[tuple[str, nodeinfo.Software]] = []

        async def asker() -> None:
            for domain in pending:
                answers.append((domain, await nodeinfo.ask(self.fetcher, origins[domain])))
                if len(answers) >= WRITE_EVERY:
                    await self._store(answers)

        # A task group: if storing fails (the database went away), the other askers stop too.
        async with asyncio.TaskGroup() as group:
            for _ in range(min(self.in_flight, len(domains))):
                group.create_task(asker())
        await self._store(answers)
        return len(domains)

    async def _store(self, answers: list[tuple[str, nodeinfo.Software]]) -> None:
        batch, answers[:] = answers[:], []
        if not batch:
            return
        now = utcnow()
        async with self.db.transaction() as conn:
            for domain, software in batch:
                await nodeinfo.remember(conn, self.db.dialect, domain, software, now=now)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Survey on schedule until ``stop`` is set; a failed round is logged and tried again next time."""
        delay = self.first.total_seconds() * random.uniform(1.0, 1.5)  # jitter: workers started together differ
        while not await _wait(stop, delay):
            try:
                asked = await self.run_once()
                if asked:
                    log.info("asked %d servers for their NodeInfo", asked)
            except Exception:  # keep the schedule through a database hiccup
                log.exception("NodeInfo survey failed")
            delay = self.interval.total_seconds()


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
