"""The transactional outbox: events are rows written in the same transaction as the change.

``add_event(session, table, event)`` inserts the row (and a NOTIFY that fires at commit); the relay
claims pending rows by status with ``FOR UPDATE SKIP LOCKED`` — never by a "last id" cursor, so a
row whose id was allocated early but committed late is still sent — publishes them as persistent
messages with publisher confirms, many in flight, and marks a row sent only after its confirm.
Several relays can run at once; sent rows are pruned after a retention period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

import aio_pika
from aio_pika.abc import AbstractExchange
from opentelemetry import propagate, trace
from prometheus_client import Counter, Gauge
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    Select,
    SmallInteger,
    String,
    Table,
    Uuid,
    all_,
    any_,
    bindparam,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pipedesk_common.clock import Clock
from pipedesk_common.db import DATABASE_ERRORS, connect_raw
from pipedesk_common.events import Event, encode_event
from pipedesk_common.events.envelope import CONTENT_TYPE
from pipedesk_common.messaging import BROKER_ERRORS, Topology, connect
from pipedesk_common.observability import request_id_var
from pipedesk_common.reconnect import Backoff, Connected, first_of, reconnecting

log = logging.getLogger(__name__)
tracer = trace.get_tracer("pipedesk.relay")

PENDING: Final = 0
SENT: Final = 1

OUTBOX_BACKLOG = Gauge(
    "pipedesk_outbox_backlog", "Events written but not yet confirmed by the broker", ["service"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "pipedesk_outbox_oldest_age_seconds", "Age of the oldest unsent event", ["service"]
)
OUTBOX_PUBLISHED = Counter(
    "pipedesk_outbox_published_total", "Events published and confirmed", ["service"]
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "pipedesk_outbox_publish_failures_total",
    "Publish attempts the broker did not confirm",
    ["service"],
)


def outbox_table(metadata: MetaData) -> Table:  # pragma: no mutate block
    """The outbox of one service, in that service's schema (so its migrations create it)."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("routing_key", String(255), nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("status", SmallInteger, nullable=False, server_default=text("0")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("sent_at", DateTime(timezone=True), nullable=True),
        Index("ix_outbox_pending", "id", postgresql_where=text("status = 0")),
        Index("ix_outbox_sent_at", "sent_at", postgresql_where=text("status = 1")),
    )


def notify_channel(table: Table) -> str:
    return f"{table.schema}_outbox"


@dataclass(frozen=True)
class _Statements:
    """An outbox's statements, built once per table: each change and each batch runs them, and
    building them (and their cache keys) anew cost more CPU than running them."""

    # The rows and the NOTIFY that announces them at commit, in one round trip.
    write: Select[Any]
    # The confirmed rows marked sent, and what is still pending once they are: the backlog.
    mark_sent: Select[int, datetime | None]
    backlog: Select[int, datetime | None]


_STATEMENTS: dict[int, tuple[Table, _Statements]] = {}


def _statements(table: Table) -> _Statements:
    known = _STATEMENTS.get(id(table))
    if known is not None and known[0] is table:
        return known[1]
    columns = ("event_id", "routing_key", "body")
    given = (
        func.unnest(
            bindparam("b_event_ids", type_=ARRAY(Uuid())),
            bindparam("b_routing_keys", type_=ARRAY(String())),
            bindparam("b_bodies", type_=ARRAY(LargeBinary())),
        )
        .table_valued(*columns)
        .render_derived()
    )
    written = (
        table.insert()
        .from_select(list(columns), select(*(given.c[name] for name in columns)))
        .cte("written")
    )
    write = select(func.pg_notify(bindparam("b_channel", type_=String()), literal(""))).add_cte(
        written
    )
    ids = bindparam("b_ids", type_=ARRAY(BigInteger()))
    marked = (
        table.update()
        .where(table.c.id == any_(ids))
        .values(status=SENT, sent_at=bindparam("b_sent_at", type_=table.c.sent_at.type))
        .cte("marked")
    )
    pending = select(func.count(), func.min(table.c.created_at)).where(table.c.status == PENDING)
    # One snapshot for both: the rows just marked still read as pending, so they are left out.
    mark_sent = pending.where(table.c.id != all_(ids)).add_cte(marked)
    statements = _Statements(write=write, mark_sent=mark_sent, backlog=pending)
    _STATEMENTS[id(table)] = (table, statements)
    return statements


