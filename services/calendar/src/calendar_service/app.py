"""The calendar service process: its API, the push webhook, the access replica's consumer, and
the periodic channel renewal and reconciliation sync."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from calendar_service.api import internal, router, webhooks
from calendar_service.consumers import subscribe_connection_events
from calendar_service.google import CalendarGoogle
from calendar_service.jobs import calendar_jobs
from calendar_service.models import (
    access_replica,
    channels,
    idempotency_keys,
    inbox,
    job_schedule,
    outbox,
    work_requests,
)
from calendar_service.service import CalendarRuntime
from calendar_service.settings import CalendarSettings
from calendar_service.sync import CalendarSync
from pipedesk_common.access import AccessReplica
from pipedesk_common.app import ServiceContext, create_app
from pipedesk_common.background import BackgroundWork
from pipedesk_common.clock import Clock, SystemClock
from pipedesk_common.coalesce import Coalescer
from pipedesk_common.consumer import Consumer
from pipedesk_common.google import accounts_credentials
from pipedesk_common.google.calls import RetryPolicy
from pipedesk_common.google.credentials import CredentialsProvider
from pipedesk_common.google.push import PushChannels
from pipedesk_common.idempotency import IdempotencyKeys
from pipedesk_common.periodic import JobRunner

INBOUND_QUEUE = "calendar.inbound"


def build_app(
    settings: CalendarSettings | None = None,
    clock: Clock | None = None,
    *,
    credentials: Callable[[ServiceContext], CredentialsProvider] = accounts_credentials,
    retry_policy: RetryPolicy | None = None,
) -> FastAPI:
    settings = settings or CalendarSettings()
    clock = clock or SystemClock()
    consumer = Consumer(INBOUND_QUEUE, inbox)

    def context() -> ServiceContext:
        current: ServiceContext = app.state.context
        return current

    replica = AccessReplica(
        access_replica,
        crm_url=settings.crm_base_url,
        http=lambda: context().http,
        issuer=lambda: context().issuer(),
    )
    replica.subscribe(consumer)
    subscribe_connection_events(consumer, clock)

    @asynccontextmanager
    async def calendar_runtime(context: ServiceContext) -> AsyncIterator[None]:
        google = CalendarGoogle(
            credentials(context), root_url=settings.google_root_url, policy=retry_policy
        )
        sync = CalendarSync(context.sessionmaker, google, clock, page_size=settings.sync_page_size)
        runtime = CalendarRuntime(
            sessionmaker=context.sessionmaker,
            clock=clock,
            google=google,
            replica=replica,
            idempotency=IdempotencyKeys(idempotency_keys, clock),
            coalescer=Coalescer(
                work_requests,
                context.sessionmaker,
                clock,
                lease=timedelta(seconds=settings.sync_lease_seconds),
            ),
            channels=PushChannels(
                channels,
                context.sessionmaker,
                clock,
                secret=settings.channel_secrets[0],
                ttl=timedelta(seconds=settings.channel_ttl_seconds),
                renew_before=timedelta(seconds=settings.channel_renew_before_seconds),
                watch=google.watcher(settings.webhook_address),
                stop=google.stop,
            ),
            background=BackgroundWork(),
            sync_work=sync.run_key,
        )
        runner = JobRunner(
            job_schedule, context.sessionmaker, clock, calendar_jobs(runtime, settings)
        )
        app.state.calendar = runtime
        app.state.jobs = runner
        try:
            async with runner.running(settings.jobs_enabled):
                yield
        finally:
            await runtime.background.close()

    app = create_app(
        settings,
        title="PipeDesk calendar",
        description=(
            "Google Calendar events in the users' calendars, linked to CRM records, mirrored "
            "locally and kept in step by push notifications."
        ),
        routers=[router, webhooks, internal],
        clock=clock,
        lifespans=[calendar_runtime],
        outbox=outbox,
        consumers=[consumer],
    )
    app.state.access_replica = replica
    return app
