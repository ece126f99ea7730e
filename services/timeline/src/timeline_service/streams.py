"""Live timelines: one PostgreSQL LISTEN connection per process fans change notifications out to
the event streams it serves, so a change committed by any timeline process reaches every stream.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import asyncpg

from pipedesk_common.clock import Clock
from pipedesk_common.db import DATABASE_ERRORS, connect_raw
from pipedesk_common.reconnect import Backoff, Connected, first_of, reconnecting
from timeline_service.projection import CHANGES_CHANNEL

log = logging.getLogger(__name__)

RecordKey = tuple[str, str, str]  # (org_id, record_type, record_id)


class ChangeListener:
    def __init__(self, database_url: str, *, clock: Clock, backoff: Backoff) -> None:
        self.database_url = database_url
        self.clock = clock
        self.backoff = backoff
        self._subscribers: dict[RecordKey, set[asyncio.Event]] = {}
        self.connected = asyncio.Event()
        self._stopping = asyncio.Event()

    @contextlib.contextmanager
    def subscribe(self, key: RecordKey) -> Iterator[asyncio.Event]:
        """An event set whenever the record may have changed (and after a reconnect, when
        notifications may have been missed)."""
        wake = asyncio.Event()
        self._subscribers.setdefault(key, set()).add(wake)
        try:
            yield wake
        finally:
            waiting = self._subscribers.get(key)
            if waiting is not None:
                waiting.discard(wake)
                if not waiting:
                    del self._subscribers[key]

    def _wake_all(self) -> None:
        for waiting in self._subscribers.values():
            for wake in waiting:
                wake.set()

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, payload: object) -> None:
        try:
            org_id, record_type, record_id, _version = json.loads(str(payload))
        except (ValueError, TypeError):
            log.warning("ignoring a malformed change notification")
            return
        for wake in self._subscribers.get((org_id, record_type, record_id), ()):
            wake.set()

    async def run(self) -> None:
        """Listen until stopped or cancelled, reconnecting after a lost connection."""
        self._stopping.clear()
        await reconnecting(
            "timeline change listener",
            self._listen,
            clock=self.clock,
            stopping=self._stopping,
            backoff=self.backoff,
            quiet=DATABASE_ERRORS,
        )

    def stop(self) -> None:
        self._stopping.set()

    async def _listen(self, connected: Connected) -> None:
        connection = await connect_raw(self.database_url)
        try:
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(CHANGES_CHANNEL, self._on_notification)
            connected()
            self.connected.set()
            self._wake_all()  # whatever happened while we were not listening
            await first_of(_until_closed(connection, lost), self._stopping.wait())
        finally:
            self.connected.clear()
            if not connection.is_closed():
                with contextlib.suppress(Exception):
                    await connection.close(timeout=2)


async def _until_closed(connection: asyncpg.Connection, lost: asyncio.Event) -> None:
    while not lost.is_set() and not connection.is_closed():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await lost.wait()


def server_sent_event(data: str, *, event: str, event_id: int | None = None) -> bytes:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return ("\n".join(lines) + "\n\n").encode()


async def wait_for(wake: asyncio.Event, seconds: float) -> bool:
    """True when woken, False after ``seconds`` of quiet."""
    try:
        async with asyncio.timeout(seconds):
            await wake.wait()
    except TimeoutError:
        return False
    return True
