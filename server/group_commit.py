"""Group commit: one writer task commits every item waiting at that moment in one transaction.

SQLite allows one writer at a time, and a write transaction per request made many
connections queue for its lock (its busy handler sleeps between retries: the inbox's
p99 was ~1.8 s at 50 requests in flight). Here callers hand their item to
:meth:`GroupCommit.submit` and wait; a single task takes everything queued (up to
``max_batch``), writes it in one transaction, and answers each caller only after the
COMMIT returned, each with its own result. Under light load a batch is one item and
nothing waits longer than its own transaction; under heavy load the items that arrive
while one batch commits form the next.

The ``write`` function decides what an item's result is: it returns one entry per item,
a value or an exception for that item alone (a duplicate, a bad row), and raises only
when the whole transaction must not commit; then every caller of the batch gets
:class:`~server.errors.ServiceUnavailable` and nothing of it is stored.

Written by hand: no maintained library does group commit over an asyncio
SQLAlchemy connection; it is one queue and one task.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from typing import Generic, TypeVar

from server.errors import ServiceUnavailable

log = logging.getLogger("kith.db")

Item = TypeVar("Item")
Result = TypeVar("Result")
Conn = TypeVar("Conn")

Write = Callable[[Conn, list[Item]], Awaitable[Sequence[Result | BaseException]]]
_CLOSE_SECONDS = 30.0


class GroupCommit(Generic[Conn, Item, Result]):
    """Commits submitted items in batches, one transaction (from ``transaction()``) per batch."""

    def __init__(
        self,
        transaction: Callable[[], AbstractAsyncContextManager[Conn]],
        write: Write[Conn, Item, Result],
        *,
        max_batch: int = 200,
        name: str = "group commit",
    ) -> None:
        self._transaction = transaction
        self._write = write
        self.max_batch = max_batch
        self.name = name
        self._queue: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._inflight: list[tuple[Item, asyncio.Future[Result]]] = []
        self.batches = 0  # transactions committed or tried, for tests and benchmarks
        self.largest = 0

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` and wait until the transaction holding it committed; its own result.

        Raises the item's own exception when ``write`` gave one, or ServiceUnavailable when
        its batch could not commit (then the item was not stored).
        """
        if self._closing:
            raise ServiceUnavailable("the server is shutting down")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            # A fresh context: the writer must never inherit a caller's ContextVars (a worker
            # batch's connection, db._BATCH), or its commits would join that transaction.
            self._task = asyncio.create_task(self._run(), name=self.name, context=contextvars.Context())
        self._wakeup.set()
        # Not shielded: a caller that goes away before its batch is taken is skipped; once
        # taken, its item commits all the same (a 202 never sent costs only a retried duplicate).
        return await future

    async def close(self) -> None:
        """Commit what is queued, then stop the writer task (cancelled after 30 s: its callers get 503)."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            self._wakeup.set()
            try:
                async with asyncio.timeout(_CLOSE_SECONDS):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        for _, future in [*self._inflight, *self._queue]:
            if not future.done():
                future.set_exception(ServiceUnavailable("the server is shutting down"))
        self._inflight = []
        self._queue.clear()

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        """Up to ``max_batch`` queued items whose callers still wait."""
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        while self._queue and len(batch) < self.max_batch:
            entry = self._queue.popleft()
            if not entry[1].done():  # done here means its caller was cancelled
                batch.append(entry)
        return batch

    async def _run(self) -> None:
        while True:
            while batch := self._take():
                self._inflight = batch
                await self._commit(batch)
                self._inflight = []
            if self._closing:
                return
            await self._wakeup.wait()
            self._wakeup.clear()

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        items = [item for item, _ in batch]
        self.batches += 1
        self.largest = max(self.largest, len(items))
        try:
            async with self._transaction() as conn:
                results = await self._write(conn, items)
                if len(results) != len(items):
                    raise RuntimeError(f"{self.name}: {len(results)} results for {len(items)} items")
        except Exception as exc:
            # Rolled back: nothing of the batch is stored, and every caller hears so.
            log.warning("%s: a batch of %d rolled back: %s", self.name, len(items), _first_line(exc))
            for _, future in batch:
                if not future.done():
                    future.set_exception(ServiceUnavailable("could not store the activity, try again later"))
            return
        # Only now, after COMMIT returned, does any caller learn its result.
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


__all__ = ["GroupCommit", "Write"]
