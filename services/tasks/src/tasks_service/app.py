"""The tasks service process: its API, the access replica's consumer, and the periodic poll."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from pipedesk_common.access import AccessReplica
from pipedesk_common.app import ServiceContext, create_app
from pipedesk_common.background import BackgroundWork
from pipedesk_common.clock import Clock, SystemClock
from pipedesk_common.coalesce import Coalescer
from pipedesk_common.consumer import Consumer
from pipedesk_common.google import accounts_credentials
from pipedesk_common.google.calls import RetryPolicy
from pipedesk_common.google.credentials import CredentialsProvider
from pipedesk_common.idempotency import IdempotencyKeys
from pipedesk_common.periodic import JobRunner
from tasks_service.api import internal, router
from tasks_service.google import TasksGoogle
from tasks_service.jobs import tasks_jobs
from tasks_service.models import (
    access_replica,
    idempotency_keys,
    inbox,
    job_schedule,
    outbox,
    work_requests,
)
from tasks_service.service import TasksRuntime
from tasks_service.settings import TasksSettings
from tasks_service.sync import TasksPoll

INBOUND_QUEUE = "tasks.inbound"


def build_app(
    settings: TasksSettings | None = None,
    clock: Clock | None = None,
    *,
    credentials: CredentialsProvider | None = None,
    retry_policy: RetryPolicy | None = None,
) -> FastAPI:
    settings = settings or TasksSettings()
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

    @asynccontextmanager
    async def tasks_runtime(context: ServiceContext) -> AsyncIterator[None]:
        provider = credentials or accounts_credentials(context)
        google = TasksGoogle(provider, root_url=settings.google_root_url, policy=retry_policy)
        runtime = TasksRuntime(
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
            background=BackgroundWork(),
            poll=TasksPoll(
                context.sessionmaker,
                google,
                clock,
                page_size=settings.poll_page_size,
                overlap=timedelta(seconds=settings.poll_overlap_seconds),
            ),
            create_lease=timedelta(seconds=settings.create_lease_seconds),
        )
        runner = JobRunner(job_schedule, context.sessionmaker, clock, tasks_jobs(runtime, settings))
        app.state.tasks = runtime
        context.provide(runner)
        try:
            async with runner.running(settings.jobs_enabled):
                yield
        finally:
            await runtime.background.close()

    app = create_app(
        settings,
        title="PipeDesk tasks",
        description=(
            "Google Tasks lists and tasks in the users' accounts, linked to CRM records, "
            "assignable within the org, mirrored locally and kept in step by polling."
        ),
        routers=[router, internal],
        clock=clock,
        lifespans=[tasks_runtime],
        outbox=outbox,
        consumers=[consumer],
    )
    app.state.access_replica = replica
    return app
