"""Outgoing delivery: one row per target inbox, signed at send time.

``enqueue`` writes the activity once and a row per inbox in the caller's
transaction, so a change and the news of it commit together. ``DeliverySender``
runs one row on the worker and turns the remote's answer into an outcome:
2xx done; 410 gone; 429/503 retry at ``Retry-After``; other 4xx dead; 5xx and
network errors back off exponentially for three days. A per-server circuit breaker
stops a dead server from slowing the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database, upsert
from server.federation.auth import HttpSignatureAuth
from server.federation.client import Fetcher, FetchError, FetchFailed
from server.federation.urls import UnsafeUrl, authority_of, host_of
from server.queue import Outcome, backoff
from server.tables import deliveries, fanouts, local_actors, outbound_activities, server_health
from server.types import utcnow

log = logging.getLogger("kith.delivery")

GIVE_UP_AFTER = timedelta(days=3)
CIRCUIT_THRESHOLD = 5  # consecutive failures before a server's circuit opens
PER_SERVER = 4  # concurrent requests to one server


async def enqueue(
    conn: AsyncConnection,
    db: Database,
    *,
    activity: dict[str, Any],
    actor_id: int,
    inboxes: Iterable[str],
    public: bool = False,
    post_id: int | None = None,
) -> int:
    """Store ``activity`` once and queue one delivery per distinct inbox; returns the activity row id."""
    now = utcnow()
    activity_pk = await store_outbound(conn, activity, actor_id=actor_id, public=public, post_id=post_id, now=now)
    rows = []
    for inbox in dict.fromkeys(inboxes):  # ordered de-duplication
        try:
            domain = authority_of(inbox)  # per server, so per port: the circuit breaker's unit
        except UnsafeUrl:
            log.warning("not queuing delivery to malformed inbox %r", inbox)
            continue
        rows.append(
            {"activity_id": activity_pk, "inbox": inbox, "domain": domain, "next_attempt_at": now, "created_at": now}
        )
    if rows:
        await conn.execute(db.insert_ignore(deliveries, ["activity_id", "inbox"]), rows)
    return activity_pk


async def enqueue_fanout(
    conn: AsyncConnection,
    *,
    activities: Sequence[dict[str, Any]],
    group_id: int,
    public: bool,
    post_id: int | None,
) -> list[int]:
    """Store the group's ``activities`` once each and queue one fan-out of them to every member server.

    A row per activity and one more, whatever the group's size: the worker reads the
    member inboxes when it sends, and sends the activities in this order to each
    (see ``server.groups.fanout``). Returns the activities' row ids.
    """
    now = utcnow()
    # One INSERT for all of them (RETURNING in the order given): statements, not rows, are the cost here.
    stored = await conn.execute(
        _INSERT_OUTBOUND,
        [
            _outbound_values(activity, actor_id=group_id, public=public, post_id=post_id, now=now)
            for activity in activities
        ],
    )
    ids = list(stored.scalars())
    await conn.execute(
        sa.insert(fanouts).values(
            activity_id=ids[0], activity_ids=json.dumps(ids), group_id=group_id, next_attempt_at=now, created_at=now
        )
    )
    return ids


async def store_outbound(
    conn: AsyncConnection,
    activity: dict[str, Any],
    *,
    actor_id: int,
    public: bool,
    post_id: int | None,
    now: datetime,
) -> int:
    """Insert ``activity`` into ``outbound_activities``; returns its row id."""
    values = _outbound_values(activity, actor_id=actor_id, public=public, post_id=post_id, now=now)
    return (await conn.execute(_INSERT_OUTBOUND, [values])).scalar_one()


_INSERT_OUTBOUND = sa.insert(outbound_activities).returning(outbound_activities.c.id, sort_by_parameter_order=True)


def _outbound_values(
    activity: dict[str, Any], *, actor_id: int, public: bool, post_id: int | None, now: datetime
) -> dict[str, Any]:
    return {
        "uri": activity["id"],
        "actor_id": actor_id,
        "type": activity["type"],
        "public": public,
        "post_id": post_id,
        "body": json.dumps(activity, separators=(",", ":")),
        "created_at": now,
    }


def retry_after(value: str | None, now: datetime) -> datetime | None:
    """The time a ``Retry-After`` header names (seconds or an HTTP date), capped at a day."""
    if not value:
        return None
    value = value.strip()
    when: datetime | None
    if value.isdigit():
        when = now + timedelta(seconds=int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
    return min(max(when, now), now + timedelta(days=1))


def classify(
    status: int | None, headers: dict[str, str], *, attempts: int, created_at: datetime, now: datetime
) -> Outcome:
    """Turn a remote's answer (``status`` None for a network error) into the row's next state."""
    if status is not None and 200 <= status < 300:
        return Outcome.done()
    if status == 410:
        return Outcome("gone", "410 Gone")
    expired = now - created_at >= GIVE_UP_AFTER
    if status in (429, 503):
        at = retry_after(headers.get("retry-after"), now) or now + backoff(attempts)
        return (
            Outcome("dead", f"gave up after {attempts} attempts: {status}")
            if expired
            else Outcome.retry(at, f"{status}, retry at {at.isoformat()}")
        )
    if status is not None and 400 <= status < 500:
        return Outcome("dead", f"{status} from the remote")
    error = f"HTTP {status}" if status is not None else "network error"
    if expired:
        return Outcome("dead", f"gave up after {attempts} attempts: {error}")
    return Outcome.retry(now + backoff(attempts), error)


class DeliverySender:
    """Sends one delivery row: sign, post, classify. One instance per worker."""

    def __init__(
        self, db: Database, fetcher: Fetcher, *, is_blocked: Callable[[str], bool], key_id_of: Callable[[Any], str]
    ):
        self.db = db
        self.fetcher = fetcher
        self.is_blocked = is_blocked
        self.key_id_of = key_id_of
        self._auth: dict[int, HttpSignatureAuth] = {}
        self._bodies: dict[int, tuple[bytes, int]] = {}
        self._per_server: dict[str, asyncio.Semaphore] = {}
        self._open_until: dict[str, datetime] = {}
        self._failing: set[str] = set()
        self._load_lock = asyncio.Lock()

    def circuit_closed(self, now: datetime) -> Any:
        """A claim filter: skip rows whose server's circuit is open."""
        return ~sa.exists().where(server_health.c.domain == deliveries.c.domain, server_health.c.open_until > now)

    async def __call__(self, row: Any) -> Outcome:
        if self.is_blocked(host_of(row.inbox)):
            return Outcome("dead", "the domain is blocked")
        body, auth = await self.load(row.activity_id)
        return await self.send(row.inbox, row.domain, body, auth, attempts=row.attempts, created_at=row.created_at)

    async def load(self, activity_pk: int) -> tuple[bytes, HttpSignatureAuth]:
        """The stored activity's body and its actor's signer, each loaded once per process."""
        body, actor_id = await self._body(activity_pk)
        return body, await self._signer(actor_id)

    async def send(
        self, inbox: str, domain: str, body: bytes, auth: HttpSignatureAuth, *, attempts: int, created_at: datetime
    ) -> Outcome:
        """POST ``body`` to ``inbox``, signed, at most ``PER_SERVER`` at a time per server; classify the answer."""
        sem = self._per_server.setdefault(domain, asyncio.Semaphore(PER_SERVER))
        async with sem:
            # Checked after waiting our turn: the requests ahead of us may have opened the circuit.
            open_until = self._open_until.get(domain)
            if open_until and open_until > utcnow():
                return Outcome.retry(open_until, "circuit open")
            try:
                response = await self.fetcher.post(inbox, body, auth=auth)
                status, headers = response.status_code, {k.lower(): v for k, v in response.headers.items()}
            except FetchFailed as exc:
                status, headers = None, {}
                log.info("delivery to %s failed: %s", inbox, exc.reason)
            except FetchError as exc:  # refused by the URL guard: never worth retrying
                return Outcome("dead", f"refused: {exc.reason}")
            outcome = classify(status, headers, attempts=attempts, created_at=created_at, now=utcnow())
            await self._record_health(domain, ok=status is not None and status < 500, error=outcome.error)
        return outcome

    async def _body(self, activity_pk: int) -> tuple[bytes, int]:
        cached = self._bodies.get(activity_pk)
        if cached is None:
            async with self.db.read() as conn:
                r = (
                    await conn.execute(
                        sa.select(outbound_activities.c.body, outbound_activities.c.actor_id).where(
                            outbound_activities.c.id == activity_pk
                        )
                    )
                ).one()
            cached = (r.body.encode(), r.actor_id)
            if len(self._bodies) > 1000:
                self._bodies.clear()
            self._bodies[activity_pk] = cached
        return cached

    async def _signer(self, actor_pk: int) -> HttpSignatureAuth:
        auth = self._auth.get(actor_pk)
        if auth is not None:
            return auth
        # One loader at a time: a fan-out starts ~100 deliveries at once, and each loading
        # and validating the same private key cost a fifth of the worker's CPU.
        async with self._load_lock:
            auth = self._auth.get(actor_pk)
            if auth is None:
                async with self.db.read() as conn:
                    actor = (await conn.execute(sa.select(local_actors).where(local_actors.c.id == actor_pk))).one()
                auth = self._auth[actor_pk] = HttpSignatureAuth(self.key_id_of(actor), actor.private_key_pem)
        return auth

    async def _record_health(self, domain: str, *, ok: bool, error: str | None) -> None:
        """Count consecutive failures per server; a success resets them.

        Healthy servers cost no write: only a server this process saw failing is reset.
        A failure streak older than an hour starts again from one, so stale counts from
        long ago (or from another process) never open a circuit early.
        """
        now = utcnow()
        if ok:
            if domain in self._failing:
                self._failing.discard(domain)
                self._open_until.pop(domain, None)
                async with self.db.transaction() as conn:
                    await conn.execute(
                        sa.update(server_health)
                        .where(server_health.c.domain == domain)
                        .values(failures=0, open_until=None, updated_at=now)
                    )
            return
        self._failing.add(domain)
        stale = server_health.c.updated_at < now - timedelta(hours=1)
        async with self.db.transaction() as conn:
            stmt = upsert(
                self.db.dialect,
                server_health,
                ["domain"],
                {"domain": domain, "failures": 1, "last_error": error, "updated_at": now},
                {
                    "failures": sa.case((stale, 1), else_=server_health.c.failures + 1),
                    "last_error": error,
                    "updated_at": now,
                },
            ).returning(server_health.c.failures)
            failures = (await conn.execute(stmt)).scalar_one()
            if failures >= CIRCUIT_THRESHOLD:
                until = now + backoff(failures - CIRCUIT_THRESHOLD + 1, base=60.0)
                self._open_until[domain] = until
                await conn.execute(
                    sa.update(server_health).where(server_health.c.domain == domain).values(open_until=until)
                )
                log.warning("circuit open for %s until %s after %d failures", domain, until, failures)
