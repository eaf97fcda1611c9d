"""Fan-out: a group's activities sent to every member server from one queued row.

Redistribution queues one ``fanouts`` row per event (a post's two Announces, say)
instead of a delivery row per activity and member inbox (see ``server.tables.fanouts``).
The worker reads the member inboxes when it sends, in inbox order, sends to many at
once (the activities one after another to each, over one connection), and writes a
``deliveries`` row only for an activity an inbox did not take: the delivery
queue then retries it with the usual backoff and circuit breaker, or records why it
was dropped. Reading members at send time also means a server blocked, or a member
banned, after the post was queued receives nothing.

Progress is checkpointed every few seconds: the cursor (the last inbox such that
it and all before it are finished), the failure rows up to it, and a renewed lease,
in one transaction that first checks the lease is still ours. A worker killed mid-way
leaves the lease to run out; the next one resumes after the cursor, so at most the
sends of the last few seconds go out twice (servers de-duplicate activities by id).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server import metrics
from server.db import Database
from server.federation import nodeinfo, outbound
from server.federation.auth import HttpSignatureAuth
from server.federation.delivery import failure_row, record_failures
from server.federation.sender import DeliverySender
from server.federation.urls import authority_of, host_of
from server.groups import following, forms
from server.queue import Outcome, QueueRow
from server.tables import fanouts
from server.types import utcnow

log = logging.getLogger("kith.fanout")

CHECKPOINT_SECONDS = 2.0
# A fan-out to more inboxes than this is split into ranges of this many, which other
# loops and other worker processes claim: one range per worker would leave the other
# cores idle while one process signs ten thousand requests.
RANGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Fanout(QueueRow):
    """One group event (its activities, in order) on its way to every member server, or to a range of them."""

    activity_id: int  # the first of ``activity_ids``
    activity_ids: str  # JSON list of outbound activity ids, sent in this order to each server
    group_id: int
    cursor: str | None  # every inbox up to and including this one is finished
    until: str | None  # the last inbox of this row's range (None: to the end)
    sent: int
    failed: int

    @property
    def activity_pks(self) -> list[int]:
        """The outbound activities to send, in order."""
        pks: list[int] = json.loads(self.activity_ids)
        return pks


async def queue_fanout(
    conn: AsyncConnection,
    *,
    activities: Sequence[dict[str, Any]],
    group_id: int,
    public: bool,
    post_id: int | None,
) -> list[int]:
    """Store the group's ``activities`` once each and queue one fan-out of them to every member server.

    Two statements whatever the group's size: the worker reads the member inboxes when it
    sends, and sends the activities in this order to each. Returns the activities' row ids.
    """
    ids = await outbound.store_many(conn, activities, actor_id=group_id, public=public, post_id=post_id)
    now = utcnow()
    await conn.execute(
        _INSERT_FANOUT,
        {
            "activity_id": ids[0],
            "activity_ids": json.dumps(ids),
            "group_id": group_id,
            "next_attempt_at": now,
            "created_at": now,
        },
    )
    return ids


# Built once, run with parameters: building ``insert().values(...)`` per post cost more CPU than running it.
_INSERT_FANOUT = sa.insert(fanouts)


class LeaseLost(Exception):
    """Another worker holds the fan-out now (our lease ran out): stop sending."""


class FanoutSender:
    """Runs one ``fanouts`` row: sends its activity to every member server. One per worker."""

    def __init__(
        self,
        db: Database,
        sender: DeliverySender,
        *,
        is_blocked: Callable[[str], bool],
        lease: timedelta,
        in_flight: int = 100,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        range_size: int = RANGE_SIZE,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.sender = sender
        self.is_blocked = is_blocked
        self.lease = lease
        self.in_flight = in_flight
        self.checkpoint_seconds = checkpoint_seconds
        self.range_size = range_size
        self.wake = wake  # tells idle loops that split-off ranges are waiting
        # Shared by every fan-out this worker runs at once: the bound is on requests in flight.
        self._slots = asyncio.Semaphore(in_flight)

    @metrics.timed_fanout
    async def __call__(self, row: Fanout) -> Outcome:
        """Send the row's activities to each member inbox in its range, checkpointing as it goes."""
        loaded = [(pk, *await self.sender.load(pk)) for pk in row.activity_pks]
        form = forms.forms_of([json.loads(body) for _pk, body, _auth in loaded])
        async with self.db.read() as conn:
            inboxes = await following.member_inboxes(
                conn, row.group_id, after=row.cursor, until=row.until, is_blocked=self.is_blocked
            )
            inboxes_here = inboxes[: self.range_size]
            # Which form of the post each server displays, where its NodeInfo said (one statement a range).
            software = await nodeinfo.known(conn, map(authority_of, inboxes_here)) if any(form) else {}
        if len(inboxes) > self.range_size:
            await self._split(row, inboxes)
            self.wake()
        inboxes = inboxes_here
        # The activities each kind of server gets, worked out once per software name.
        choices: dict[str | None, list[tuple[int, bytes, HttpSignatureAuth]]] = {}

        def sends_for(inbox: str) -> list[tuple[int, bytes, HttpSignatureAuth]]:
            name = software.get(authority_of(inbox))
            chosen = choices.get(name)
            if chosen is None:
                chosen = choices[name] = [a for a, keep in zip(loaded, forms.wanted(form, name), strict=True) if keep]
            return chosen

        run = _Progress(inboxes, row.lease_until)
        pending = iter(enumerate(inboxes))

        async def send_next() -> None:
            for index, inbox in pending:
                async with self._slots:
                    run.finish(index, await self._send_one(row, inbox, sends_for(inbox)))

        senders = [asyncio.ensure_future(send_next()) for _ in range(min(self.in_flight, len(inboxes)))]
        try:
            finished = not senders
            while not finished:
                await asyncio.wait(senders, timeout=self.checkpoint_seconds)
                # Looked at before the checkpoint, not after: sends that finish while it writes
                # are taken by the next one, so the last checkpoint runs after the last send.
                finished = all(s.done() for s in senders)
                await self._checkpoint(row, run)
            for s in senders:
                s.result()  # re-raise a sender's unexpected error: the fan-out is retried from the cursor
        except BaseException:
            for s in senders:
                s.cancel()
            raise
        log.info("fan-out %s (activities %s): %d inboxes done, %d not", row.id, row.activity_ids, run.sent, run.failed)
        return Outcome.done(lease_until=run.lease_until)

    async def _send_one(
        self, row: Fanout, inbox: str, loaded: list[tuple[int, bytes, HttpSignatureAuth]]
    ) -> list[dict[str, Any]]:
        """Send each activity to one inbox in order; the ``deliveries`` rows for those it did not take."""
        domain = authority_of(inbox)  # member_inboxes left out every inbox this could refuse
        if self.is_blocked(host_of(inbox)):  # blocked since the fan-out started
            return []
        failures = []
        unreachable: Outcome | None = None
        for activity_pk, body, auth in loaded:
            # One connection per server carries them all; once it answered nothing (or its
            # circuit opened) the rest wait for the same retry instead of trying again now.
            outcome = unreachable or await self.sender.send(
                inbox, domain, body, auth, attempts=1, created_at=row.created_at
            )
            if outcome.state == "done":
                continue
            if outcome.state == "queued":
                unreachable = outcome
            now = utcnow()
            # Created when the post was: give up three days after it, not after the retry.
            failures.append(failure_row(activity_pk, inbox, domain, outcome, created_at=row.created_at, now=now))
        return failures

    async def _split(self, row: Fanout, inboxes: list[str]) -> None:
        """Keep the first range of ``inboxes`` for this row; queue the rest as rows of their own."""
        size = self.range_size
        bounds = [inboxes[i - 1] for i in range(size, len(inboxes), size)]  # the last inbox of each full range
        now = utcnow()
        async with self.db.transaction() as conn:
            kept = await conn.execute(
                sa.update(fanouts)
                .where(fanouts.c.id == row.id, fanouts.c.lease_until == row.lease_until)
                .values(until=bounds[0])
            )
            if kept.rowcount == 0:
                raise LeaseLost(f"fan-out {row.id} is no longer ours")
            ranges = [*zip(bounds, [*bounds[1:], row.until], strict=True)]
            await conn.execute(
                sa.insert(fanouts),
                [
                    {
                        "activity_id": row.activity_id,
                        "activity_ids": row.activity_ids,
                        "group_id": row.group_id,
                        "cursor": after,
                        "until": until,
                        "next_attempt_at": now,
                        "created_at": row.created_at,
                    }
                    for after, until in ranges
                ],
            )
        log.info("fan-out %s split into %d ranges of %d inboxes", row.id, len(ranges) + 1, size)

    async def _checkpoint(self, row: Fanout, run: _Progress) -> None:
        """Record the progress up to the cursor and renew the lease, if it is still ours."""
        cursor, failures, sent = run.take()
        if cursor is None and run.lease_fresh(self.lease):
            return
        now = utcnow()
        values: dict[str, Any] = {
            "lease_until": now + self.lease,
            "sent": fanouts.c.sent + sent,
            "failed": fanouts.c.failed + len({f["inbox"] for f in failures}),
        }
        if cursor is not None:
            values["cursor"] = cursor
        async with self.db.transaction() as conn:
            renewed = await conn.execute(
                sa.update(fanouts)
                .where(fanouts.c.id == row.id, fanouts.c.lease_until == run.lease_until)
                .values(**values)
            )
            if renewed.rowcount == 0:
                raise LeaseLost(f"fan-out {row.id} is no longer ours")
            await record_failures(conn, self.db, failures)
        run.lease_until = values["lease_until"]
        run.renewed_at = time.monotonic()


