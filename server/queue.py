"""The life of a queue row: what became of a job (``Outcome``) and when to try again.

The database is the queue (``server.worker`` runs the rows); these are the shared terms of
every queue table's ``state``, ``next_attempt_at`` and ``last_error`` columns, used by the
worker and by the jobs that report back to it (deliveries, fan-outs).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa


class Permanent(Exception):
    """A job failed for a reason that retrying cannot change: the worker marks it dead at once."""


class Deferred(Exception):
    """A job run inside a shared batch needs what a batch may not do (the network): run it on its own.

    Raised before the job wrote anything that matters: its savepoint is rolled back and the
    worker runs it again outside the batch, after the batch commits.
    """


@dataclass(frozen=True, slots=True)
class QueueRow:
    """The columns every queue table shares (``tables._queue_columns``): a job's state lives on its row."""

    id: int
    state: str  # queued | done | dead | gone
    attempts: int
    next_attempt_at: datetime
    lease_until: datetime | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Outcome:
    """What became of one job: ``done``, ``dead``, ``gone``, or ``queued`` again at a time."""

    state: str
    error: str | None = None
    retry_at: datetime | None = None
    # A long job that renewed its lease while running (a fan-out) records its outcome
    # under the lease it now holds, not the one it was claimed with.
    lease_until: datetime | None = None

    @classmethod
    def done(cls, *, lease_until: datetime | None = None) -> Outcome:
        """The job succeeded (under ``lease_until`` when it renewed its lease while running)."""
        return cls("done", lease_until=lease_until)

    @classmethod
    def retry(cls, at: datetime, error: str) -> Outcome:
        """Queue the job again, due at ``at``, remembering why it failed."""
        return cls("queued", error, at)


def backoff(attempts: int, *, base: float = 30.0, cap: float = 6 * 3600.0) -> timedelta:
    """Exponential backoff with jitter: 30 s, 1 min, 2 min ... at most ``cap``."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))


def finished_before(table: sa.Table, cutoff: datetime) -> sa.ColumnElement[bool]:
    """The rows of a queue table whose job ended (done, dead, gone) before ``cutoff``: the end of
    a row's life, when the worker's prune (``server.retention``) may delete it.

    A finished row's ``next_attempt_at`` is never after its ``finished_at`` (the worker keeps the
    claimed row's, a failure row its retry time at most), so the redundant bound lets the
    ``(state, next_attempt_at)`` index find them without a scan; a row whose retry time lay
    ahead when it was ended waits that much longer.
    """
    return sa.and_(
        table.c.state != "queued",
        table.c.next_attempt_at < cutoff,
        table.c.finished_at < cutoff,
    )
