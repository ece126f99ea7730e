"""The timeline service process: its API, the consumer that fills it, and the change listener
that feeds its live streams."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import Gauge
from redis.asyncio import Redis
from sqlalchemy import text

from pipedesk_common.access import AccessReplica
from pipedesk_common.app import ServiceContext, create_app, reconnect_backoff, stop_task
from pipedesk_common.clock import Clock, SystemClock
from pipedesk_common.consumer import Consumer
from pipedesk_common.lifecycle import lifecycle_router
from timeline_service.api import router
from timeline_service.cache import PageCache
from timeline_service.internal_api import internal
from timeline_service.lifecycle import timeline_lifecycle
from timeline_service.models import TEXT_SEARCH_INDEX, access_replica, inbox, lifecycle_answers
from timeline_service.projection import bump_access_version, subscribe_projection
from timeline_service.settings import TimelineSettings
from timeline_service.streams import ChangeListener

ITEMS_QUEUE = "timeline.items"
# The events a backlog is applied with per transaction: each in a savepoint of its own, and no
# more than PostgreSQL caches per transaction (64) before every snapshot slows down.
ITEMS_BATCH = 50
SEARCH_INDEX = Gauge(
    "pipedesk_timeline_search_index",
    "1 when the timeline search (q) has its trigram index (pg_trgm), 0 when it scans",
)


async def search_index_in_use(context: ServiceContext) -> bool:
    async with context.engine.connect() as connection:
        found = await connection.scalar(
            text("SELECT 1 FROM pg_indexes WHERE schemaname = 'timeline' AND indexname = :name"),
            {"name": TEXT_SEARCH_INDEX},
        )
    return found is not None


def build_app(settings: TimelineSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or TimelineSettings()
    clock = clock or SystemClock()
    consumer = Consumer(ITEMS_QUEUE, inbox, batch_size=ITEMS_BATCH)

    def context() -> ServiceContext:
        current: ServiceContext = app.state.context
        return current

    replica = AccessReplica(
        access_replica,
        crm_url=settings.crm_base_url,
        http=lambda: context().http,
        issuer=lambda: context().issuer(),
        on_stored=bump_access_version,
    )
    replica.subscribe(consumer)
    subscribe_projection(consumer, clock)
    listener = ChangeListener(
        settings.database_url, clock=clock, backoff=reconnect_backoff(settings)
    )

    @asynccontextmanager
    async def live(service: ServiceContext) -> AsyncIterator[None]:
        SEARCH_INDEX.set(1 if await search_index_in_use(service) else 0)
        redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
        app.state.page_cache = PageCache(redis, prefix=f"{settings.broker_prefix}timeline:page:")
        task = asyncio.create_task(listener.run(), name="timeline-change-listener")
        try:
            yield
        finally:
            listener.stop()
            await stop_task(task)
            await app.state.page_cache.close()

    app = create_app(
        settings,
        title="PipeDesk timeline",
        description="One merged, access-controlled, live feed per CRM record.",
        routers=[router, internal, lifecycle_router(timeline_lifecycle, lifecycle_answers)],
        clock=clock,
        consumers=[consumer],
        lifespans=[live],
    )
    app.state.access_replica = replica
    app.state.change_listener = listener
    return app
