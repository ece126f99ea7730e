"""The SLA parts of the automation process: the consumer that keeps the clocks, the worker and
the sync run by the database-leased scheduler, the feature flags, and their routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from fastapi import APIRouter

from automation_service import queue_api, sla_api
from automation_service.flags import Flags
from automation_service.models import inbox
from automation_service.settings import AutomationSettings
from automation_service.sla import CrmSla, SlaClocks
from automation_service.sla_models import job_schedule
from automation_service.sla_worker import SlaWorker
from pipedesk_common.app import Lifespan, ServiceContext
from pipedesk_common.consumer import Consumer
from pipedesk_common.internal import jobs_router
from pipedesk_common.periodic import JobRunner, PeriodicJob

SLA_QUEUE = "automation.sla"
SCAN_JOB = "automation.sla-scan"
SYNC_JOB = "automation.sla-sync"


@dataclass(frozen=True)
class SlaWiring:
    consumers: list[Consumer]
    routers: list[APIRouter]
    lifespan: Lifespan


def sla_wiring(settings: AutomationSettings, context: Callable[[], ServiceContext]) -> SlaWiring:
    crm = CrmSla(context, settings)
    clocks = SlaClocks(crm, lambda: context().clock)
    consumer = Consumer(SLA_QUEUE, inbox)
    clocks.subscribe(consumer)

    @asynccontextmanager
    async def lifespan(service: ServiceContext) -> AsyncIterator[None]:
        flags = Flags(service.sessionmaker)
        service.provide(flags)
        worker = SlaWorker(lambda: service.sessionmaker, lambda: service.clock, lambda: flags)
        jobs = [
            PeriodicJob(SCAN_JOB, timedelta(seconds=settings.sla_scan_seconds), worker.run),
            PeriodicJob(
                SYNC_JOB,
                timedelta(seconds=settings.sla_sync_seconds),
                lambda: crm.sync_pending(service.sessionmaker),
            ),
        ]
        runner = JobRunner(job_schedule, service.sessionmaker, service.clock, jobs)
        service.provide(runner)
        async with runner.running(settings.jobs_enabled):
            yield

    return SlaWiring(
        consumers=[consumer],
        routers=[
            sla_api.router,
            sla_api.internal_flags,
            queue_api.router,
            jobs_router(SCAN_JOB),
        ],
        lifespan=lifespan,
    )