def traceparent_of(body: bytes) -> str | None:
    """The ``traceparent`` extension of an encoded event, if it carries one."""
    if b'"traceparent"' not in body:
        return None
    try:
        value = json.loads(body).get("traceparent")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


async def add_event(session: AsyncSession, table: Table, event: Event[Any]) -> None:
    """Write ``event`` in the session's transaction: it is published if and only if it commits.

    The event carries the current trace context and request id, so its consumers' spans join
    the request's trace and their logs name the request.
    """
    await add_events_to(session, table, [event])


async def add_events_to(session: AsyncSession, table: Table, events: Sequence[Event[Any]]) -> None:
    """``add_event`` of several events, in one statement."""
    await session.run_sync(
        lambda sync_session: add_events(sync_session.connection(), table, events)
    )


def add_events(connection: Connection, table: Table, events: Sequence[Event[Any]]) -> None:
    """``add_event`` for synchronous code on the transaction's connection, such as a flush
    listener: the rows are written in that transaction, published if and only if it commits."""
    if not events:
        return
    traceparent = current_traceparent()
    request_id = request_id_var.get()
    event_ids, routing_keys, bodies = [], [], []
    for given in events:
        event = given
        if event.traceparent is None and traceparent is not None:
            event = replace(event, traceparent=traceparent)
        if event.request_id is None and request_id is not None:
            event = replace(event, request_id=request_id)
        event_ids.append(event.id)
        routing_keys.append(event.routing_key)
        bodies.append(encode_event(event))
    connection.execute(
        _statements(table).write,
        {
            "b_event_ids": event_ids,
            "b_routing_keys": routing_keys,
            "b_bodies": bodies,
            "b_channel": notify_channel(table),
        },
    )


@dataclass(frozen=True)
class RelaySettings:
    batch_size: int = 200
    poll_interval: float = 1.0
    retention: timedelta = timedelta(days=3)
    prune_every: float = 300.0
    backoff: Backoff = field(default_factory=Backoff)
    publish_timeout: float = 10.0
    heartbeat: int = 10


