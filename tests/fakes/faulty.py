"""A misbehaving remote inbox on a real loopback socket, for faults only a socket can show.

``FaultyServer`` listens on 127.0.0.1 and treats every request one way: ``reset`` reads
the request and drops the connection with a TCP reset; ``drip`` answers the status line
at once and then the headers a byte at a time, for an hour (each byte arrives well
within a read timeout, so only an overall deadline ends it); ``drip-body`` sends whole
headers (202, a long ``Content-Length``) and then the body a byte at a time; ``hang``
reads the request and never answers; ``slow`` answers 202 after ``delay`` seconds;
``status`` answers ``status`` at once, with ``headers``. The behaviour can be changed
between requests (a server that comes back). Every request that arrived whole is kept
in ``requests``. Written by hand: no server library misbehaves on purpose.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from types import TracebackType


class FaultyServer:
    """A loopback HTTP/1.1 server that fails in one chosen way (see the module docstring)."""

    def __init__(
        self, behaviour: str = "status", *, status: int = 202, headers: dict[str, str] | None = None, delay: float = 0.0
    ) -> None:
        self.behaviour = behaviour
        self.status = status
        self.headers = headers or {}
        self.delay = delay
        self.requests: list[bytes] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FaultyServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):  # connections still hanging or dripping
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def authority(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    @property
    def inbox(self) -> str:
        return f"http://{self.authority}/inbox"

    async def _read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        self.requests.append(body)
        return body

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._read_request(reader) is not None:
                if not await self._answer(writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the server is closing
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter) -> bool:
        """Answer one request as the current behaviour says; False when the connection is done."""
        if self.behaviour == "reset":
            sock = writer.get_extra_info("socket")
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        if self.behaviour in ("drip", "drip-body"):
            if self.behaviour == "drip":
                writer.write(b"HTTP/1.1 202 Accepted\r\n")  # then a header name that never ends
            else:
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 1000000\r\n\r\n")
            started = time.monotonic()
            while time.monotonic() - started < 3600:
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.05)
        if self.behaviour == "slow":
            await asyncio.sleep(self.delay)
            return await self._status(writer, 202, {})
        return await self._status(writer, self.status, self.headers)

    @staticmethod
    async def _status(writer: asyncio.StreamWriter, status: int, headers: dict[str, str]) -> bool:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(f"HTTP/1.1 {status} Whatever\r\n{lines}Content-Length: 0\r\n\r\n".encode())
        await writer.drain()
        return True
