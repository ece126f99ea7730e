"""The consumer machinery, against the real broker and the timeline's own inbox tables."""

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import aio_pika
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from pipedesk_common.amqp_runner import ConsumerSettings, QueueRunner
from pipedesk_common.app import stop_task
from pipedesk_common.clock import SystemClock
from pipedesk_common.consumer import Consumer
from pipedesk_common.db import create_sessionmaker
from pipedesk_common.dlq import list_dead_letters, replay_dead_letters
from pipedesk_common.events import Event, encode_event, new_event
from pipedesk_common.events.accounts import GoogleConnected
from pipedesk_common.events.crm import LeadAccessChanged
from pipedesk_common.messaging import Topology
from pipedesk_common.reconnect import Backoff
from pipedesk_testkit.proxy import tcp_proxy
from pipedesk_testkit.waiting import eventually
from timeline_service.models import inbox

pytestmark = pytest.mark.asyncio

FAST = ConsumerSettings(
    prefetch=50, max_attempts=3, delivery_limit=5, retry_delays_ms=(100, 200), heartbeat=2,
    backoff=Backoff(initial=0.1, cap=0.5),
)  # fmt: skip


def google_connected(connection_id: str, org: str = "org-c") -> Event[Any]:
    """An event without a version: only the inbox can tell a redelivery of it."""
    data = GoogleConnected(connection_id=connection_id, user_id="u1", products=[], scopes=[])
    return new_event(data, org_id=org, actor_id="u1", time=SystemClock().now())


def access_changed(record_id: str, version: int, org: str = "org-c") -> Event[Any]:
    data = LeadAccessChanged(id=record_id, version=version, org_id=org, owner_id="u1", team_id="t1")
    return new_event(data, org_id=org, actor_id="u1", time=SystemClock().now())


class Harness:
    def __init__(self, service_env: dict[str, str], batch_size: int = 1) -> None:
        self.env = service_env
        self.topology = Topology(
            service_env["BROKER_PREFIX"], 3_600_000, Path(service_env["BROKER_QUEUE_LEDGER"])
        )
        self.consumer = Consumer(f"tests.{uuid4().hex[:8]}", inbox, batch_size=batch_size)
        self.calls: Counter[str] = Counter()
        self.applied: list[tuple[str, int]] = []
        self.applied_in: list[int] = []  # the transaction of each of ``applied``
        self.failures_left: dict[str, int] = {}
        self.transactions: dict[str, int] = {}  # the transaction each key's effect was in
        self.gate = asyncio.Event()  # the "gate" lead's handler waits for it
        self.at_gate = asyncio.Event()
        self.gate.set()

        @self.consumer.on(LeadAccessChanged)
        async def handle(session: AsyncSession, event: Event[Any]) -> None:
            key = event.data.id
            self.calls[key] += 1
            if key == "gate":
                self.at_gate.set()
                await self.gate.wait()
            self.transactions[key] = int(await session.scalar(text("SELECT txid_current()")) or 0)
            if self.failures_left.get(key, 0) != 0:
                self.failures_left[key] -= 1
                raise RuntimeError("handler failure")
            self.applied.append((key, event.data.version))
            self.applied_in.append(self.transactions[key])

        @self.consumer.on(GoogleConnected)
        async def connected(session: AsyncSession, event: Event[Any]) -> None:
            self.calls[event.data.connection_id] += 1

    def outcomes(self, event: Event[Any]) -> dict[str, int]:
        """How this consumer's deliveries of ``event``'s type ended, by outcome."""
        found = {}
        for outcome in ("applied", "duplicate", "stale"):
            labels = {"queue": self.consumer.queue, "type": event.routing_key, "outcome": outcome}
            count = REGISTRY.get_sample_value("pipedesk_events_handled_total", labels)
            if count:
                found[outcome] = int(count)
        return found

    @property
    def queue(self) -> str:
        return self.topology.queue(self.consumer.queue)

    async def publish(self, *events: Event[Any], raw: bytes | None = None) -> None:
        connection = await aio_pika.connect(self.env["AMQP_URL"])
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await self.topology.declare_exchange(channel)
            for event in events:
                message = aio_pika.Message(
                    encode_event(event), content_type="application/cloudevents+json"
                )
                await exchange.publish(message, routing_key=event.routing_key)
            if raw is not None:
                await exchange.publish(
                    aio_pika.Message(raw, content_type="application/cloudevents+json"),
                    routing_key="crm.lead.access_changed",
                )
        finally:
            await connection.close()


