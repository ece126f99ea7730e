"""Event consumers: which handler applies which event type, and applying an event exactly once.

A ``Consumer`` names a queue (``<service>.<purpose>``, e.g. ``timeline.items``) and holds its
handlers, each registered for its contract model with ``consumer.on(Model)``; a handler receives
an ``Event[Model]``, already narrowed to that model. ``apply`` runs the handler in ONE database
transaction with the inbox row (``pipedesk_common.inbox``): a duplicate delivery or an older
version of an entity than the one applied has no effect. ``transaction`` applies several events in
one transaction, each in a savepoint of its own: a handler that fails undoes its own event only.
A consumer opts in to batches with ``batch_size``: the events its queue holds when it falls behind
are then applied up to that many per transaction, one batch after another. Taking events off the
broker, acking, retries and dead-lettering are the ``QueueRunner``'s
(``pipedesk_common.amqp_runner``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, Literal, TypeGuard, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pipedesk_common import inbox
from pipedesk_common.events import Event, EventData, event_type_of, registered_types
from pipedesk_common.inbox import InboxTables

D = TypeVar("D", bound=EventData)
Handler = Callable[[AsyncSession, Event[D]], Awaitable[None]]
Outcome = Literal["applied", "duplicate", "stale", "unhandled"]


def is_event_of(event: Event[Any], model: type[D]) -> TypeGuard[Event[D]]:
    return isinstance(event.data, model)


@dataclass(frozen=True)
class _Route(Generic[D]):
    """A handler with the model it was registered for: events reach it narrowed to that model."""

    model: type[D]
    handler: Handler[D]

    async def deliver(self, session: AsyncSession, event: Event[EventData]) -> None:
        if not is_event_of(event, self.model):
            raise TypeError(f"{event.type.name} is not read through {self.model.__name__}")
        await self.handler(session, event)


class Consumer:
    """One queue's handlers; see the module docstring. Handlers are registered before the queue
    is consumed: once a runner has started, the consumer is frozen."""

    def __init__(self, queue: str, tables: InboxTables, *, batch_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"{queue}: batch_size must be at least 1, not {batch_size}")
        self.queue = queue
        self.tables = tables
        # Events applied in one transaction at most; above one, the queue's batches are applied
        # one after another (``QueueRunner``), so their row locks never wait on each other.
        self.batch_size = batch_size
        self._routes: dict[str, _Route[Any]] = {}
        self._unregistered: _Route[Any] | None = None
        self._frozen = False

    def on(self, *models: type[D]) -> Callable[[Handler[D]], Handler[D]]:
        """Register the handler of one or more event types (their contract models)."""

        def register(handler: Handler[D]) -> Handler[D]:
            for model in models:
                name = event_type_of(model).name
                self._check_open()
                if name in self._routes:
                    raise ValueError(f"{self.queue} already handles {name}")
                self._routes[name] = _Route(model, handler)
            return handler

        return register

    def on_unregistered(self, model: type[D]) -> Callable[[Handler[D]], Handler[D]]:
        """Handle event types this process has no contract for, read through ``model`` (see
        ``decode_event``). The queue then receives every event of the exchange; types without a
        handler are acknowledged and counted in ``pipedesk_events_unknown_total``."""

        def register(handler: Handler[D]) -> Handler[D]:
            self._check_open()
            if self._unregistered is not None:
                raise ValueError(f"{self.queue} already handles unregistered types")
            self._unregistered = _Route(model, handler)
            return handler

        return register

    def _check_open(self) -> None:
        if self._frozen:
            raise RuntimeError(f"{self.queue} is being consumed: register handlers before")

    def freeze(self) -> None:
        """No handler may be added from now on (its queue's bindings are being declared)."""
        self._frozen = True

    @property
    def routing_keys(self) -> list[str]:
        if self._unregistered is not None:
            return ["#"]
        types = registered_types()
        return sorted({types[name].routing_key for name in self._routes})

    @property
    def event_types(self) -> list[str]:
        """The event types with a handler here."""
        return sorted(self._routes)

    @property
    def unregistered_model(self) -> type[EventData] | None:
        """The model events without a contract are read through, if any."""
        return self._unregistered.model if self._unregistered is not None else None

    def _route_for(self, event: Event[EventData]) -> _Route[Any] | None:
        route = self._routes.get(event.type.name)
        fallback = self._unregistered
        if route is None and fallback is not None and event.type.model is fallback.model:
            return fallback
        return route

    def handles(self, event: Event[EventData]) -> bool:
        return self._route_for(event) is not None

    async def apply(
        self, sessionmaker: async_sessionmaker[AsyncSession], event: Event[EventData]
    ) -> Outcome:
        """Apply ``event`` once: its handler and its inbox row in one transaction."""
        route = self._route_for(event)
        if route is None:
            return "unhandled"
        async with sessionmaker() as session, session.begin():
            return await self._admit_and_deliver(session, route, event)

    @asynccontextmanager
    async def transaction(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> AsyncIterator[Batch]:
        """One transaction applying several events, each once (``Batch.apply``); it commits when
        the block ends, and nothing of it does if the block or the commit raises."""
        async with sessionmaker() as session, session.begin():
            yield Batch(self, session)

    async def _admit_and_deliver(
        self, session: AsyncSession, route: _Route[Any], event: Event[EventData]
    ) -> Outcome:
        admission = await inbox.admit(session, self.tables, self.queue, event)
        if admission != "new":
            return admission
        await route.deliver(session, event)
        return "applied"

    async def prune_inbox(
        self, sessionmaker: async_sessionmaker[AsyncSession], retention: timedelta
    ) -> int:
        """Forget this queue's processed event ids older than ``retention``."""
        return await inbox.prune(sessionmaker, self.tables, self.queue, retention)


class Batch:
    """Events applied in one transaction (``Consumer.transaction``), each as ``Consumer.apply``
    would: its inbox row and its handler's effect together, in a savepoint of its own. An event
    earlier in the batch counts as applied for a later one: the same event twice is a duplicate
    the second time, an older version after a newer one is stale."""

    def __init__(self, consumer: Consumer, session: AsyncSession) -> None:
        self.consumer = consumer
        self.session = session

    async def apply(self, event: Event[EventData]) -> Outcome:
        """Apply ``event`` within the batch. A failing handler raises with its event's inbox row
        and effect rolled back, and nothing else: the batch goes on and commits without it."""
        route = self.consumer._route_for(event)
        if route is None:
            return "unhandled"
        try:
            async with self.session.begin_nested():
                return await self.consumer._admit_and_deliver(self.session, route, event)
        finally:
            # Each event's handler starts from the database, as in a session of its own.
            self.session.expunge_all()
