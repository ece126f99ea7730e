"""Taking a consumer's events off its RabbitMQ queue: at-least-once delivery, exactly-once effect.

A ``QueueRunner`` declares the consumer's queue (with its retry queues and dead-letter queue,
see ``Topology``), hands each message to ``Consumer.apply`` and acks it only after that
transaction commits. A failing handler is retried with backoff through the retry queues; after
``max_attempts`` — or ``x-delivery-limit`` deliveries, if the process keeps dying — the message is
dead-lettered to ``<queue>.dlq``. A consumer that batches (``Consumer.batch_size``) has the
messages waiting when it falls behind applied several per transaction, one batch at a time. A lost
broker link is re-established by ``reconnecting``. The runner owns its state: whether it accepts
messages, the ones in hand, whether it is stopping.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any, Final

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
)
from opentelemetry import propagate, trace
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pipedesk_common.clock import Clock
from pipedesk_common.consumer import Consumer, Outcome
from pipedesk_common.events import Event, MalformedEvent, UnknownEventType, decode_event
from pipedesk_common.messaging import (
    ATTEMPT_HEADER,
    BROKER_ERRORS,
    ERROR_HEADER,
    ERROR_HEADER_LENGTH,
    StackMismatch,
    Topology,
    attempts_of,
    closed,
    connect,
)
from pipedesk_common.observability import REQUEST_ID_ATTRIBUTE, request_id_var
from pipedesk_common.reconnect import Backoff, Connected, first_of, reconnecting

log = logging.getLogger(__name__)
tracer = trace.get_tracer("pipedesk.consumer")

UPKEEP_SECONDS: Final = 5.0  # the queue depth gauge
PRUNE_EVERY_BEATS: Final = 720  # upkeep beats: hourly

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
DEAD_LETTERS = Gauge(
    "pipedesk_consumer_dead_letters", "Messages waiting in the queue's dead-letter queue", ["queue"]
)


@dataclass(frozen=True, eq=False)
class _Delivery:
    """A message taken off the queue, the channel it came on, and the event it carries."""

    channel: AbstractChannel
    message: AbstractIncomingMessage
    event: Event[Any]


@dataclass(frozen=True)
class ConsumerSettings:
    prefetch: int = 100
    concurrency: int = 5
    # Events applied in one transaction at most, for every consumer of the process; None: each
    # consumer's own (``Consumer.batch_size``).
    batch_size: int | None = None
    max_attempts: int = 5
    delivery_limit: int = 10
    retry_delays_ms: Sequence[int] = (1_000, 5_000, 30_000, 120_000)
    backoff: Backoff = field(default_factory=Backoff)
    heartbeat: int = 10
    inbox_retention: timedelta = timedelta(days=7)

    def delay_for(self, attempt: int) -> int:
        """The retry delay after the ``attempt``-th failure (1-based), capped at the last tier."""
        return self.retry_delays_ms[min(attempt, len(self.retry_delays_ms)) - 1]


class QueueRunner:
    """Consumes one ``Consumer``'s queue until stopped; see the module docstring."""

    def __init__(
        self,
        consumer: Consumer,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        topology: Topology,
        amqp_url: str,
        clock: Clock,
        settings: ConsumerSettings | None = None,
        handling: asyncio.Semaphore | None = None,
    ) -> None:
        self.consumer = consumer
        self.sessionmaker = sessionmaker
        self.topology = topology
        self.amqp_url = amqp_url
        self.clock = clock
        self.settings = settings or ConsumerSettings()
        # Prefetched messages wait here for a slot rather than for a database connection: a
        # backlog must not starve the pool that requests and readiness checks share.
        self._handling = handling or asyncio.Semaphore(self.settings.concurrency)
        self.queue_name = topology.queue(consumer.queue)
        self.batch_size = self.settings.batch_size or consumer.batch_size
        # A batching queue applies one batch at a time: two batches in flight would take the
        # row locks of the records they share in different orders, and deadlock.
        self._batching: asyncio.Lock | None = asyncio.Lock() if self.batch_size > 1 else None
        self._accepting = False
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._waiting: deque[_Delivery] = deque()  # decoded, waiting for a slot
        self._stopping = asyncio.Event()
        self._refused: StackMismatch | None = None
        self.channel: AbstractChannel | None = None  # the one consuming now

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Consume until stopped or cancelled; ``ready`` is set once the queue is declared and
        bound. A lost broker link is re-established and consuming resumes. A queue of another
        stack is never consumed: ``run`` raises ``StackMismatch``."""
        self.consumer.freeze()
        try:
            await reconnecting(
                f"{self.consumer.queue} consumer",
                partial(self._consume_until_closed, ready),
                clock=self.clock,
                stopping=self._stopping,
                backoff=self.settings.backoff,
                quiet=BROKER_ERRORS,
            )
        except asyncio.CancelledError:
            await self.drain()
            raise
        if self._refused is not None:
            raise self._refused

    @property
    def waiting(self) -> int:
        """Messages taken off the queue and waiting for a slot (the next batch)."""
        return len(self._waiting)

    def stop(self) -> None:
        """Stop taking messages; ``run`` returns once the ones in hand are acked."""
        self._accepting = False
        self._stopping.set()

    async def drain(self) -> None:
        """Stop taking messages and let the ones in hand finish (clean shutdown)."""
        self._accepting = False
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _consume_until_closed(
        self, ready: asyncio.Event | None, connected: Connected
    ) -> None:
        connection = await connect(
            self.amqp_url, name=f"{self.consumer.queue}-consumer", heartbeat=self.settings.heartbeat
        )
        try:
            try:
                await self.topology.claim(connection, self.queue_name)
            except StackMismatch as refused:
                log.critical(str(refused), extra={"queue": self.consumer.queue})
                self._refused = refused
                self._stopping.set()
                return
            channel = await connection.channel(publisher_confirms=True)
            self.channel = channel
            await channel.set_qos(prefetch_count=self.settings.prefetch)
            queue = await self.topology.declare_consumer_queue(
                channel,
                self.queue_name,
                routing_keys=self.consumer.routing_keys,
                delivery_limit=self.settings.delivery_limit,
                retry_delays_ms=self.settings.retry_delays_ms,
            )
            self._accepting = not self._stopping.is_set()
            await queue.consume(partial(self._on_message, channel))
            connected()
            if ready is not None:
                ready.set()
            upkeep = asyncio.create_task(self._upkeep(connection))
            try:
                # A channel the broker closed (a channel error) delivers nothing more while
                # its connection stays up: either one closing is a lost link.
                await first_of(closed(connection), closed(channel), self._stopping.wait())
                if self._stopping.is_set():
                    await self.drain()
            finally:
                upkeep.cancel()
        finally:
            if not connection.is_closed:
                await connection.close()

    async def _upkeep(self, connection: AbstractConnection) -> None:
        beats = 0
        # The depth checks declare passively on a channel of their own: a queue that is gone
        # (a dead-letter queue expired on a short-lived stack) makes the broker close the
        # channel it was asked on, which must never be the consuming one.
        probe: AbstractChannel | None = None
        while True:
            await asyncio.sleep(UPKEEP_SECONDS)
            beats += 1
            if beats % PRUNE_EVERY_BEATS == 0:
                try:
                    await self.consumer.prune_inbox(
                        self.sessionmaker, self.settings.inbox_retention
                    )
                except Exception:  # pruning is housekeeping; the next round tries again
                    log.warning("inbox pruning failed", exc_info=True)
            try:
                if probe is None or probe.is_closed:
                    probe = await connection.channel()
                declared = await (
                    await probe.declare_queue(self.queue_name, passive=True)
                ).declare()
                dead = await probe.declare_queue(
                    Topology.dead_letter_queue(self.queue_name), passive=True
                )
                dead_letters = await dead.declare()
            except Exception:  # the depth gauges must never stop consuming
                log.debug("queue depth unavailable", exc_info=True)
                continue
            if declared.message_count is not None:
                QUEUE_DEPTH.labels(self.consumer.queue).set(declared.message_count)
            if dead_letters.message_count is not None:
                DEAD_LETTERS.labels(self.consumer.queue).set(dead_letters.message_count)

    async def _on_message(self, channel: AbstractChannel, message: AbstractIncomingMessage) -> None:
        if not self._accepting:
            await message.nack(requeue=True)
            return
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            delivery = await self._decode(channel, message)
            if delivery is None:
                return
            self._waiting.append(delivery)
            try:
                async with self._turn(), self._handling:
                    batch = self._take_batch(channel)
                    if batch:
                        await self._process(channel, batch)
            finally:
                # A task stopped before its message was taken (cancelled with its channel, or
                # failed) leaves nothing behind for another to take: the broker redelivers it.
                if delivery in self._waiting:
                    self._waiting.remove(delivery)
        finally:
            self._in_flight.discard(task)

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """This task's turn to apply a batch: at once for a queue applying one event per
        transaction, after the batch in flight for a batching one."""
        if self._batching is None:
            yield
            return
        async with self._batching:
            yield

    def _take_batch(self, channel: AbstractChannel) -> list[_Delivery]:
        """Every message waiting by now, up to a batch: one at a time when the consumer keeps
        up, in batches when it falls behind (a message may be in another task's batch; that
        task is in flight until then). Messages of a channel that closed are dropped, never
        applied: they cannot be acknowledged, and the broker delivers them again."""
        batch: list[_Delivery] = []
        kept: deque[_Delivery] = deque()
        for delivery in self._waiting:
            if delivery.channel.is_closed:
                continue
            if delivery.channel is channel and len(batch) < self.batch_size:
                batch.append(delivery)
            else:  # another channel's (the one after a reconnect): its own tasks take it
                kept.append(delivery)
        self._waiting = kept
        return batch

    async def _decode(
        self, channel: AbstractChannel, message: AbstractIncomingMessage
    ) -> _Delivery | None:
        """The message's event, or None once a message that has none to apply is settled."""
        queue = self.consumer.queue
        try:
            event = decode_event(
                message.body, message.content_type, unregistered=self.consumer.unregistered_model
            )
        except UnknownEventType as exc:
            EVENTS_UNKNOWN.labels(queue).inc()
            log.info("ignoring an event type without a handler", extra={"type": str(exc)})
            await message.ack()
            return None
        except MalformedEvent as exc:
            log.error("dead-lettering a malformed event", extra={"queue": queue, "error": str(exc)})
            EVENTS_DEAD_LETTERED.labels(queue).inc()
            await message.reject(requeue=False)
            return None
        if not self.consumer.handles(event):
            EVENTS_UNKNOWN.labels(queue).inc()
            await message.ack()
            return None
        return _Delivery(channel, message, event)

    @contextmanager
    def _span(self, delivery: _Delivery) -> Iterator[trace.Span]:
        """The consumer's span for one event, following the relay's span (from the message's
        headers; else the change's, from the event), with the event's request id in context."""
        message, event = delivery.message, delivery.event
        headers = message.headers or {}
        carrier = {
            name: str(headers[name]) for name in ("traceparent", "tracestate") if name in headers
        }
        if "traceparent" not in carrier and event.traceparent:
            carrier = {"traceparent": event.traceparent}
        request = request_id_var.set(event.request_id)
        try:
            with tracer.start_as_current_span(
                f"consume {event.type.routing_key}",
                context=propagate.extract(carrier),
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.destination": self.consumer.queue,
                    "messaging.message.id": str(event.id),
                    **({REQUEST_ID_ATTRIBUTE: event.request_id} if event.request_id else {}),
                },
            ) as span:
                yield span
        finally:
            request_id_var.reset(request)

    async def _process(self, channel: AbstractChannel, batch: list[_Delivery]) -> None:
        """Apply ``batch`` in one transaction and ack each message once it committed; a message
        whose handler failed is retried or dead-lettered alone. If the transaction itself fails,
        its messages are applied again one by one, each in a transaction of its own."""
        if len(batch) == 1:
            await self._process_one(channel, batch[0])
            return
        results: dict[int, Outcome | Exception] = {}
        try:
            async with self.consumer.transaction(self.sessionmaker) as applying:
                for index, delivery in enumerate(batch):
                    with self._span(delivery):
                        try:
                            results[index] = await applying.apply(delivery.event)
                        except Exception as exc:
                            results[index] = exc
        except Exception:
            log.warning(
                "batch transaction failed: applying its events one by one",
                extra={"queue": self.consumer.queue, "events": len(batch)},
                exc_info=True,
            )
            for index, delivery in enumerate(batch):
                failed = results.get(index)
                if isinstance(failed, Exception):  # its handler failed: that was its attempt
                    await self._retry_or_dead_letter(channel, delivery, failed)
                else:
                    await self._process_one(channel, delivery)
            return
        for index, delivery in enumerate(batch):
            result = results[index]
            if isinstance(result, Exception):
                await self._retry_or_dead_letter(channel, delivery, result)
            else:
                await self._acknowledge(delivery, result)

    async def _process_one(self, channel: AbstractChannel, delivery: _Delivery) -> None:
        with self._span(delivery):
            try:
                outcome = await self.consumer.apply(self.sessionmaker, delivery.event)
            except Exception as exc:
                await self._retry_or_dead_letter(channel, delivery, exc)
                return
        await self._acknowledge(delivery, outcome)

    async def _acknowledge(self, delivery: _Delivery, outcome: Outcome) -> None:
        event = delivery.event
        await delivery.message.ack()
        EVENTS_HANDLED.labels(self.consumer.queue, event.type.routing_key, outcome).inc()
        CONSUMER_LAG.labels(self.consumer.queue).observe(
            max((self.clock.now() - event.time).total_seconds(), 0)
        )

    async def _retry_or_dead_letter(
        self, channel: AbstractChannel, delivery: _Delivery, error: Exception
    ) -> None:
        message, event = delivery.message, delivery.event
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
            headers={
                **(message.headers or {}),
                ATTEMPT_HEADER: attempt,
                ERROR_HEADER: f"{type(error).__name__}: {error}"[:ERROR_HEADER_LENGTH],
            },
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