@asynccontextmanager
async def consuming(
    harness: Harness,
    database_url: str,
    amqp_url: str | None = None,
    settings: ConsumerSettings = FAST,
) -> AsyncIterator[QueueRunner]:
    engine = create_async_engine(database_url, pool_size=5)
    ready = asyncio.Event()
    runner = QueueRunner(
        harness.consumer,
        sessionmaker=create_sessionmaker(engine),
        topology=harness.topology,
        amqp_url=amqp_url or harness.env["AMQP_URL"],
        clock=SystemClock(),
        settings=settings,
    )
    task = asyncio.create_task(runner.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), timeout=15)
        yield runner
    finally:
        runner.stop()
        await asyncio.wait({task}, timeout=10)
        await stop_task(task)
        await engine.dispose()


@pytest.mark.parametrize(
    "event",
    [
        access_changed("lead-dup", 1),
        # no version can stop a second delivery of this one: the inbox alone does
        google_connected("connection-dup"),
    ],
    ids=["versioned", "unversioned"],
)
async def test_a_redelivered_event_has_one_effect(
    service_env: dict[str, str], database_url: str, event: Event[Any]
) -> None:
    harness = Harness(service_env)
    async with consuming(harness, database_url):
        await harness.publish(event, event, event)
        outcomes = await eventually(
            lambda: asyncio.sleep(0, harness.outcomes(event)),
            until=lambda found: sum(found.values()) == 3,
        )
    # The inbox stops a redelivery, before any version check would.
    assert outcomes == {"applied": 1, "duplicate": 2}
    assert sum(harness.calls.values()) == 1


async def test_the_pruned_inbox_still_ignores_old_versions(
    service_env: dict[str, str], database_url: str
) -> None:
    harness = Harness(service_env)
    event = access_changed("lead-pruned", 1)
    engine = create_async_engine(database_url)
    try:
        async with consuming(harness, database_url):
            await harness.publish(event)
            await eventually(lambda: asyncio.sleep(0, ("lead-pruned", 1) in harness.applied))
            pruned = await harness.consumer.prune_inbox(create_sessionmaker(engine), timedelta(0))
            assert pruned >= 1
            await harness.publish(event, access_changed("lead-marker", 1))
            await eventually(lambda: asyncio.sleep(0, ("lead-marker", 1) in harness.applied))
    finally:
        await engine.dispose()
    assert harness.applied.count(("lead-pruned", 1)) == 1


async def test_an_older_version_after_a_newer_one_is_ignored(
    service_env: dict[str, str], database_url: str
) -> None:
    harness = Harness(service_env)
    async with consuming(harness, database_url):
        await harness.publish(access_changed("lead-v", 2))
        await eventually(lambda: asyncio.sleep(0, ("lead-v", 2) in harness.applied))
        await harness.publish(access_changed("lead-v", 1), access_changed("lead-v", 3))
        await eventually(lambda: asyncio.sleep(0, ("lead-v", 3) in harness.applied))
    assert [version for key, version in harness.applied if key == "lead-v"] == [2, 3]


async def test_a_handler_that_fails_twice_is_retried_with_backoff_and_succeeds(
    service_env: dict[str, str], database_url: str
) -> None:
    harness = Harness(service_env)
    harness.failures_left["lead-flaky"] = 2
    async with consuming(harness, database_url):
        await harness.publish(access_changed("lead-flaky", 1))
        await eventually(lambda: asyncio.sleep(0, ("lead-flaky", 1) in harness.applied))
    assert harness.calls["lead-flaky"] == 3
    assert harness.applied == [("lead-flaky", 1)]
    assert await list_dead_letters(service_env["AMQP_URL"], harness.queue) == []


