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

from pipedesk_common.db import connect_raw
from timeline_service.projection import CHANGES_CHANNEL

log = logging.getLogger(__name__)

RecordKey = tuple[str, str, str]  # (org_id, record_type, record_id)


class ChangeListener:
    def __init__(self, database_url: str, *, reconnect_delay: float = 1.0) -> None:
        self.database_url = database_url
        self.reconnect_delay = reconnect_delay
        self._subscribers: dict[RecordKey, set[asyncio.Event]] = {}
        self.connected = asyncio.Event()

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
        """Listen until cancelled, reconnecting after a lost connection."""
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await connect_raw(self.database_url)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await connection.add_listener(CHANGES_CHANNEL, self._on_notification)
                self.connected.set()
                self._wake_all()  # whatever happened while we were not listening
                while not lost.is_set() and not connection.is_closed():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(5):
                            await lost.wait()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("change listener lost the database: %r; reconnecting", exc)
            finally:
                self.connected.clear()
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=2)
            await asyncio.sleep(self.reconnect_delay)


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
