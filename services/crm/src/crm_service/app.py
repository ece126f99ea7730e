"""The CRM service process: ``uvicorn crm_service.app:app`` (or ``python -m crm_service``)."""

from fastapi import FastAPI

from crm_service.api import internal, router
from crm_service.models import outbox
from crm_service.settings import CrmSettings
from pipedesk_common.app import create_app
from pipedesk_common.clock import Clock


def build_app(settings: CrmSettings | None = None, clock: Clock | None = None) -> FastAPI:
    return create_app(
        settings or CrmSettings(),
        title="PipeDesk CRM",
        description="Leads, with org isolation and role-based access.",
        routers=[router, internal],
        clock=clock,
        outbox=outbox,
    )
