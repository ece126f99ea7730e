"""Idempotent event consumers: at-least-once delivery, exactly-once effect.

For each message, in ONE database transaction: the inbox row (a duplicate delivery stops here),
the version check (an older version of an entity than the one applied is ignored), and the
handler's effect. The message is acked only after that transaction commits. A failing handler is
retried with backoff through retry queues; after ``max_attempts`` — or ``x-delivery-limit``
deliveries, if the process keeps dying — the message is dead-lettered to ``<queue>.dlq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, TypeVar

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from opentelemetry import propagate, trace
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pipedesk_common.clock import Clock
from pipedesk_common.events import (
    Event,
    EventData,
    MalformedEvent,
    UnknownEventType,
    VersionedData,
    decode_event,
    event_type_of,
)
from pipedesk_common.messaging import Topology, closed, connect, raise_if_cancelling

log = logging.getLogger(__name__)
tracer = trace.get_tracer("pipedesk.consumer")

ATTEMPT_HEADER: Final = "x-pipedesk-attempt"
PRUNE_EVERY_BEATS: Final = 720  # beats of 5 s: hourly

EVENTS_HANDLED = Counter(
    "pipedesk_events_handled_total", "Events handled, by outcome", ["queue", "type", "outcome"]
)
EVENTS_RETRIED = Counter("pipedesk_events_retried_total", "Events sent back for a retry", ["queue"])
EVENTS_DEAD_LETTERED = Counter(
    "pipedesk_events_dead_lettered_total", "Events sent to the dead-letter queue", ["queue"]
)
EVENTS_UNKNOWN = Counter(
    "pipedesk_events_unknown_total", "Events of types this consumer has no handler for", ["queue"]
)
CONSUMER_LAG = Histogram(
    "pipedesk_consumer_lag_seconds",
    "From an event's time to its handling",
    ["queue"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
QUEUE_DEPTH = Gauge("pipedesk_consumer_queue_depth", "Messages waiting in the queue", ["queue"])

D = TypeVar("D", bound=EventData)
Handler = Callable[[AsyncSession, Event[Any]], Awaitable[None]]


def attempts_of(headers: Mapping[str, Any] | None) -> int:
    """How many times our handlers already failed on this message."""
    value = (headers or {}).get(ATTEMPT_HEADER, 0)
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0


@dataclass(frozen=True)
class InboxTables:
    inbox: Table
    versions: Table


def inbox_tables(metadata: MetaData) -> InboxTables:
    """The inbox and entity-version tables of a consuming service, in its schema."""
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(200), nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id"),
    )
    versions = Table(
        "entity_versions",
        metadata,
        Column("consumer", String(200), nullable=False),
        Column("entity", String(200), nullable=False),
        Column("key", String(300), nullable=False),
        Column("version", Integer, nullable=False),
        PrimaryKeyConstraint("consumer", "entity", "key"),
    )
    return InboxTables(inbox=inbox, versions=versions)


@dataclass(frozen=True)
class ConsumerSettings:
    prefetch: int = 100
    max_attempts: int = 5
    delivery_limit: int = 10
    retry_delays_ms: Sequence[int] = (1_000, 5_000, 30_000, 120_000)
    reconnect_delay: float = 1.0
    heartbeat: int = 10
    inbox_retention: timedelta = timedelta(days=7)

    def delay_for(self, attempt: int) -> int:
        """The retry delay after the ``attempt``-th failure (1-based), capped at the last tier."""
        return self.retry_delays_ms[min(attempt, len(self.retry_delays_ms)) - 1]


@dataclass
class Consumer:
    """One queue's handlers. ``queue`` is named ``<service>.<purpose>``, e.g. ``timeline.items``."""

    queue: str
    tables: InboxTables
    settings: ConsumerSettings = field(default_factory=ConsumerSettings)
    _handlers: dict[str, Handler] = field(default_factory=dict)
    _unregistered: tuple[type[EventData], Handler] | None = None
    _in_flight: set[asyncio.Task[Any]] = field(default_factory=set)
    _accepting: bool = True
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def on(
        self, model: type[D]
    ) -> Callable[
        [Callable[[AsyncSession, Event[D]], Awaitable[None]]],
        Callable[[AsyncSession, Event[D]], Awaitable[None]],
    ]:
        """Register the handler of one event type (its contract model)."""

        def register(
            handler: Callable[[AsyncSession, Event[D]], Awaitable[None]],
        ) -> Callable[[AsyncSession, Event[D]], Awaitable[None]]:
            name = event_type_of(model).name
            if name in self._handlers:
                raise ValueError(f"{self.queue} already handles {name}")
            self._handlers[name] = handler
            return handler

        return register

    def on_unregistered(
        self, model: type[D]
    ) -> Callable[
        [Callable[[AsyncSession, Event[D]], Awaitable[None]]],
        Callable[[AsyncSession, Event[D]], Awaitable[None]],
    ]:
        """Handle event types this process has no contract for, read through ``model`` (see
        ``decode_event``). The queue then receives every event of the exchange; types without a
        handler are acknowledged and counted in ``pipedesk_events_unknown_total``."""

        def register(
            handler: Callable[[AsyncSession, Event[D]], Awaitable[None]],
        ) -> Callable[[AsyncSession, Event[D]], Awaitable[None]]:
            if self._unregistered is not None:
                raise ValueError(f"{self.queue} already handles unregistered types")
            self._unregistered = (model, handler)
            return handler

        return register

    @property
    def routing_keys(self) -> list[str]:
        from pipedesk_common.events import registered_types

        if self._unregistered is not None:
            return ["#"]
        types = registered_types()
        return sorted({types[name].routing_key for name in self._handlers})

    def handler_for(self, event: Event[Any]) -> Handler | None:
        handler = self._handlers.get(event.type.name)
        if handler is None and self._unregistered is not None:
            model, fallback = self._unregistered
            if event.type.model is model:
                return fallback
        return handler

    async def run(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        topology: Topology,
        amqp_url: str,
        clock: Clock,
        ready: asyncio.Event | None = None,
    ) -> None:
        """Consume until cancelled; a lost broker link is re-established and consuming resumes."""
        runner = _QueueRunner(self, sessionmaker, topology, clock)
        self._stopping = asyncio.Event()
        while not self._stopping.is_set():
            try:
                await runner.consume_until_closed(amqp_url, ready, self._stopping)
            except asyncio.CancelledError:
                await self.drain()
                raise
            except (aio_pika.exceptions.AMQPException, OSError, ConnectionError) as exc:
                raise_if_cancelling()
                log.warning(
                    "consumer lost the broker; reconnecting",
                    extra={"queue": self.queue, "error": repr(exc)},
                )
            except Exception:
                raise_if_cancelling()
                log.exception("consumer failed; reconnecting", extra={"queue": self.queue})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.reconnect_delay):
                    await self._stopping.wait()

    def stop(self) -> None:
        """Stop taking messages; ``run`` returns once the ones in hand are acked."""
        self._accepting = False
        self._stopping.set()

    async def prune_inbox(
        self, sessionmaker: async_sessionmaker[AsyncSession], retention: timedelta | None = None
    ) -> int:
        """Forget processed event ids older than the retention period (far longer than any
        redelivery takes); entity versions are kept, so even then an old version stays ignored."""
        inbox = self.tables.inbox
        keep = retention if retention is not None else self.settings.inbox_retention
        async with sessionmaker() as session, session.begin():
            result = await session.execute(
                inbox.delete().where(
                    inbox.c.consumer == self.queue, inbox.c.processed_at < func.now() - keep
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def drain(self) -> None:
        """Stop taking messages and let the ones in hand finish (clean shutdown)."""
        self._accepting = False
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)


class _QueueRunner:
    def __init__(
        self,
        consumer: Consumer,
        sessionmaker: async_sessionmaker[AsyncSession],
        topology: Topology,
        clock: Clock,
    ) -> None:
        self.consumer = consumer
        self.sessionmaker = sessionmaker
        self.topology = topology
        self.clock = clock
        self.queue_name = topology.queue(consumer.queue)
        self.settings = consumer.settings

    async def consume_until_closed(
        self, amqp_url: str, ready: asyncio.Event | None, stopping: asyncio.Event
    ) -> None:
        connection = await connect(
            amqp_url, name=f"{self.consumer.queue}-consumer", heartbeat=self.settings.heartbeat
        )
        try:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=self.settings.prefetch)
            queue = await self.topology.declare_consumer_queue(
                channel,
                self.queue_name,
                routing_keys=self.consumer.routing_keys,
                delivery_limit=self.settings.delivery_limit,
                retry_delays_ms=self.settings.retry_delays_ms,
            )
            self.consumer._accepting = True

            async def on_message(message: AbstractIncomingMessage) -> None:
                await self._on_message(channel, message)

            await queue.consume(on_message)
            depth = asyncio.create_task(self._report_depth_and_prune(queue))
            if ready is not None:
                ready.set()
            try:
                lost = asyncio.create_task(closed(connection))
                stop = asyncio.create_task(stopping.wait())
                await asyncio.wait({lost, stop}, return_when=asyncio.FIRST_COMPLETED)
                lost.cancel()
                stop.cancel()
                if stopping.is_set():
                    await self.consumer.drain()
            finally:
                depth.cancel()
        finally:
            if not connection.is_closed:
                await connection.close()

    async def _report_depth_and_prune(self, queue: AbstractQueue) -> None:
        beats = 0
        while True:
            await asyncio.sleep(5)
            beats += 1
            if beats % PRUNE_EVERY_BEATS == 0:
                try:
                    await self.consumer.prune_inbox(self.sessionmaker)
                except Exception:  # pruning is housekeeping; the next round tries again
                    log.warning("inbox pruning failed", exc_info=True)
            try:
                declared = await queue.declare()
            except Exception:  # the depth gauge must never stop consuming
                log.debug("queue depth unavailable", exc_info=True)
                continue
            if declared.message_count is not None:
                QUEUE_DEPTH.labels(self.consumer.queue).set(declared.message_count)

    async def _on_message(self, channel: AbstractChannel, message: AbstractIncomingMessage) -> None:
        if not self.consumer._accepting:
            await message.nack(requeue=True)
            return
        task = asyncio.current_task()
        assert task is not None
        self.consumer._in_flight.add(task)
        try:
            await self._process(channel, message)
        finally:
            self.consumer._in_flight.discard(task)

    async def _process(self, channel: AbstractChannel, message: AbstractIncomingMessage) -> None:
        queue = self.consumer.queue
        unregistered = self.consumer._unregistered
        try:
            event = decode_event(
                message.body,
                message.content_type,
                unregistered=unregistered[0] if unregistered is not None else None,
            )
        except UnknownEventType as exc:
            EVENTS_UNKNOWN.labels(queue).inc()
            log.info("ignoring an event type without a handler", extra={"type": str(exc)})
            await message.ack()
            return
        except MalformedEvent as exc:
            log.error("dead-lettering a malformed event", extra={"queue": queue, "error": str(exc)})
            EVENTS_DEAD_LETTERED.labels(queue).inc()
            await message.reject(requeue=False)
            return
        handler = self.consumer.handler_for(event)
        if handler is None:
            EVENTS_UNKNOWN.labels(queue).inc()
            await message.ack()
            return
        parent = propagate.extract({"traceparent": event.traceparent} if event.traceparent else {})
        with tracer.start_as_current_span(
            f"consume {event.type.routing_key}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={"messaging.destination": queue, "messaging.message.id": str(event.id)},
        ):
            try:
                outcome = await self._apply(handler, event)
            except Exception as exc:
                await self._retry_or_dead_letter(channel, message, event, exc)
                return
        await message.ack()
        EVENTS_HANDLED.labels(queue, event.type.routing_key, outcome).inc()
        CONSUMER_LAG.labels(queue).observe(max((self.clock.now() - event.time).total_seconds(), 0))

    async def _apply(self, handler: Handler, event: Event[Any]) -> str:
        tables = self.consumer.tables
        async with self.sessionmaker() as session, session.begin():
            first_time = await session.scalar(
                insert(tables.inbox)
                .values(consumer=self.consumer.queue, event_id=event.id)
                .on_conflict_do_nothing()
                .returning(tables.inbox.c.event_id)
            )
            if first_time is None:
                return "duplicate"
            if isinstance(event.data, VersionedData):
                newer = await session.scalar(
                    insert(tables.versions)
                    .values(
                        consumer=self.consumer.queue,
                        entity=f"{event.type.service}.{event.type.entity}",
                        key=event.data.version_key(),
                        version=event.data.version,
                    )
                    .on_conflict_do_update(
                        index_elements=["consumer", "entity", "key"],
                        set_={"version": event.data.version},
                        where=tables.versions.c.version < event.data.version,
                    )
                    .returning(tables.versions.c.version)
                )
                if newer is None:
                    return "stale"
            await handler(session, event)
        return "applied"

    async def _retry_or_dead_letter(
        self,
        channel: AbstractChannel,
        message: AbstractIncomingMessage,
        event: Event[Any],
        error: Exception,
    ) -> None:
        queue = self.consumer.queue
        attempt = attempts_of(message.headers) + 1
        log.warning(
            "handler failed",
            extra={
                "queue": queue,
                "type": event.type.name,
                "attempt": attempt,
                "error": repr(error),
            },
        )
        if attempt >= self.settings.max_attempts:
            EVENTS_DEAD_LETTERED.labels(queue).inc()
            EVENTS_HANDLED.labels(queue, event.type.routing_key, "dead_lettered").inc()
            await message.reject(requeue=False)
            return
        delay = self.settings.delay_for(attempt)
        retry = aio_pika.Message(
            message.body,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={**(message.headers or {}), ATTEMPT_HEADER: attempt},
        )
        try:
            await channel.default_exchange.publish(
                retry, routing_key=Topology.retry_queue(self.queue_name, delay), timeout=10
            )
        except Exception:
            # Could not park it for later: let the broker redeliver (counts toward the limit).
            await message.nack(requeue=True)
            return
        EVENTS_RETRIED.labels(queue).inc()
        await message.ack()
