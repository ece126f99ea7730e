"""``PUT /internal/leads/{id}/sla``: the automation service sets a lead's SLA due time.

While an org's SLA policy applies to a lead, the automation service owns its ``sla_due_at``
(``sla_managed``) and clients may not write it. The change is audited as ``svc:automation``
and published like any other change of the lead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crm_service.audit import ACTOR_KEY, Actor
from crm_service.repository import LeadRepository
from pipedesk_common.app import ContextDep
from pipedesk_common.auth import ServiceCaller
from pipedesk_common.db import SessionDep
from pipedesk_common.errors import InvalidInput, NotFound, problem_responses
from pipedesk_common.ids import OpaqueId
from pipedesk_common.internal import callers, internal_problems

SLA_WRITERS = ("automation",)

internal_sla = APIRouter(prefix="/internal/leads", tags=["internal"])


class LeadSlaWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org_id: OpaqueId = Field(description="The lead's org (another org's lead is not found)")
    sla_due_at: AwareDatetime | None = Field(description="The due time the policy gives")
    managed: bool = Field(
        description="A policy applies: clients may not write `sla_due_at` while it does"
    )


class LeadSlaPublic(BaseModel):
    id: UUID
    sla_due_at: datetime | None
    sla_managed: bool
    version: int


@internal_sla.put(
    "/{lead_id}/sla",
    summary="Set a lead's SLA due time (callers: automation)",
    description="Audited as `svc:automation`; a write that changes nothing is not a change. "
    "A lead in the trash, or of another org, is not found.",
    responses={**internal_problems(), **problem_responses(NotFound, InvalidInput)},
)
async def put_lead_sla(
    lead_id: UUID,
    data: LeadSlaWrite,
    caller: Annotated[ServiceCaller, Depends(callers(*SLA_WRITERS))],
    session: SessionDep,
    context: ContextDep,
) -> LeadSlaPublic:
    lead = await LeadRepository(session).get(data.org_id, lead_id, for_update=True)
    if lead is None or lead.deleted_at is not None:
        raise NotFound("no such lead")
    if lead.sla_due_at != data.sla_due_at or lead.sla_managed != data.managed:
        session.info[ACTOR_KEY] = Actor(lead.org_id, f"svc:{caller.name}", context.clock)
        lead.sla_due_at = data.sla_due_at
        lead.sla_managed = data.managed
        lead.updated_at = context.clock.now()
        lead.version += 1
        await session.flush()
        await session.refresh(lead)
    return LeadSlaPublic(
        id=lead.id, sla_due_at=lead.sla_due_at, sla_managed=lead.sla_managed, version=lead.version
    )
