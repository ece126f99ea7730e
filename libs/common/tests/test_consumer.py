"""A consumer applies each event once: the inbox row and the handler's effect commit together, a
redelivery is a duplicate, an older version of an entity than one applied is stale. Against
libs/common's test schema, without a broker (the AMQP runner is tested in the timeline's suite)."""

import json
from collections import Counter
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pipedesk_common.clock import SystemClock
from pipedesk_common.consumer import Consumer
from pipedesk_common.events import Event, EventData, decode_event, encode_event, new_event
from pipedesk_common.events.accounts import GoogleConnected, GoogleDisconnected
from pipedesk_common.events.crm import DealAccessChanged, LeadAccessChanged
from pipedesk_common.events.timeline import TimelineCarrier
from pipedesk_common.inbox import InboxTables


def access_changed(
    record_id: str,
    version: int,
    model: type[LeadAccessChanged] | type[DealAccessChanged] = LeadAccessChanged,
) -> Event[Any]:
    data = model(id=record_id, version=version, org_id="org-c", owner_id="u1", team_id=None)
    return new_event(data, org_id="org-c", actor_id="u1", time=SystemClock().now())


def connected(
    model: type[GoogleConnected] | type[GoogleDisconnected] = GoogleConnected,
) -> Event[Any]:
    data = model(connection_id=str(uuid4()), user_id="u1", products=[], scopes=[])
    return new_event(data, org_id="org-c", actor_id="u1", time=SystemClock().now())


class Recording:
    """A consumer whose handlers count their calls, and can be made to fail."""

    def __init__(self, inbox: InboxTables, queue: str | None = None) -> None:
        self.consumer = Consumer(queue or f"tests.{uuid4().hex[:8]}", inbox)
        self.calls: Counter[str] = Counter()
        self.failing: set[str] = set()
        self.transactions: dict[str, int] = {}  # the transaction each key's effect was in

        @self.consumer.on(LeadAccessChanged, DealAccessChanged)
        async def access(session: AsyncSession, event: Event[Any]) -> None:
            await self.handle(session, event, event.data.id)

        @self.consumer.on(GoogleConnected)
        async def google(session: AsyncSession, event: Event[Any]) -> None:
            await self.handle(session, event, event.data.connection_id)

    async def handle(self, session: AsyncSession, event: Event[Any], key: str) -> None:
        assert session.in_transaction()  # the effect joins the inbox row's transaction
        self.calls[key] += 1
        self.transactions[key] = int(await session.scalar(text("SELECT txid_current()")) or 0)
        if key in self.failing:
            raise RuntimeError("handler failure")


async def inbox_rows(
    sessions: async_sessionmaker[AsyncSession], inbox: InboxTables, queue: str
) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(inbox.inbox).where(inbox.inbox.c.consumer == queue)
        )
    return int(count or 0)


@pytest.mark.asyncio
async def test_an_event_is_applied_once_and_a_redelivery_is_a_duplicate(
    sessions: async_sessionmaker[AsyncSession], inbox: InboxTables
) -> None:
    recording = Recording(inbox)
    unversioned, versioned = connected(), access_changed("lead-1", 1)
    for event in (unversioned, versioned):
        assert await recording.consumer.apply(sessions, event) == "applied"
        assert await recording.consumer.apply(sessions, event) == "duplicate"
    assert recording.calls == {unversioned.data.connection_id: 1, "lead-1": 1}
    # another consumer keeps an inbox of its own
    other = Recording(inbox)
    assert await other.consumer.apply(sessions, unversioned) == "applied"


@pytest.mark.asyncio
async def test_an_older_version_is_stale_per_entity_and_per_consumer(
    sessions: async_sessionmaker[AsyncSession], inbox: InboxTables
) -> None:
    recording = Recording(inbox)
    apply = recording.consumer.apply
    assert await apply(sessions, access_changed("lead-v", 2)) == "applied"
    assert await apply(sessions, access_changed("lead-v", 1)) == "stale"
    assert await apply(sessions, access_changed("lead-v", 2)) == "stale"  # same version, new id
    assert await apply(sessions, access_changed("lead-v", 3)) == "applied"
    # versions are kept per entity type and key…
    assert await apply(sessions, access_changed("lead-v", 1, DealAccessChanged)) == "applied"
    assert await apply(sessions, access_changed("lead-w", 1)) == "applied"
    # …and per consumer
    assert await Recording(inbox).consumer.apply(sessions, access_changed("lead-v", 1)) == "applied"
    assert recording.calls == {"lead-v": 3, "lead-w": 1}