class OutboxRelay:
    """Publishes a service's outbox to the events exchange; see the module docstring."""

    def __init__(
        self,
        *,
        service: str,
        engine: AsyncEngine,
        table: Table,
        topology: Topology,
        amqp_url: str,
        clock: Clock,
        settings: RelaySettings | None = None,
    ) -> None:
        self.service = service
        self.engine = engine
        self.table = table
        self.topology = topology
        self.amqp_url = amqp_url
        self.clock = clock
        self.settings = settings or RelaySettings()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._last_prune: float | None = None  # the first turn prunes
        self._claim = (
            table.select()
            .with_only_columns(table.c.id, table.c.routing_key, table.c.body)
            .where(table.c.status == PENDING)
            .order_by(table.c.id)
            .limit(self.settings.batch_size)
            .with_for_update(skip_locked=True)
        )

    def stop(self) -> None:
        """Ask the relay to finish its current batch and return from ``run``."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Relay until stopped, reconnecting to the broker and the database as needed."""
        listener = asyncio.create_task(
            reconnecting(
                f"{self.service} outbox listener",
                self._listen,
                clock=self.clock,
                stopping=self._stopping,
                backoff=self.settings.backoff,
                quiet=DATABASE_ERRORS,
            ),
            name=f"{self.service}-outbox-listen",
        )
        try:
            await reconnecting(
                f"{self.service} outbox relay",
                self._run_connected,
                clock=self.clock,
                stopping=self._stopping,
                backoff=self.settings.backoff,
                quiet=(*BROKER_ERRORS, *DATABASE_ERRORS),
            )
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _run_connected(self, connected: Connected) -> None:
        try:
            connection = await connect(
                self.amqp_url, name=f"{self.service}-relay", heartbeat=self.settings.heartbeat
            )
            try:
                channel = await connection.channel(publisher_confirms=True)
                exchange = await self.topology.declare_exchange(channel)
                connected()
                while not connection.is_closed and not self._stopping.is_set():
                    # Cleared before the batch is claimed, not after: a commit notified while
                    # this batch is published must wake the next turn, not wait for the poll.
                    self._wake.clear()
                    sent = await self.relay_once(exchange)
                    if not sent:  # else its gauges were read as its rows were marked sent
                        await self._update_backlog_metrics()
                    await self._prune_if_due()
                    if sent < self.settings.batch_size:
                        await self._wait_for_work()
            finally:
                await connection.close()
        finally:
            await self._update_backlog_metrics()

    async def _wait_for_work(self) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
        # arrives as the wake-up does, and the relay would then never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.poll_interval):
                await self._wake.wait()

    async def relay_once(self, exchange: AbstractExchange) -> int:
        """Claim a batch of pending rows, publish them, mark the confirmed ones sent (and read
        the backlog they leave, for its gauges, with the same statement)."""
        backlog: Row[int, datetime | None] | None = None
        async with self.engine.begin() as connection:
            rows = (await connection.execute(self._claim)).all()
            if not rows:
                return 0
            results = await asyncio.gather(
                *(self._publish(exchange, row.routing_key, row.body) for row in rows),
                return_exceptions=True,
            )
            confirmed = [
                row.id for row, result in zip(rows, results, strict=True) if result is None
            ]
            if confirmed:
                backlog = (
                    await connection.execute(
                        _statements(self.table).mark_sent,
                        {"b_ids": confirmed, "b_sent_at": self.clock.now()},
                    )
                ).one()
            OUTBOX_PUBLISHED.labels(self.service).inc(len(confirmed))
        if backlog is not None:  # committed
            self._show_backlog(*backlog)
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            OUTBOX_PUBLISH_FAILURES.labels(self.service).inc(len(failures))
            raise failures[0]
        return len(confirmed)

    async def _publish(self, exchange: AbstractExchange, routing_key: str, body: bytes) -> None:
        traceparent = traceparent_of(body)
        if traceparent is None:  # not made for a traced request: no span of its own either
            await self._send(exchange, routing_key, body, {})
            return
        # The relay's span continues the trace of the change; the message carries it in its
        # headers, so the consumer's span follows the relay's.
        with tracer.start_as_current_span(
            f"publish {routing_key}",
            context=propagate.extract({"traceparent": traceparent}),
            kind=trace.SpanKind.PRODUCER,
            attributes={"messaging.system": "rabbitmq", "messaging.destination": routing_key},
        ):
            headers: dict[str, str] = {}
            propagate.inject(headers)
            await self._send(exchange, routing_key, body, headers)

    async def _send(
        self, exchange: AbstractExchange, routing_key: str, body: bytes, headers: dict[str, str]
    ) -> None:
        message = aio_pika.Message(
            body,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=dict(headers) or None,
        )
        # With publisher confirms, this returns once the broker has the message (or raises).
        await exchange.publish(
            message,
            routing_key=routing_key,
            mandatory=False,
            timeout=self.settings.publish_timeout,
        )

    async def _update_backlog_metrics(self) -> None:
        try:
            async with self.engine.connect() as connection:
                row = (await connection.execute(_statements(self.table).backlog)).one()
        except Exception:  # metrics must never stop the relay
            log.debug("backlog metrics unavailable", exc_info=True)
            return
        self._show_backlog(*row)

    def _show_backlog(self, count: int, oldest: datetime | None) -> None:
        OUTBOX_BACKLOG.labels(self.service).set(count)
        age = (self.clock.now() - oldest).total_seconds() if oldest is not None else 0.0
        OUTBOX_OLDEST_AGE.labels(self.service).set(max(age, 0.0))

    async def _prune_if_due(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        last = self._last_prune
        if last is not None and loop_time - last < self.settings.prune_every:
            return
        self._last_prune = loop_time
        await self.prune()

    async def prune(self) -> int:
        """Delete sent rows older than the retention period; returns how many."""
        cutoff = self.clock.now() - self.settings.retention
        table = self.table
        async with self.engine.begin() as connection:
            result = await connection.execute(
                table.delete().where(table.c.status == SENT, table.c.sent_at < cutoff)
            )
        return int(result.rowcount or 0)

    async def _listen(self, connected: Connected) -> None:
        """LISTEN for commits of new rows until the connection is lost (polling covers whatever
        is missed while it is down)."""
        connection = await connect_raw(self.engine.url)
        try:
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(
                notify_channel(self.table), lambda *_args: self._wake.set()
            )
            connected()
            self._wake.set()  # rows committed while nobody listened
            await first_of(lost.wait(), self._stopping.wait())
        finally:
            await connection.close(timeout=2)