async def test_a_poison_message_is_dead_lettered_while_others_flow_and_can_be_replayed(
    service_env: dict[str, str], database_url: str
) -> None:
    harness = Harness(service_env)
    harness.failures_left["lead-poison"] = -1  # fails for ever
    poison = access_changed("lead-poison", 1)
    others = [access_changed(f"lead-ok-{index}", 1) for index in range(10)]
    async with consuming(harness, database_url):
        await harness.publish(poison, *others)
        await eventually(lambda: asyncio.sleep(0, len(harness.applied) == 10))
        letters = await eventually(
            lambda: list_dead_letters(service_env["AMQP_URL"], harness.queue),
            until=lambda found: len(found) == 1,
        )
        assert letters[0].event_id == str(poison.id)
        assert letters[0].type == "pipedesk.crm.lead.access_changed.v1"
        assert letters[0].reason == "rejected"
        assert letters[0].attempts == FAST.max_attempts
        assert letters[0].error == "RuntimeError: handler failure"  # why, for the operator
        assert harness.calls["lead-poison"] == FAST.max_attempts
        harness.failures_left["lead-poison"] = 0  # the bug is fixed
        assert await replay_dead_letters(service_env["AMQP_URL"], harness.queue) == 1
        await eventually(lambda: asyncio.sleep(0, ("lead-poison", 1) in harness.applied))
    assert await list_dead_letters(service_env["AMQP_URL"], harness.queue) == []


async def test_events_waiting_for_a_slot_are_applied_in_one_transaction_and_a_poison_alone_fails(
    service_env: dict[str, str], database_url: str
) -> None:
    harness = Harness(service_env)
    harness.failures_left["lead-poison"] = -1  # fails for ever
    first, poison, last = (
        access_changed("lead-first", 2),
        access_changed("lead-poison", 1),
        access_changed("lead-last", 1),
    )
    batch = [first, poison, first, access_changed("lead-first", 1), last]
    async with consuming(
        harness, database_url, settings=replace(FAST, concurrency=1, batch_size=100)
    ) as runner:
        # The one slot is held by the gate's handler while the batch's messages arrive.
        harness.gate.clear()
        await harness.publish(access_changed("gate", 1))
        await eventually(lambda: asyncio.sleep(0, harness.at_gate.is_set()))
        await harness.publish(*batch)
        await eventually(lambda: asyncio.sleep(0, runner.waiting == len(batch)))
        harness.gate.set()
        letters = await eventually(
            lambda: list_dead_letters(service_env["AMQP_URL"], harness.queue),
            until=lambda found: len(found) == 1,
        )
        outcomes = await eventually(
            lambda: asyncio.sleep(0, harness.outcomes(first)),
            until=lambda found: sum(found.values()) == 5,  # the gate, the batch but the poison
        )
    # The poison was tried as often as alone, and dead-lettered alone.
    assert letters[0].event_id == str(poison.id)
    assert harness.calls["lead-poison"] == FAST.max_attempts
    # The others committed together, once each: a duplicate and an older version in the batch
    # had no effect.
    assert outcomes == {"applied": 3, "duplicate": 1, "stale": 1}
    assert harness.applied == [("gate", 1), ("lead-first", 2), ("lead-last", 1)]
    assert harness.transactions["lead-first"] == harness.transactions["lead-last"]
    assert harness.transactions["gate"] != harness.transactions["lead-first"]


