"""The automation service process: its API, the worker that saves attachments, the rules run
on gmail's message events, and the replica of CRM's access lists it decides with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from automation_service.api import router
from automation_service.lifecycle import automation_lifecycle
from automation_service.models import (
    access_replica,
    idempotency_keys,
    inbox,
    lifecycle_answers,
    outbox,
)
from automation_service.notifications import NotificationSender, subscribe_notifications
from automation_service.rule_runs import subscribe_rules
from automation_service.settings import AutomationSettings
from automation_service.sla_app import sla_wiring
from automation_service.transfers import subscribe_transfers
from pipedesk_common.access import AccessReplica
from pipedesk_common.app import ServiceContext, create_app
from pipedesk_common.clock import Clock
from pipedesk_common.consumer import Consumer
from pipedesk_common.lifecycle import lifecycle_router

ACCESS_QUEUE = "automation.access"
TRANSFERS_QUEUE = "automation.transfers"
CHANGES_QUEUE = "automation.changes"
SENDS_QUEUE = "automation.notifications"
MAIL_QUEUE = "automation.mail"


def build_app(settings: AutomationSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or AutomationSettings()

    def context() -> ServiceContext:
        current: ServiceContext = app.state.context
        return current

    replica = AccessReplica(
        access_replica,
        crm_url=settings.crm_base_url,
        http=lambda: context().http,
        issuer=lambda: context().issuer(),
    )
    access = Consumer(ACCESS_QUEUE, inbox)
    replica.subscribe(access)
    transfers = Consumer(TRANSFERS_QUEUE, inbox)
    subscribe_transfers(transfers, context, settings)
    changes = Consumer(CHANGES_QUEUE, inbox)
    sends = Consumer(SENDS_QUEUE, inbox)
    subscribe_notifications(changes, sends, NotificationSender(context, settings))
    mail = Consumer(MAIL_QUEUE, inbox)
    subscribe_rules(mail, context, settings)
    sla = sla_wiring(settings, context)

    @asynccontextmanager
    async def parts(service: ServiceContext) -> AsyncIterator[None]:
        service.provide(replica)
        service.provide(settings)
        yield

    app = create_app(
        settings,
        title="PipeDesk automation",
        description="Mail attachments saved into records' Drive folders, on request or by "
        "the org's rules, owner-change and SLA emails through the drive and gmail services, "
        "leads' SLA clocks, business calendars and the work queue.",
        routers=[router, lifecycle_router(automation_lifecycle, lifecycle_answers), *sla.routers],
        clock=clock,
        outbox=outbox,
        consumers=[access, transfers, changes, sends, mail, *sla.consumers],
        lifespans=[parts, sla.lifespan],
        idempotency=idempotency_keys,
    )
    return app
