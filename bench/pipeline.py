"""Event pipeline: raw broker, raw database + broker, and lead updates through the system.

One "event" is one lead update, which in the system costs: a CRM commit writing the lead and two
outbox rows (``crm.lead.updated`` and ``crm.audit.recorded``), a relay commit per batch marking
them sent, two persistent publishes with confirms (only the audit event is routed to the
timeline's quorum queue), and one timeline consumer commit plus ack. The raw database + broker
baseline does exactly those commits and publishes with asyncpg and aio-pika and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from bench.measure import HttpPool, percentile

BODY = b"x" * 1024
RELAY_BATCH = 200
PREFETCH = 100  # the product's consumer prefetch
PUBLISH_WINDOW = 500


def asyncpg_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


@dataclass
class RoundResult:
    events: int
    seconds: float
    # For the system: events still in CRM's outbox when the writers stopped (from /metrics),
    # which tells whether the relay or the consumer side is behind.
    outbox_backlog_at_stop: float | None = None

    @property
    def per_second(self) -> float:
        return self.events / self.seconds


class _Counter:
    """Counts consumed messages and says when a target count is reached."""

    def __init__(self) -> None:
        self.count = 0
        self.target: int | None = None
        self.reached = asyncio.Event()
        self.last_at = 0.0

    def add(self) -> None:
        self.count += 1
        self.last_at = time.perf_counter()
        if self.target is not None and self.count >= self.target:
            self.reached.set()

    def expect(self, target: int) -> None:
        self.target = target
        if self.count >= target:
            self.reached.set()

    def reset(self) -> None:
        self.count, self.target, self.last_at = 0, None, 0.0
        self.reached = asyncio.Event()


class RawBroker:
    """(a) persistent 1 KB messages, confirms, many in flight, to a quorum queue; manual acks."""

    def __init__(self, amqp_url: str, prefix: str) -> None:
        self.amqp_url = amqp_url
        self.queue_name = f"{prefix}raw.broker"
        self.counter = _Counter()

    async def __aenter__(self) -> RawBroker:
        self.publisher = await aio_pika.connect(self.amqp_url)
        self.consumer = await aio_pika.connect(self.amqp_url)
        self.channel = await self.publisher.channel(publisher_confirms=True)
        consume_channel = await self.consumer.channel()
        await consume_channel.set_qos(prefetch_count=PREFETCH)
        self.queue = await consume_channel.declare_queue(
            self.queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )

        async def on_message(message: AbstractIncomingMessage) -> None:
            await message.ack()
            self.counter.add()

        self.consumer_tag = await self.queue.consume(on_message)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.queue.cancel(self.consumer_tag)
        with contextlib.suppress(Exception):
            await self.queue.delete(if_unused=False, if_empty=False)
        await self.publisher.close()
        await self.consumer.close()

    async def round(self, duration: float) -> RoundResult:
        self.counter.reset()
        window = asyncio.Semaphore(PUBLISH_WINDOW)
        exchange = self.channel.default_exchange
        published = 0

        async def publish() -> None:
            nonlocal published
            try:
                await exchange.publish(
                    aio_pika.Message(BODY, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=self.queue_name,
                )
                published += 1
            finally:
                window.release()

        started = time.perf_counter()
        tasks = set()
        while time.perf_counter() - started < duration:
            await window.acquire()
            task = asyncio.create_task(publish())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        self.counter.expect(published)
        await asyncio.wait_for(self.counter.reached.wait(), timeout=120)
        return RoundResult(published, self.counter.last_at - started)


RAW_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS bench_raw;
CREATE TABLE IF NOT EXISTS bench_raw.leads (
    id int PRIMARY KEY, title text NOT NULL, version int NOT NULL);
CREATE TABLE IF NOT EXISTS bench_raw.outbox (
    id bigserial PRIMARY KEY, routing_key text NOT NULL, body bytea NOT NULL,
    status smallint NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS ix_raw_outbox_pending ON bench_raw.outbox (id) WHERE status = 0;
CREATE TABLE IF NOT EXISTS bench_raw.items (
    event_id uuid PRIMARY KEY, lead_id int NOT NULL, body bytea NOT NULL);
CREATE TABLE IF NOT EXISTS bench_raw.inbox (event_id uuid PRIMARY KEY);
"""


