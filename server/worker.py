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
from typing import Any, Generic, Protocol, TypeVar

import sqlalchemy as sa

from server.db import Database
from server.queue import Deferred, Outcome, Permanent, QueueRow, backoff
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
    # Rows this says yes to run first, one after another in shared write transactions of up
    # to ``together`` rows (``Database.batch``), several such transactions side by side: one
    # commit and one connection for many small jobs. If a row fails, its transaction runs
    # again with a savepoint per row, so only that row's writes go; a row that raises
    # ``Deferred`` runs on its own after the batch.
    batchable: Callable[[R], bool] | None = None
    together: int = 50


class _RowFailed(Exception):
    """A row of an optimistic shared transaction failed: roll it back and run the rows with savepoints."""


class Bell(Protocol):
    """Tells other processes that work was queued (``server.doorbell.Doorbell``)."""

    def ring(self, kind: str | None = None) -> None: ...


class Wake:
    """News that work was queued: wakes the idle loops of that kind (or of every kind) at once,
    here and, through ``bell``, in the other processes."""

    def __init__(self, bell: Bell | None = None) -> None:
        self.loops: list[tuple[str, asyncio.Event]] = []
        self.bell = bell

    def set(self, kind: str | None = None) -> None:
        """Work of ``kind`` (a ``JobKind`` name; None: any) was queued by this process."""
        self.hear(None if kind is None else frozenset((kind,)))
        if self.bell is not None:
            self.bell.ring(kind)

    def hear(self, kinds: frozenset[str] | None) -> None:
        """Work of ``kinds`` (None: any) was queued, here or elsewhere: wake those idle loops."""
        for name, event in self.loops:
            if kinds is None or name in kinds:
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
        results: list[tuple[R, Outcome]] = []
        try:
            if kind.batchable is not None:
                rows = await self._run_together(kind, rows, results)
            await self._run_apart(kind, rows, results)
        finally:
            # One write for the whole batch: per-row transactions cost more than the jobs.
            await self._finish(kind, results)
        return len(results)

    async def _run_together(self, kind: JobKind[R], rows: list[R], results: list[tuple[R, Outcome]]) -> list[R]:
        """Run the batchable rows in shared transactions; returns the rows left to run apart, in order.

        The rows are split by key into transactions of about ``kind.together`` rows that run
        side by side (one connection each), so round trips still overlap. Rows with one key
        stay in one transaction, in order; once a row of a key is left out (not batchable, or
        deferred), every later row of that key is left out too.
        """
        assert kind.batchable is not None
        apart_keys: set[str | int] = set()
        together: list[R] = []
        for row in rows:
            key = self._key(kind, row)
            if key not in apart_keys and kind.batchable(row):
                together.append(row)
            else:
                apart_keys.add(key)
        if not together:
            return rows
        shares = -(-len(together) // kind.together)
        slot: dict[str | int, int] = {}
        chunks: list[list[R]] = [[] for _ in range(shares)]
        for row in together:
            key = self._key(kind, row)
            chunks[slot.setdefault(key, len(slot) % shares)].append(row)
        done = await asyncio.gather(*(self._run_chunk(kind, chunk, apart_keys) for chunk in chunks if chunk))
        ran: set[int] = set()
        for chunk_results in done:
            results.extend(chunk_results)
            ran.update(row.id for row, _ in chunk_results)
        if any(outcome.state == "done" for chunk_results in done for _, outcome in chunk_results):
            self.wake.set()  # what they queued (fan-outs) is visible now, not before the commits
        return [row for row in rows if row.id not in ran]

    async def _run_chunk(self, kind: JobKind[R], rows: list[R], apart_keys: set[str | int]) -> list[tuple[R, Outcome]]:
        """Run ``rows`` one after another in one transaction; a failure costs that row alone.

        Optimistic first: no savepoints, one commit. If a row fails, the whole transaction is
        rolled back and the rows run again, each in a savepoint of its own, so the failed
        row's writes go and the others' commit (failures are rare; savepoints cost two
        round trips a row). A row that raises ``Deferred`` wrote nothing and is left out.
        """
        try:
            return await self._chunk_once(kind, rows, apart_keys, savepoints=False)
        except _RowFailed:
            pass
        except Exception as exc:  # the commit (or the connection) failed: try once more, row by row
            log.warning("%s: a shared transaction of %d jobs failed, running them again: %s", kind.name, len(rows), exc)
        try:
            return await self._chunk_once(kind, rows, apart_keys, savepoints=True)
        except Exception as exc:  # the commit failed again: nothing of the chunk was kept
            log.warning("%s: a shared transaction of %d jobs failed: %s", kind.name, len(rows), exc)
            return [(row, self._failed(kind, row, exc)) for row in rows if self._key(kind, row) not in apart_keys]

    async def _chunk_once(
        self, kind: JobKind[R], rows: list[R], apart_keys: set[str | int], *, savepoints: bool
    ) -> list[tuple[R, Outcome]]:
        chunk: list[tuple[R, Outcome]] = []
        async with self.db.batch() as conn:
            for row in rows:
                key = self._key(kind, row)
                if key in apart_keys:
                    continue
                try:
                    if savepoints:
                        async with conn.begin_nested():
                            outcome = await kind.run(row)
                    else:
                        outcome = await kind.run(row)
                except Deferred:
                    apart_keys.add(key)
                    continue
                except Exception as exc:
                    if not savepoints:
                        raise _RowFailed from exc  # rolls the transaction back; run again with savepoints
                    outcome = self._failed(kind, row, exc)
                chunk.append((row, outcome))
        return chunk

    @staticmethod
    def _key(kind: JobKind[R], row: R) -> str | int:
        return kind.key(row) if kind.key else row.id

    async def _run_apart(self, kind: JobKind[R], rows: list[R], results: list[tuple[R, Outcome]]) -> None:
        """Run ``rows`` side by side, up to ``kind.concurrency`` at once; rows with one key in order."""
        if not rows:
            return
        sem = asyncio.Semaphore(kind.concurrency)
        lanes: dict[str | int, list[R]] = {}
        for row in rows:
            lanes.setdefault(kind.key(row) if kind.key else row.id, []).append(row)

        async def lane(items: list[R]) -> None:
            for row in items:
                async with sem:
                    results.append((row, await self._run(kind, row)))

        await asyncio.gather(*(lane(items) for items in lanes.values()))

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
        self.wake.loops.append((kind.name, wake))
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
            self.wake.loops.remove((kind.name, wake))  # a worker run again (tests, benchmarks) starts with fresh loops

    async def _run(self, kind: JobKind[R], row: R) -> Outcome:
        try:
            return await kind.run(row)
        except Exception as exc:
            return self._failed(kind, row, exc)

    def _failed(self, kind: JobKind[R], row: R, exc: Exception) -> Outcome:
        """What a job that raised ``exc`` becomes: dead when retrying cannot help or it ran out of tries."""
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
