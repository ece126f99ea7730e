"""A loopback TCP proxy that tests put between a process and a shared server, to simulate an
outage without touching the server: ``cut()`` drops every connection and turns new ones away
(counting them, so a test can wait until a client has tried again), ``stall()`` keeps connections
open but silent, ``hold_answers()`` lets requests through but keeps the server's answers back (a
peer that did the work and whose answer is lost on the way), ``restore()`` brings the link
back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from pipedesk_testkit.servers import port_of, reserve_port

DEFAULT_PORTS: Final = {"amqp": 5672, "postgresql": 5432}


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._socket = reserve_port()
        self.port = port_of(self._socket)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="tcp-proxy"
        )
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._answering = asyncio.Event()
        self._cut = False
        self.connections_made = 0
        self.connections_refused = 0

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())
        self._call(self._set_flowing(True))
        self._call(self._set_answering(True))

    def close(self) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        self._socket.close()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones (``connections_refused`` counts them)."""
        self._call(self._cut_off())

    def stall(self) -> None:
        """Keep connections open but forward nothing, like a hung peer."""
        self._call(self._set_flowing(False))

    def hold_answers(self) -> None:
        """Forward what clients send; hold back what the server answers until ``restore()``."""
        self._call(self._set_answering(False))

    def restore(self) -> None:
        self._call(self._set_flowing(True))
        self._call(self._set_answering(True))
        self._cut = False

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)  # type: ignore[arg-type]

    async def _set_flowing(self, flowing: bool) -> None:
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _set_answering(self, answering: bool) -> None:
        if answering:
            self._answering.set()
        else:
            self._answering.clear()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, sock=self._socket)

    async def _cut_off(self) -> None:
        self._cut = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self._cut_off()
        # What a stalled or held connection kept back goes nowhere (both ends are closed); the
        # connection's tasks end instead of being left pending when the loop stops.
        await self._set_flowing(True)
        await self._set_answering(True)
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        if self._cut:
            self.connections_refused += 1
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections_made += 1
        self._writers.update({writer, upstream_writer})

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, answers: bool
        ) -> None:
            try:
                while chunk := await source.read(65536):
                    await self._flowing.wait()
                    if answers:
                        await self._answering.wait()
                    sink.write(chunk)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(
            pump(reader, upstream_writer, answers=False),
            pump(upstream_reader, writer, answers=True),
        )
        self._writers.difference_update({writer, upstream_writer})


@contextmanager
def tcp_proxy(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_host, target_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


def server_of(url: str) -> tuple[str, int]:
    """The host and port ``url`` points at (its scheme's default port when it names none)."""
    parts = urlsplit(url)
    scheme = parts.scheme.partition("+")[0]
    return parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS[scheme]


def through(proxy: TcpProxy, url: str) -> str:
    """``url`` (a broker's or a database's) pointed at ``proxy`` instead of its server."""
    parts = urlsplit(url)
    credentials, at, _address = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{credentials}{at}127.0.0.1:{proxy.port}"))