@pytest.mark.asyncio
async def test_a_failed_handler_leaves_no_inbox_row_so_the_retry_applies_it(
    sessions: async_sessionmaker[AsyncSession], inbox: InboxTables
) -> None:
    recording = Recording(inbox)
    event = access_changed("lead-f", 1)
    recording.failing.add("lead-f")
    with pytest.raises(RuntimeError, match="handler failure"):
        await recording.consumer.apply(sessions, event)
    assert await inbox_rows(sessions, inbox, recording.consumer.queue) == 0
    recording.failing.clear()
    assert await recording.consumer.apply(sessions, event) == "applied"
    assert await inbox_rows(sessions, inbox, recording.consumer.queue) == 1


@pytest.mark.asyncio
async def test_an_event_without_a_handler_is_unhandled_and_not_recorded(
    sessions: async_sessionmaker[AsyncSession], inbox: InboxTables
) -> None:
    recording = Recording(inbox)
    assert await recording.consumer.apply(sessions, connected(GoogleDisconnected)) == "unhandled"
    assert not recording.consumer.handles(connected(GoogleDisconnected))
    assert recording.consumer.handles(connected())
    assert await inbox_rows(sessions, inbox, recording.consumer.queue) == 0


@pytest.mark.asyncio
async def test_pruning_forgets_old_ids_of_this_consumer_only_and_keeps_versions(
    sessions: async_sessionmaker[AsyncSession], inbox: InboxTables
) -> None:
    recording, other = Recording(inbox), Recording(inbox)
    old = access_changed("lead-p", 1)
    for consumer in (recording.consumer, other.consumer):
        assert await consumer.apply(sessions, old) == "applied"
    assert await recording.consumer.prune_inbox(sessions, timedelta(hours=1)) == 0
    assert await recording.consumer.prune_inbox(sessions, timedelta(0)) == 1
    assert await inbox_rows(sessions, inbox, recording.consumer.queue) == 0
    assert await inbox_rows(sessions, inbox, other.consumer.queue) == 1
    # the id is forgotten, the version is not: a redelivery of the old event is stale
    assert await recording.consumer.apply(sessions, old) == "stale"


def test_handlers_are_registered_once_and_before_consuming(inbox: InboxTables) -> None:
    recording = Recording(inbox)
    consumer = recording.consumer
    assert consumer.routing_keys == [
        "accounts.google.connected",
        "crm.deal.access_changed",
        "crm.lead.access_changed",
    ]
    assert consumer.unregistered_model is None

    async def again(session: AsyncSession, event: Event[Any]) -> None:
        raise AssertionError("never called")

    with pytest.raises(ValueError, match=f"^{consumer.queue} already handles "):
        consumer.on(GoogleConnected)(again)
    consumer.on_unregistered(EventData)(again)
    assert consumer.routing_keys == ["#"]
    assert consumer.unregistered_model is EventData
    with pytest.raises(ValueError, match="already handles unregistered types"):
        consumer.on_unregistered(EventData)(again)
    consumer.freeze()
    for register in (consumer.on(GoogleDisconnected), consumer.on_unregistered(EventData)):
        with pytest.raises(RuntimeError, match="is being consumed: register handlers before"):
            register(again)


