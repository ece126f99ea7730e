"""A lean HTTP/1.1 client for the services behind the gateway: keep-alive connections on asyncio
with httptools' parser (llhttp, the parser uvicorn serves with), one small pool per service.

It does what forwarding needs and no more: send a request whose body is already read, hand back
the status, the headers and the body as it arrives. An answer that announces a length of at most
``WHOLE_BYTES`` (nearly every API answer) is handed back once it has all arrived, as one bytes
object — a server writes the head and the body apart, and waiting for the body costs less than
passing it on in pieces; a longer or chunked one is read chunk by chunk, with reading paused while
the gateway has not passed a chunk on.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Final, cast
from urllib.parse import urlsplit

import httptools

IDLE_SECONDS: Final = 4.0  # below uvicorn's 5 s keep-alive: never reuse what it is closing
HIGH_WATER: Final = 256 * 1024  # bytes buffered before reading pauses
WHOLE_BYTES: Final = 64 * 1024  # an announced length up to this is awaited whole
_SAFE: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class UpstreamError(Exception):
    """The service could not be reached or broke the connection (502)."""


class ConnectFailed(UpstreamError):
    """No connection could be opened (502)."""


class PoolExhausted(Exception):
    """Every connection to the service stayed in use for the whole wait (503)."""


class ReadTimeout(Exception):
    """The service did not answer in time (504)."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection, carrying one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = time.monotonic()
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.head_done = False
        self.whole = False  # the body is awaited whole before the answer is handed back
        self.complete = False
        self.reusable = True
        self.failure: str | None = None
        self.got_bytes = False
        self.body_expected = True  # False for a HEAD answer, whose length announces no body
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.failure = f"malformed answer: {exc}"
            self.close()
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        if self.complete or self.failure is not None or not self.whole:
            self._wake()  # a body awaited whole wakes its reader once, when it is all there

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.failure is None:
            self.failure = "the service closed the connection"
        self._wake()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.reusable = self.parser.should_keep_alive()
        self.head_done = True
        if self.body_expected:
            length = next((v for n, v in self.headers if n == b"content-length"), None)
            self.whole = length is not None and length.isdigit() and int(length) <= WHOLE_BYTES

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        self.complete = True

    @property
    def ready(self) -> bool:
        """Whether the answer can be handed back: its head, and its body if awaited whole."""
        return self.head_done and (self.complete or not self.whole)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self, seconds: float) -> None:
        """Until more of the answer (or its end, or a failure) has arrived, for ``seconds``.

        One timer per wait, which fails the waiter itself: an answer is waited for once or twice
        per request, and a timer costs far less than a cancelling timeout scope."""
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        timer = loop.call_later(seconds, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(ReadTimeout())


class Answer:
    """A service's answer: status, headers, and the body — ``body`` if it has all arrived with
    the headers, else read through ``rest()`` (which must run to its end or ``close()``)."""

    def __init__(self, pool: UpstreamPool, connection: _Connection, head_only: bool) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self.status = connection.status
        self.headers = connection.headers
        self.body = connection.take()
        self.complete = connection.complete or head_only
        if head_only:  # a HEAD answer's Content-Length announces a body that never comes
            connection.reusable = False
        if self.complete:
            self._release()

    async def rest(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        try:
            while True:
                if connection.chunks:
                    yield connection.take()
                    continue
                if connection.complete:
                    break
                if connection.failure is not None:
                    raise UpstreamError(connection.failure)
                await connection.wait(self._pool.read_timeout)
        except BaseException:
            connection.close()
            raise
        finally:
            self._release()

    def _release(self) -> None:
        if self._connection is not None:
            self._pool.release(self._connection)
            self._connection = None

    def close(self) -> None:
        """Give up the rest of the body (the connection is not reused)."""
        if self._connection is not None:
            self._connection.close()
            self._release()


class UpstreamPool:
    """Up to ``max_connections`` keep-alive connections to one service; a request waits at most
    ``pool_timeout`` for one."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
        pool_timeout: float,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"an upstream is a plain http:// address, not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.host_header = (parts.netloc or self.host).encode()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.pool_timeout = pool_timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []

    async def _connection(self, *, fresh: bool = False) -> _Connection:
        now = time.monotonic()
        while self._idle and not fresh:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                connection._reset()
                connection.reused = True
                return connection
            connection.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(_Connection, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc!r}") from None
        return connection

    def release(self, connection: _Connection) -> None:
        if connection.complete and connection.reusable and not connection.closed:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        self._slots.release()

    async def request(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Answer:
        """Send one request; its answer once the headers have arrived."""
        if self._slots.locked():  # every connection in use: wait for one, within the limit
            try:
                async with asyncio.timeout(self.pool_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise PoolExhausted from None
        else:
            await self._slots.acquire()  # free: taken at once
        head = [method.encode(), b" ", target, b" HTTP/1.1\r\nhost: ", self.host_header]
        for name, value in headers:
            head += [b"\r\n", name, b": ", value]
        if body or method not in {"GET", "HEAD", "OPTIONS", "DELETE"}:
            head += [b"\r\ncontent-length: ", str(len(body)).encode()]
        head.append(b"\r\n\r\n")
        message = b"".join(head) + body
        connection: _Connection | None = None
        try:
            connection = await self._connection()
            while True:
                assert connection.transport is not None
                connection.body_expected = method != "HEAD"
                connection.transport.write(message)
                while not connection.ready and connection.failure is None:
                    await connection.wait(self.read_timeout)
                if connection.ready:
                    return Answer(self, connection, head_only=method == "HEAD")
                # A kept-alive connection the service closed as it was reused: a safe request
                # is sent again on a new one; any other fails rather than risk running twice.
                if not (connection.reused and not connection.got_bytes and method in _SAFE):
                    raise UpstreamError(connection.failure)
                connection.close()
                connection = await self._connection(fresh=True)
        except BaseException:
            if connection is not None:
                connection.close()
            self._slots.release()
            raise

    async def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