async def test_a_batching_consumer_applies_a_backlog_in_batches_once_each_in_order(
    service_env: dict[str, str], database_url: str
) -> None:
    harness = Harness(service_env, batch_size=50)
    harness.failures_left["lead-poison"] = -1  # fails for ever
    # 7 leads, 20 versions each, interleaved as their changes were; a poison among them.
    backlog = [access_changed(f"lead-{n % 7}", n // 7 + 1) for n in range(140)]
    poison = access_changed("lead-poison", 1)
    backlog.insert(70, poison)
    # Several slots, as in a service: batches must still follow each other, not overlap.
    settings = replace(FAST, prefetch=500, concurrency=5)
    async with consuming(harness, database_url, settings=settings) as runner:
        harness.gate.clear()
        await harness.publish(access_changed("gate", 1))
        await eventually(lambda: asyncio.sleep(0, harness.at_gate.is_set()))
        await harness.publish(*backlog)
        await eventually(lambda: asyncio.sleep(0, runner.waiting == len(backlog)))
        harness.gate.set()
        letters = await eventually(
            lambda: list_dead_letters(service_env["AMQP_URL"], harness.queue),
            until=lambda found: len(found) == 1,
        )
        await eventually(lambda: asyncio.sleep(0, len(harness.applied) == 141))
        outcomes = harness.outcomes(poison)
    # The poison alone was dead-lettered, after as many attempts as alone.
    assert letters[0].event_id == str(poison.id)
    assert harness.calls["lead-poison"] == FAST.max_attempts
    # Every other event applied once, none lost, none skipped as stale: each lead's versions in
    # the order they were sent.
    assert outcomes == {"applied": 141}
    applied = harness.applied[1:]
    assert sorted(applied) == sorted(
        (e.data.id, e.data.version) for e in backlog if e is not poison
    )
    for lead in range(7):
        versions = [version for key, version in applied if key == f"lead-{lead}"]
        assert versions == list(range(1, 21))
    # In three transactions (50, 50 and the rest), one after the other.
    transactions = harness.applied_in[1:]
    assert [len(list(group)) for _, group in itertools.groupby(transactions)] == [50, 49, 41]
    assert sorted(set(transactions)) == list(dict.fromkeys(transactions))


async def test_a_malformed_message_goes_straight_to_the_dead_letter_queue(
    service_env: dict[str, str], database_url: str
) -> None:
    harness = Harness(service_env)
    async with consuming(harness, database_url):
        await harness.publish(raw=b'{"specversion": "1.0", "not": "an event"')
        await harness.publish(access_changed("lead-fine", 1))
        await eventually(lambda: asyncio.sleep(0, ("lead-fine", 1) in harness.applied))
        letters = await eventually(
            lambda: list_dead_letters(service_env["AMQP_URL"], harness.queue),
            until=lambda found: len(found) == 1,
        )
    assert letters[0].type.startswith("unreadable")


async def test_a_consumer_whose_broker_link_is_cut_resumes_by_itself(
    service_env: dict[str, str], database_url: str
) -> None:
    harness = Harness(service_env)
    amqp = aio_pika.connection.URL(service_env["AMQP_URL"])
    with tcp_proxy(amqp.host or "127.0.0.1", amqp.port or 5672) as proxy:
        proxied = str(amqp.with_port(proxy.port))
        async with consuming(harness, database_url, proxied):
            await harness.publish(access_changed("before-cut", 1))
            await eventually(lambda: asyncio.sleep(0, ("before-cut", 1) in harness.applied))
            proxy.cut()
            await harness.publish(*(access_changed(f"during-cut-{index}", 1) for index in range(3)))
            proxy.restore()
            await eventually(lambda: asyncio.sleep(0, len(harness.applied) == 4))
            connections = proxy.connections_made
            proxy.stall()  # a hung link: missed heartbeats close it and the consumer reconnects
            await harness.publish(access_changed("after-stall", 1))
            await eventually(
                lambda: asyncio.sleep(0, proxy.connections_made > connections), within=30
            )
            proxy.restore()
            await eventually(lambda: asyncio.sleep(0, ("after-stall", 1) in harness.applied))
    assert {key for key, _ in harness.applied} == {
        "before-cut",
        "during-cut-0",
        "during-cut-1",
        "during-cut-2",
        "after-stall",
    }
