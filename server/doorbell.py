"""The doorbell: a Kith process tells the others on the same PostgreSQL database that work was queued.

``kith serve --no-worker`` stores an activity; a ``kith worker`` in another process would
otherwise find it only at its next idle look, up to a second later (``Worker.idle_sleep``).
The process that queued work rings (``NOTIFY kith_work``, with which kinds of work in the
payload); every worker process listens on a connection of its own and wakes its idle loops
of those kinds at once. Rings are coalesced: at most one ``NOTIFY`` in flight per process,
then a pause of ``gap``, so an inbox taking thousands of activities a second sends at most
about a hundred. A lost ring costs only the wait for the next look, never work: the rows
are the truth, the bell is only news.

On SQLite it does nothing: one process writes at a time and there is nothing to listen
with; the in-process wake and the idle look remain.

Hand-written, small: asyncpg does the protocol (``add_listener``); this is the coalescing,
the payload and the reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import uuid
from collections.abc import Callable, Iterable

import asyncpg

from server.db import Database

log = logging.getLogger("kith.doorbell")

CHANNEL = "kith_work"
EVERY = "*"  # the payload's kinds when the ringer did not say which: wake every loop
_RECONNECT_SECONDS = (1.0, 2.0, 5.0, 10.0)  # after a lost listening connection, then 10 s each time


def payload(token: str, kinds: Iterable[str]) -> str:
    """What a ring carries: the ringing process's token (its own rings are no news to it) and the kinds."""
    names = sorted(set(kinds))
    return token + ":" + (EVERY if EVERY in names else ",".join(names))


def parse_payload(text: str) -> tuple[str, frozenset[str] | None]:
    """The token and the kinds of a ring's payload; kinds None: every kind (also for a payload we
    cannot read: waking too many loops costs a look, waking too few a second)."""
    token, sep, kinds = text.partition(":")
    if not sep or not kinds or kinds == EVERY:
        return token, None
    return token, frozenset(kinds.split(","))


class Doorbell:
    """Rings other Kith processes (``ring``) and hears them (``listen``); one per process."""

    def __init__(self, db: Database, *, gap: float = 0.01) -> None:
        self.db = db
        self.gap = gap
        self.token = uuid.uuid4().hex[:12]
        self.rings_sent = 0  # NOTIFYs sent, for tests and benchmarks
        self._pending: set[str] = set()
        self._sender: asyncio.Task[None] | None = None

    def set(self, kind: str | None = None) -> None:
        """The ``Waker`` interface: ring (``kind``: the job kind queued, else every kind)."""
        self.ring(kind)

    def ring(self, kind: str | None = None) -> None:
        """Tell the other processes that work of ``kind`` (None: of any kind) was queued; returns at once."""
        if self.db.dialect != "postgresql":
            return
        self._pending.add(kind or EVERY)
        if self._sender is None or self._sender.done():
            # A context of its own: a ring from inside a worker batch must not carry the batch along.
            self._sender = asyncio.get_running_loop().create_task(self._send(), context=contextvars.Context())

    async def _send(self) -> None:
        while self._pending:
            kinds, self._pending = self._pending, set()
            try:
                pool = await self.db.raw_pool()
                assert pool is not None
                await pool.execute("SELECT pg_notify($1, $2)", CHANNEL, payload(self.token, kinds))
                self.rings_sent += 1
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.debug("doorbell: ring not sent (%s); the workers' next look finds the work", exc)
            await asyncio.sleep(self.gap)

    async def listen(self, heard: Callable[[frozenset[str] | None], None], stop: asyncio.Event) -> None:
        """Until ``stop``: call ``heard(kinds)`` for each ring of another process (kinds None: every kind).

        Listens on a connection of its own (LISTEN is session state, so not a pooled one),
        reconnecting when it is lost; after each (re)connection ``heard(None)`` once, for what
        was rung while nobody listened.
        """
        if self.db.dialect != "postgresql":
            await stop.wait()
            return
        failures = 0
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.db.libpq_url())
                lost = asyncio.Event()

                def on_ring(_conn: object, _pid: int, _channel: str, text: str) -> None:
                    token, kinds = parse_payload(text)
                    if token != self.token:
                        heard(kinds)

                await conn.add_listener(CHANNEL, on_ring)
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                failures = 0
                heard(None)
                await _first(stop.wait(), lost.wait())
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                delay = _RECONNECT_SECONDS[min(failures, len(_RECONNECT_SECONDS) - 1)]
                failures += 1
                log.warning("doorbell: not listening (%s); again in %.0f s, idle looks meanwhile", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):  # closing a broken connection may fail too
                        await asyncio.wait_for(conn.close(), 5)

    async def close(self) -> None:
        """Let a ring on its way finish (bounded), before the database's pools close."""
        if self._sender is not None and not self._sender.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._sender, 2)


async def _first(*waits: object) -> None:
    """Return when the first of ``waits`` (coroutines) finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