class RawDatabaseAndBroker:
    """(b) the pipeline's commits and publishes, minimally: producer, relay and consumer."""

    def __init__(self, database_url: str, amqp_url: str, prefix: str, writers: int) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.amqp_url = amqp_url
        self.exchange_name = f"{prefix}raw.events"
        self.queue_name = f"{prefix}raw.items"
        self.writers = writers
        self.counter = _Counter()
        self.wake = asyncio.Event()

    async def __aenter__(self) -> RawDatabaseAndBroker:
        setup = await asyncpg.connect(self.dsn)
        try:
            await setup.execute(RAW_SCHEMA)
            await setup.execute(
                "TRUNCATE bench_raw.leads, bench_raw.outbox, bench_raw.items, bench_raw.inbox"
            )
            await setup.executemany(
                "INSERT INTO bench_raw.leads VALUES ($1, 'lead', 1)",
                [(n,) for n in range(self.writers)],
            )
        finally:
            await setup.close()
        # Pool sizes as in the product: 5 + 5 per process, one process per role.
        self.writer_pool = await asyncpg.create_pool(self.dsn, min_size=2, max_size=10)
        self.consumer_pool = await asyncpg.create_pool(self.dsn, min_size=2, max_size=10)
        self.relay_db = await asyncpg.connect(self.dsn)
        self.listen_db = await asyncpg.connect(self.dsn)
        await self.listen_db.add_listener("bench_raw_outbox", lambda *_: self.wake.set())
        self.relay_amqp = await aio_pika.connect(self.amqp_url)
        self.consumer_amqp = await aio_pika.connect(self.amqp_url)
        relay_channel = await self.relay_amqp.channel(publisher_confirms=True)
        self.exchange = await relay_channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, auto_delete=True
        )
        consume_channel = await self.consumer_amqp.channel()
        await consume_channel.set_qos(prefetch_count=PREFETCH)
        await consume_channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, auto_delete=True
        )
        self.queue = await consume_channel.declare_queue(
            self.queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await self.queue.bind(self.exchange_name, routing_key="raw.audit.recorded")
        self.consumer_tag = await self.queue.consume(self._on_message)
        self.relaying = True
        self.relay_task = asyncio.create_task(self._relay())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.relaying = False
        self.wake.set()
        await self.relay_task
        await self.queue.cancel(self.consumer_tag)
        with contextlib.suppress(Exception):
            await self.queue.delete(if_unused=False, if_empty=False)
        await self.relay_amqp.close()
        await self.consumer_amqp.close()
        await self.relay_db.close()
        await self.listen_db.close()
        await self.writer_pool.close()
        await self.consumer_pool.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        event_id = uuid.UUID(message.message_id)
        async with self.consumer_pool.acquire() as connection, connection.transaction():
            first = await connection.fetchval(
                "INSERT INTO bench_raw.inbox VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1",
                event_id,
            )
            if first:
                await connection.execute(
                    "INSERT INTO bench_raw.items VALUES ($1, $2, $3)", event_id, 0, message.body
                )
        await message.ack()
        self.counter.add()

    async def _relay(self) -> None:
        while self.relaying:
            async with self.relay_db.transaction():
                rows = await self.relay_db.fetch(
                    "SELECT id, routing_key, body FROM bench_raw.outbox WHERE status = 0 "
                    "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                    RELAY_BATCH,
                )
                await asyncio.gather(
                    *(
                        self.exchange.publish(
                            aio_pika.Message(
                                bytes(row["body"]),
                                message_id=str(uuid.uuid4()),
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            ),
                            routing_key=row["routing_key"],
                        )
                        for row in rows
                    )
                )
                if rows:
                    await self.relay_db.execute(
                        "UPDATE bench_raw.outbox SET status = 1 WHERE id = ANY($1)",
                        [row["id"] for row in rows],
                    )
            if len(rows) < RELAY_BATCH:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self.wake.wait()

    async def round(self, duration: float) -> RoundResult:
        self.counter.reset()
        started = time.perf_counter()
        committed = 0

        async def writer(lead: int) -> None:
            nonlocal committed
            sequence = 0
            while time.perf_counter() - started < duration:
                sequence += 1
                async with self.writer_pool.acquire() as connection, connection.transaction():
                    await connection.execute(
                        "UPDATE bench_raw.leads SET title = $2, version = version + 1 "
                        "WHERE id = $1",
                        lead,
                        f"title {sequence}",
                    )
                    await connection.execute(
                        "INSERT INTO bench_raw.outbox (routing_key, body) "
                        "VALUES ('raw.lead.updated', $1), ('raw.audit.recorded', $1)",
                        BODY,
                    )
                    await connection.execute("SELECT pg_notify('bench_raw_outbox', '')")
                committed += 1

        await asyncio.gather(*(writer(lead) for lead in range(self.writers)))
        self.counter.expect(committed)
        await asyncio.wait_for(self.counter.reached.wait(), timeout=120)
        return RoundResult(committed, self.counter.last_at - started)


class SystemPipeline:
    """Lead updates through CRM's public API, until the timeline API shows every one."""

    def __init__(self, crm: HttpPool, timeline: HttpPool, writers: int) -> None:
        self.crm = crm
        self.timeline = timeline
        self.writers = writers
        self.leads: list[str] = []
        self.probe_lead = ""
        self.sequence = 0

    async def create_leads(self) -> None:
        ids = []
        for index in range(self.writers + 1):
            body = json.dumps({"title": f"bench lead {index}"}).encode()
            status, answer = await self.crm.call("POST", "/api/leads", body)
            if status != 201:
                raise RuntimeError(f"creating a lead answered {status}: {answer[:300]!r}")
            ids.append(json.loads(answer)["id"])
        self.leads, self.probe_lead = ids[:-1], ids[-1]
        for lead in ids:
            await self._visible(lead, lambda summary: True)

    def _next_title(self) -> str:
        self.sequence += 1
        return f"bench update {self.sequence}"

    async def update(self, lead: str, title: str) -> int:
        status, _ = await self.crm.call(
            "PATCH", f"/api/leads/{lead}", json.dumps({"title": title}).encode()
        )
        return status

    async def _newest_summary(self, lead: str) -> str | None:
        status, answer = await self.timeline.call("GET", f"/api/timeline/lead/{lead}?limit=1")
        if status != 200:
            return None
        items = json.loads(answer)["items"]
        return (items[0].get("summary") or "") if items else None

    async def _visible(
        self, lead: str, shown: Callable[[str], bool], *, every: float = 0.02, within: float = 120
    ) -> float:
        """Poll the lead's timeline until its newest item is ``shown``; when it was first seen."""
        deadline = time.perf_counter() + within
        while True:
            asked = time.perf_counter()
            summary = await self._newest_summary(lead)
            if summary is not None and shown(summary):
                return asked
            if time.perf_counter() > deadline:
                raise TimeoutError(f"lead {lead}'s last update never reached its timeline")
            await asyncio.sleep(every)

    async def round(self, duration: float) -> RoundResult:
        started = time.perf_counter()
        last_titles: dict[str, str] = {}
        committed = 0

        async def writer(lead: str) -> None:
            nonlocal committed
            while time.perf_counter() - started < duration:
                title = self._next_title()
                if await self.update(lead, title) == 200:
                    last_titles[lead] = title
                    committed += 1

        await asyncio.gather(*(writer(lead) for lead in self.leads))
        backlog = await self._outbox_backlog()
        seen = 0.0
        for lead, title in last_titles.items():
            seen = max(seen, await self._visible(lead, _ends_with(title)))
        return RoundResult(committed, seen - started, backlog)

    async def _outbox_backlog(self) -> float | None:
        status, body = await self.crm.call("GET", "/metrics")
        if status != 200:
            return None
        for line in body.decode().splitlines():
            if line.startswith("pipedesk_outbox_backlog{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    async def lag_round(self, rate: float, duration: float, probe_every: float) -> LagResult:
        """Updates at ``rate`` per second (open loop), while probe updates time commit → item."""
        lags: list[float] = []
        last_titles: dict[str, str] = {}
        failures = 0
        count = max(1, int(rate * duration))
        start = time.perf_counter() + 0.05

        async def one(index: int) -> None:
            nonlocal failures
            lead = self.leads[index % len(self.leads)]
            title = self._next_title()
            if await self.update(lead, title) == 200:
                last_titles[lead] = title
            else:
                failures += 1

        async def probe() -> None:
            while time.perf_counter() - start < duration:
                title = self._next_title()
                if await self.update(self.probe_lead, title) == 200:
                    committed = time.perf_counter()
                    seen = await self._visible(self.probe_lead, _ends_with(title), every=0.01)
                    lags.append(max(seen - committed, 0.0))
                await asyncio.sleep(probe_every)

        prober = asyncio.create_task(probe())
        tasks = []
        for index in range(count):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks, prober)
        for lead, title in last_titles.items():  # drain before the next round
            await self._visible(lead, _ends_with(title))
        return LagResult(lags, count, failures)


@dataclass
class LagResult:
    lags: list[float]
    sent: int
    failures: int

    def p(self, fraction: float) -> float:
        return percentile(self.lags, fraction)


def _ends_with(title: str) -> Callable[[str], bool]:
    return lambda summary: summary.endswith(f"→ {title}")


Runner = Callable[[float], Awaitable[RoundResult]]
