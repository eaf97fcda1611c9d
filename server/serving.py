"""How ``kith serve`` runs uvicorn: timeouts and a connection cap against slow and greedy clients.

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``) but never one that
connects and then sends its request line and headers a byte at a time (slowloris): each
such connection holds a socket and a parser for as long as the client likes. The
protocol below gives every request ``header_timeout`` seconds from its first byte (or
from the connection's opening) to finish its headers, then closes the connection. Bodies
have their own deadline where they are read (``server.inbox.endpoint``), and
``limit_concurrency`` caps how many connections and requests are served at once (beyond
it uvicorn answers 503).

Hand-written because uvicorn has no header deadline of its own; it is a dozen lines on
its protocol class.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass(frozen=True)
class Limits:
    """The serving limits; the defaults are documented in the README."""

    header_timeout: float = 10.0  # seconds from a request's first byte to the end of its headers
    keep_alive: int = 5  # seconds an idle keep-alive connection stays open
    max_connections: int = 1000  # connections and requests at once; beyond, 503


# How ``kith serve`` hands the deadline to its web processes (uvicorn starts them afresh and
# builds the protocol itself, so a constructor argument cannot reach it).
HEADER_TIMEOUT_ENV = "KITH_HEADER_TIMEOUT"


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request headers take too long."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = float(os.environ.get(HEADER_TIMEOUT_ENV) or Limits.header_timeout)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_header_deadline()  # a further request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _start_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(self._header_timeout, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def uvicorn_options(limits: Limits) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run``/``uvicorn.Config`` that apply ``limits``.

    Sets this process's ``KITH_HEADER_TIMEOUT``, which the web processes it starts inherit.
    """
    os.environ[HEADER_TIMEOUT_ENV] = str(limits.header_timeout)
    return {
        "http": HeaderDeadlineProtocol,
        "timeout_keep_alive": limits.keep_alive,
        "limit_concurrency": limits.max_connections,
    }
