"""Sending: one delivery signed, posted and classified, with a circuit breaker per server.

The one owner of ``server_health``. ``DeliverySender`` runs a ``deliveries`` row on the
worker, and fan-outs call its ``send`` for each member inbox. The signing key of each
local actor is asked of ``signing_key`` (the caller knows where keys live) once per
process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import sqlalchemy as sa

from server import metrics
from server.db import Database, upsert
from server.federation import outbound
from server.federation.auth import HttpSignatureAuth
from server.federation.client import Fetcher, FetchError, FetchFailed
from server.federation.delivery import Delivery, classify
from server.federation.urls import host_of
from server.queue import Outcome, backoff
from server.tables import deliveries, server_health
from server.types import utcnow

log = logging.getLogger("kith.delivery")

CIRCUIT_THRESHOLD = 5  # consecutive failures before a server's circuit opens
PER_SERVER = 4  # concurrent requests to one server

SigningKeyOf = Callable[[int], Awaitable[tuple[str, str]]]
"""A local actor's row id -> (key id, private key PEM)."""


class DeliverySender:
    """Sends one delivery row: sign, post, classify. One instance per worker."""

    def __init__(
        self, db: Database, fetcher: Fetcher, *, is_blocked: Callable[[str], bool], signing_key: SigningKeyOf
    ) -> None:
        self.db = db
        self.fetcher = fetcher
        self.is_blocked = is_blocked
        self.signing_key = signing_key
        self._auth: dict[int, HttpSignatureAuth] = {}
        self._bodies: dict[int, tuple[bytes, int]] = {}
        self._per_server: dict[str, asyncio.Semaphore] = {}
        self._open_until: dict[str, datetime] = {}
        self._failing: set[str] = set()
        self._load_lock = asyncio.Lock()

    def circuit_closed(self, now: datetime) -> sa.ColumnElement[bool]:
        """A claim filter: skip rows whose server's circuit is open."""
        return ~sa.exists().where(server_health.c.domain == deliveries.c.domain, server_health.c.open_until > now)

    async def __call__(self, row: Delivery) -> Outcome:
        """Send one queued delivery (unless its server was blocked since)."""
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
            metrics.delivery(outcome.state, status)
            await self._record_health(domain, ok=status is not None and status < 500, error=outcome.error)
        return outcome

    async def _body(self, activity_pk: int) -> tuple[bytes, int]:
        cached = self._bodies.get(activity_pk)
        if cached is None:
            async with self.db.read() as conn:
                cached = await outbound.body_and_actor(conn, activity_pk)
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
                key_id, private_pem = await self.signing_key(actor_pk)
                auth = self._auth[actor_pk] = HttpSignatureAuth(key_id, private_pem)
        return auth

    async def _record_health(self, domain: str, *, ok: bool, error: str | None) -> None:
        """Count consecutive failures per server; a success resets them.

        Healthy servers cost no write: only a server this process saw failing is reset.
        A failure streak older than an hour starts again from one, so stale counts from
        long ago (or from another process) never open a circuit early. A failure while
        the circuit is already open (a request that was in flight when it opened, here
        or in another process) is not counted: one outage opens the circuit once, for
        the time its streak earned, and is logged once.
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
        already_open = server_health.c.open_until > now
        async with self.db.transaction() as conn:
            stmt = upsert(
                self.db.dialect,
                server_health,
                ["domain"],
                {"domain": domain, "failures": 1, "last_error": error, "updated_at": now},
                {
                    "failures": sa.case(
                        (already_open, server_health.c.failures), (stale, 1), else_=server_health.c.failures + 1
                    ),
                    "last_error": error,
                    "updated_at": sa.case((already_open, server_health.c.updated_at), else_=now),
                },
            ).returning(server_health.c.failures, server_health.c.open_until)
            failures, open_until = (await conn.execute(stmt)).one()
            if open_until is not None and open_until > now:
                self._open_until[domain] = open_until  # opened already, perhaps by another process
                return
            if failures >= CIRCUIT_THRESHOLD:
                until = now + backoff(failures - CIRCUIT_THRESHOLD + 1, base=60.0)
                self._open_until[domain] = until
                await conn.execute(
                    sa.update(server_health).where(server_health.c.domain == domain).values(open_until=until)
                )
                log.warning("circuit open for %s until %s after %d failures", domain, until, failures)