@pytest.mark.asyncio
async def test_a_type_without_a_contract_reaches_the_fallback_and_nothing_else_does(
    sessions: async_sessionmaker[AsyncSession], inbox: InboxTables
) -> None:
    recording = Recording(inbox)
    titles: list[str] = []

    @recording.consumer.on_unregistered(TimelineCarrier)
    async def carried(session: AsyncSession, event: Event[Any]) -> None:
        titles.append(event.data.timeline.title)

    projection = {
        "kind": "email",
        "occurred_at": "2026-01-01T10:00:00Z",
        "title": "Hello",
        "source": {"service": "gmail", "key": f"gmail:{uuid4()}"},
    }
    envelope = json.loads(encode_event(connected()))
    body = {
        **envelope,
        "type": "pipedesk.gmail.message.received.v1",
        "data": {"timeline": projection},
    }
    mail = decode_event(json.dumps(body).encode(), unregistered=TimelineCarrier)
    assert await recording.consumer.apply(sessions, mail) == "applied"
    assert titles == ["Hello"]
    # a registered type goes to its own handler, never to the fallback…
    assert await recording.consumer.apply(sessions, access_changed("lead-r", 1)) == "applied"
    assert recording.calls["lead-r"] == 1
    # …and a registered type without a handler stays unhandled, fallback or not
    assert await recording.consumer.apply(sessions, connected(GoogleDisconnected)) == "unhandled"
    assert titles == ["Hello"]


@pytest.mark.asyncio
async def test_a_batch_applies_each_event_once_in_one_transaction(
    sessions: async_sessionmaker[AsyncSession], inbox: InboxTables
) -> None:
    recording = Recording(inbox)
    first, unversioned = access_changed("lead-b", 2), connected()
    async with recording.consumer.transaction(sessions) as batch:
        outcomes = [
            await batch.apply(first),
            await batch.apply(unversioned),
            await batch.apply(first),  # the same event twice in one batch
            await batch.apply(unversioned),
            await batch.apply(access_changed("lead-b", 1)),  # older than one the batch applied
            await batch.apply(connected(GoogleDisconnected)),  # no handler
        ]
    assert outcomes == ["applied", "applied", "duplicate", "duplicate", "stale", "unhandled"]
    assert recording.calls == {"lead-b": 1, unversioned.data.connection_id: 1}
    assert len(set(recording.transactions.values())) == 1
    assert await inbox_rows(sessions, inbox, recording.consumer.queue) == 3
    # committed: a redelivery after the batch is a duplicate too
    assert await recording.consumer.apply(sessions, first) == "duplicate"


@pytest.mark.asyncio
async def test_a_failing_handler_in_a_batch_undoes_its_own_event_only(
    sessions: async_sessionmaker[AsyncSession], inbox: InboxTables
) -> None:
    recording = Recording(inbox)
    recording.failing.add("lead-poison")
    before, poison, after = (
        access_changed("lead-1", 1),
        access_changed("lead-poison", 1),
        access_changed("lead-2", 1),
    )
    async with recording.consumer.transaction(sessions) as batch:
        assert await batch.apply(before) == "applied"
        with pytest.raises(RuntimeError, match="handler failure"):
            await batch.apply(poison)
        assert await batch.apply(after) == "applied"
    assert recording.calls == {"lead-1": 1, "lead-poison": 1, "lead-2": 1}
    assert recording.transactions["lead-1"] == recording.transactions["lead-2"]
    # the poison's inbox row went with its effect; the others' committed
    assert await inbox_rows(sessions, inbox, recording.consumer.queue) == 2
    recording.failing.clear()
    assert await recording.consumer.apply(sessions, poison) == "applied"
    assert await recording.consumer.apply(sessions, before) == "duplicate"


@pytest.mark.asyncio
async def test_a_batch_whose_transaction_fails_commits_nothing(
    sessions: async_sessionmaker[AsyncSession], inbox: InboxTables
) -> None:
    recording = Recording(inbox)
    event = access_changed("lead-lost", 1)

    async def apply_then_fail() -> None:
        async with recording.consumer.transaction(sessions) as batch:
            assert await batch.apply(event) == "applied"
            raise RuntimeError("the transaction fails")

    with pytest.raises(RuntimeError, match="the transaction fails"):
        await apply_then_fail()
    assert await inbox_rows(sessions, inbox, recording.consumer.queue) == 0
    assert await recording.consumer.apply(sessions, event) == "applied"