class _Progress:
    """Which inboxes of one fan-out are finished, and how far the unbroken run of them reaches."""

    def __init__(self, inboxes: list[str], lease_until: Any) -> None:
        self.inboxes = inboxes
        self.results: list[list[dict[str, Any]] | None] = [None] * len(inboxes)  # None: not finished yet
        self.low = 0  # every index below this is finished
        self.taken = 0  # every index below this is checkpointed
        self.sent = 0
        self.failed = 0
        self.lease_until = lease_until
        self.renewed_at = time.monotonic()

    def finish(self, index: int, failures: list[dict[str, Any]]) -> None:
        self.results[index] = failures
        while self.low < len(self.results) and self.results[self.low] is not None:
            self.low += 1

    def take(self) -> tuple[str | None, list[dict[str, Any]], int]:
        """The new cursor (None if it did not move), the failure rows behind it and the inboxes that took all."""
        if self.low == self.taken:
            return None, [], 0
        chunk = self.results[self.taken : self.low]
        failures = [f for failed in chunk if failed for f in failed]
        took_all = sum(1 for failed in chunk if not failed)
        cursor = self.inboxes[self.low - 1]
        self.taken = self.low
        self.sent += took_all
        self.failed += len(chunk) - took_all
        return cursor, failures, took_all

    def lease_fresh(self, lease: timedelta) -> bool:
        """Whether the lease has more than half its time left (else renew it even without progress)."""
        return time.monotonic() - self.renewed_at < lease.total_seconds() / 2
