"""The generic durable job loop: claim due rows, run them, record the outcome.

State lives on the row (attempts, next attempt, lease, last error), so the
database is the queue: a job survives any crash, and a worker killed with
SIGKILL only delays its leased rows until the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from server.db import Database
from server.queue import Outcome, Permanent, QueueRow, backoff
from server.rows import record
from server.types import UTCDateTime, utcnow

log = logging.getLogger("kith.worker")

# Failures that depend only on the row itself: the database refusing its data (a value out
# of range, text it cannot hold), a body that is not JSON, or a job saying so (``Permanent``).
PERMANENT = (Permanent, sa.exc.DataError, json.JSONDecodeError, UnicodeError)


def is_permanent(exc: BaseException) -> bool:
    """Whether ``exc`` would happen again on every retry of the same row.

    PostgreSQL's data exceptions (SQLSTATE class 22: a value too long for its column,
    out of range, text it cannot hold) reach us through asyncpg as a plain ``DBAPIError``,
    not as ``DataError``; their SQLSTATE says what they are.
    """
    if isinstance(exc, PERMANENT):
        return True
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, sa.exc.DBAPIError) and isinstance(sqlstate, str) and sqlstate.startswith("22")


R = TypeVar("R", bound=QueueRow)


@dataclass
class JobKind(Generic[R]):
    """One queue table, the typed row its jobs are read as, and the coroutine that runs one."""

    name: str
    table: sa.Table
    row_type: type[R]
    run: Callable[[R], Awaitable[Outcome]]
    batch: int = 50
    lease: timedelta = timedelta(minutes=5)
    concurrency: int = 50
    max_attempts: int | None = None  # after this many failures a job is dead (None: the job decides)
    where: Callable[[datetime], sa.ColumnElement[bool]] | None = None  # an extra claim filter, given the time
    # Rows with the same key run one after another, in claim order (an actor's Create before
    # its Delete); rows with different keys run side by side.
    key: Callable[[R], str] | None = None
    # Runs before each claimed batch (e.g. pick up a policy another process just changed).
    before_batch: Callable[[], Awaitable[None]] | None = None
    # Claim loops of this kind per worker: a loop waits for its whole batch before it claims
    # again, so long jobs (fan-outs) need several loops to keep several running.
    loops: int = 1


class Wake:
    """News that work was queued: wakes every idle kind's loop at once."""

    def __init__(self) -> None:
        self.events: list[asyncio.Event] = []

    def set(self) -> None:
        for event in self.events:
            event.set()


