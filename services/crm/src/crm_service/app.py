"""The CRM service process: ``uvicorn crm_service.app:app`` (or ``python -m crm_service``)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from crm_service.api import companies, contacts, deals, internal, leads
from crm_service.audit_api import router as audit
from crm_service.directory_api import internal_users, teams, users
from crm_service.lifecycle import LifecycleContext
from crm_service.lifecycle_api import internal_refusals, org_lifecycle, user_lifecycle
from crm_service.models import idempotency_keys, job_schedule, outbox
from crm_service.resume import LifecycleResumer
from crm_service.service_audit import drive_audit_consumer, gmail_audit_consumer
from crm_service.settings import CrmSettings
from crm_service.sla_api import internal_sla
from pipedesk_common.app import ServiceContext, create_app
from pipedesk_common.clock import Clock
from pipedesk_common.periodic import JobRunner


def build_app(settings: CrmSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or CrmSettings()
    crm_settings = settings

    @asynccontextmanager
    async def resuming(service: ServiceContext) -> AsyncIterator[None]:
        """Unfinished lifecycle jobs resumed on the database-leased scheduler."""
        resumer = LifecycleResumer(LifecycleContext.of(service))
        runner = JobRunner(job_schedule, service.sessionmaker, service.clock, [resumer.periodic()])
        service.provide(runner)
        async with runner.running(crm_settings.jobs_enabled):
            yield

    return create_app(
        settings,
        title="PipeDesk CRM",
        description=(
            "Leads, deals, contacts, companies, notes, the org directory and the audit log (with "
            "the Drive actions and mail links the drive and gmail services report), "
            "with org isolation and role-based access."
        ),
        # The lifecycle's routes before the directory's: ``/api/users/{id:path}`` takes any path.
        routers=[
            leads,
            deals,
            contacts,
            companies,
            user_lifecycle,
            org_lifecycle,
            users,
            teams,
            audit,
            internal,
            internal_refusals,
            internal_users,
            internal_sla,
        ],
        clock=clock,
        lifespans=[resuming],
        outbox=outbox,
        consumers=[drive_audit_consumer(), gmail_audit_consumer()],
        idempotency=idempotency_keys,
        follow_refusals_of_crm=False,  # it reads its own directory on every request
    )
