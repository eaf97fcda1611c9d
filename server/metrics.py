"""Per-process counters for ``/metrics``: one-line calls from the code they count.

What happens in one process and nowhere else (an inbox request answered, a signature
checked, a fetch, a send and its answer, how long a fan-out took) is counted here with
prometheus-client. What the database keeps (queue depths, processing lag, delivery rows,
open circuit breakers, reports) is not: ``server.scrape`` reads it at scrape time, so it
is right however many processes there are.

Several processes (``kith serve --workers N``, ``kith worker``s beside it): prometheus-client's
multiprocess mode. When ``PROMETHEUS_MULTIPROC_DIR`` names a directory shared by every Kith
process on the host, each process writes its counters to its own files there and the
scrape adds them up (``server.scrape``), so any web process answers for all of them and a
counter survives the restart of the process that counted. Without it (one ``kith serve``
with its in-process worker, the common case) the counters live in this process's memory.
Multiprocess mode rather than a ``process`` label: a ``kith worker`` has no HTTP port to
be scraped on, and per-process series would come and go with every restart.

No I/O at import: every metric has labels, so no value (no file, in multiprocess mode)
exists until something is counted.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram

from server.errors import KithError

#: Counters of this process, when not in multiprocess mode (then the files are read instead).
REGISTRY = CollectorRegistry(auto_describe=True)

INBOX = Counter(
    "kith_inbox_requests",
    "Activities POSTed to an inbox, by outcome (accepted, duplicate, ignored, refused) and refusal reason.",
    ["outcome", "reason"],
    registry=REGISTRY,
)
SIGNATURES = Counter(
    "kith_signatures",
    "HTTP signatures checked at the inbox, by result (verified, failed).",
    ["result"],
    registry=REGISTRY,
)
FETCHES = Counter(
    "kith_fetches",
    "GETs of remote JSON (actors, keys, objects), by outcome (ok, not_found, gone, refused, too_large, failed).",
    ["outcome"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "kith_deliveries",
    "Activities sent to remote inboxes (fan-outs and delivery rows), by outcome (done, queued for a retry, "
    "dead, gone) and the answer's status class (2xx, 3xx, 4xx, 5xx, or network for no answer).",
    ["outcome", "status_class"],
    registry=REGISTRY,
)
FANOUT_SECONDS = Histogram(
    "kith_fanout_duration_seconds",
    "Time one fan-out job took to send a group activity to its member servers, by outcome.",
    ["outcome"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
    registry=REGISTRY,
)


def multiprocess_dir() -> str | None:
    """The shared directory of multiprocess mode, or None (counters in this process only)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


# ----------------------------------------------------------------------------- inbox


def inbox(outcome: str) -> None:
    """Count an activity the inbox answered 202: ``accepted`` (stored), ``duplicate`` or ``ignored``."""
    INBOX.labels(outcome, "").inc()


def refusal_reason(exc: KithError) -> str:
    """A short, bounded label for why the inbox refused a request (the message itself may hold URLs)."""
    text = exc.reason
    known = (
        ("missing signature", "unsigned"),
        ("signature", "bad_signature"),
        ("could not fetch the signing key", "key_unavailable"),
        ("the signing key does not belong", "key_not_actors"),
        ("the domain is blocked", "domain_blocked"),
        ("the account is suspended", "account_suspended"),
    )
    for prefix, label in known:
        if text.startswith(prefix):
            return label
    by_status = {400: "malformed", 404: "unknown_target", 408: "timeout", 413: "too_large"}
    return by_status.get(exc.status, f"http_{exc.status}")


class InboxRefusals:
    """``with metrics.counting_refusals():`` counts a ``KithError`` leaving the block as a refusal, and re-raises it."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, KithError):
            INBOX.labels("refused", refusal_reason(exc)).inc()
        return False


def counting_refusals() -> InboxRefusals:
    """A context manager counting the inbox's refusals (see ``InboxRefusals``)."""
    return InboxRefusals()


def signature(verified: bool) -> None:
    """Count one signature check at the inbox."""
    SIGNATURES.labels("verified" if verified else "failed").inc()


# ----------------------------------------------------------------------------- federation


_FETCH_FAILURES = {
    "FetchNotFound": "not_found",
    "FetchGone": "gone",
    "FetchRefused": "refused",
    "FetchTooLarge": "too_large",
}

Fetched = TypeVar("Fetched")


def counted_fetch(get: Callable[..., Awaitable[Fetched]]) -> Callable[..., Awaitable[Fetched]]:
    """Decorate a remote GET so each call is counted: ``ok``, or its ``FetchError`` kind
    (``FetchNotFound`` -> ``not_found``; anything else ``failed``). Named by class, so this
    module needs nothing from the protocol tier above it."""

    @functools.wraps(get)
    async def counted(*args: Any, **kwargs: Any) -> Fetched:
        try:
            result = await get(*args, **kwargs)
        except Exception as exc:
            FETCHES.labels(_FETCH_FAILURES.get(type(exc).__name__, "failed")).inc()
            raise
        FETCHES.labels("ok").inc()
        return result

    return counted


def status_class(status: int | None) -> str:
    """``2xx`` ... ``5xx`` for an HTTP status, ``network`` when no answer came."""
    return "network" if status is None else f"{status // 100}xx"


def delivery(outcome: str, status: int | None) -> None:
    """Count one send to a remote inbox by its outcome's state and the answer's status class."""
    DELIVERIES.labels(outcome, status_class(status)).inc()


# ----------------------------------------------------------------------------- fan-outs


class _HasState(Protocol):
    state: str


Result = TypeVar("Result", bound=_HasState)


def timed_fanout(run: Callable[..., Awaitable[Result]]) -> Callable[..., Awaitable[Result]]:
    """Decorate a fan-out job (``FanoutSender.__call__``) so each run's duration is observed by outcome."""

    @functools.wraps(run)
    async def timed(*args: Any, **kwargs: Any) -> Result:
        start = time.perf_counter()
        outcome = "error"
        try:
            result = await run(*args, **kwargs)
            outcome = result.state
            return result
        finally:
            FANOUT_SECONDS.labels(outcome).observe(time.perf_counter() - start)

    return timed