class Worker:
    """Runs every job kind in a loop until stopped."""

    def __init__(
        self,
        db: Database,
        kinds: list[JobKind[Any]],
        *,
        idle_sleep: float = 1.0,
        heartbeat: Callable[[Database], Awaitable[None]] | None = None,
        heartbeat_every: float = 30.0,
    ) -> None:
        self.db = db
        self.kinds = kinds
        self.idle_sleep = idle_sleep
        self.heartbeat = heartbeat  # called every ``heartbeat_every`` s while running, so others can see it lives
        self.heartbeat_every = heartbeat_every
        self.wake = Wake()
        # Schedules (the retention prune): each runs beside the kinds' loops until stopped.
        self.periodic: list[Callable[[asyncio.Event], Awaitable[None]]] = []

    async def run_once(self) -> int:
        """Claim and run one batch of every kind, one kind after another; returns how many jobs ran."""
        ran = 0
        for kind in self.kinds:
            ran += await self.run_batch(kind)
        return ran

    async def run_batch(self, kind: JobKind[R]) -> int:
        """Claim one batch of ``kind``, run it, record the outcomes; returns how many jobs ran."""
        now = utcnow()
        where = kind.where(now) if kind.where is not None else None
        claimed = await self.db.claim_due(kind.table, now=now, limit=kind.batch, lease=kind.lease, where=where)
        rows = [record(kind.row_type, r) for r in claimed]
        if not rows:
            return 0
        if kind.before_batch is not None:
            await kind.before_batch()
        sem = asyncio.Semaphore(kind.concurrency)
        lanes: dict[str | int, list[R]] = {}
        for row in rows:
            lanes.setdefault(kind.key(row) if kind.key else row.id, []).append(row)

        results: list[tuple[R, Outcome]] = []

        async def lane(items: list[R]) -> None:
            for row in items:
                async with sem:
                    results.append((row, await self._run(kind, row)))

        try:
            await asyncio.gather(*(lane(items) for items in lanes.values()))
        finally:
            # One write for the whole batch: per-row transactions cost more than the jobs.
            await self._finish(kind, results)
        return len(rows)

    async def drain(self, max_rounds: int = 100) -> int:
        """Run until nothing is due (tests and benchmarks); returns jobs run."""
        total = 0
        for _ in range(max_rounds):
            n = await self.run_once()
            total += n
            if n == 0:
                break
        return total

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Run each kind in a loop of its own until ``stop`` is set.

        Separate loops, so a long batch of one kind (a fan-out to ten thousand
        servers) never holds up another (the inbox).
        """
        beats = [self._beat(stop)] if self.heartbeat is not None else []
        await asyncio.gather(
            *beats,
            *(self._loop(kind, stop) for kind in self.kinds for _ in range(kind.loops)),
            *(task(stop) for task in self.periodic),
        )

    async def _beat(self, stop: asyncio.Event) -> None:
        assert self.heartbeat is not None
        while not stop.is_set():
            try:
                await self.heartbeat(self.db)
            except Exception:  # a missed beat is only a stale reading in `kith check`
                log.warning("worker heartbeat failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.heartbeat_every)

    async def _loop(self, kind: JobKind[Any], stop: asyncio.Event) -> None:
        """One kind's loop: run batches while there are any; sleep when idle, waking early on ``wake``."""
        wake = asyncio.Event()
        self.wake.events.append(wake)
        try:
            while not stop.is_set():
                wake.clear()  # before claiming: news arriving during the batch is kept for the next look
                try:
                    ran = await self.run_batch(kind)
                except Exception:  # keep the loop alive through a database hiccup
                    log.exception("worker round for %s failed", kind.name)
                    ran = 0
                if ran == 0:
                    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
                    await asyncio.wait(waiters, timeout=self.idle_sleep, return_when=asyncio.FIRST_COMPLETED)
                    for w in waiters:
                        w.cancel()
        finally:
            self.wake.events.remove(wake)  # a worker run again (tests, benchmarks) starts with fresh loops

    async def _run(self, kind: JobKind[R], row: R) -> Outcome:
        try:
            return await kind.run(row)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            if is_permanent(exc):
                # The same row would fail the same way on every retry: dead now, with the reason.
                log.warning("%s job %s dead, it can never succeed: %s", kind.name, row.id, error)
                return Outcome("dead", error)
            if kind.max_attempts is not None and row.attempts >= kind.max_attempts:
                log.warning("%s job %s dead after %d attempts: %s", kind.name, row.id, row.attempts, error)
                return Outcome("dead", error)
            log.info("%s job %s failed (attempt %d): %s", kind.name, row.id, row.attempts, error)
            return Outcome.retry(utcnow() + backoff(row.attempts), error)

    async def _finish(self, kind: JobKind[R], results: list[tuple[R, Outcome]]) -> None:
        """Record outcomes; only the holder of a row's current lease may (a stale worker writes nothing)."""
        if not results:
            return
        table = kind.table
        stmt = (
            sa.update(table)
            .where(
                table.c.id == sa.bindparam("b_id"), table.c.lease_until == sa.bindparam("b_lease", type_=UTCDateTime())
            )
            .values(
                state=sa.bindparam("b_state"),
                lease_until=None,
                last_error=sa.bindparam("b_error"),
                next_attempt_at=sa.bindparam("b_next", type_=UTCDateTime()),
                finished_at=sa.bindparam("b_finished", type_=UTCDateTime()),
            )
        )
        now = utcnow()
        params = [
            {
                "b_id": row.id,
                "b_lease": outcome.lease_until or row.lease_until,
                "b_state": outcome.state,
                "b_error": outcome.error,
                "b_next": (outcome.retry_at or now) if outcome.state == "queued" else row.next_attempt_at,
                "b_finished": None if outcome.state == "queued" else now,
            }
            for row, outcome in results
        ]
        async with self.db.transaction() as conn:
            await conn.execute(stmt, params)
