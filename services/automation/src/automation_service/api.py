"""The automation API: attachments of a message saved into a record's Drive folder, and the
job that does it."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status

from automation_service.jobs import create_job, read_job, writable_record
from automation_service.schemas import AttachmentsToDrive, JobPublic
from automation_service.settings import AutomationSettings
from pipedesk_common.access import AccessReplica
from pipedesk_common.app import ContextDep, PrincipalDep, provided
from pipedesk_common.auth import bearer_token
from pipedesk_common.db import SessionDep
from pipedesk_common.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    problem_responses,
)
from pipedesk_common.idempotent import IDEMPOTENCY_PROBLEMS, IDEMPOTENT

router = APIRouter(prefix="/api/automation", tags=["automation"])

ReplicaDep = Annotated[AccessReplica, Depends(provided(AccessReplica))]
SettingsDep = Annotated[AutomationSettings, Depends(provided(AutomationSettings))]


@router.post(
    "/attachments-to-drive",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Save a message's attachments into a lead's or deal's `Email attachments` folder",
    description=(
        "You need to see the message in full (your own mail, or a teammate's shared in full on "
        "a record you read) and to be allowed to change the record. Answers the job at once; "
        "its attachments are saved one at a time (`GET /api/automation/jobs/{id}`). Each "
        "(message, attachment, record) becomes one file, however often it is asked for. With "
        "`Idempotency-Key`, a retry answers the first job."
    ),
    responses=problem_responses(
        Unauthorized, Forbidden, NotFound, InvalidInput, ServiceUnavailable, *IDEMPOTENCY_PROBLEMS
    ),
    dependencies=[IDEMPOTENT],
)
async def attachments_to_drive(
    data: AttachmentsToDrive,
    request: Request,
    response: Response,
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
    replica: ReplicaDep,
    settings: SettingsDep,
) -> JobPublic:
    await writable_record(session, replica, principal, data.record)
    token = bearer_token(request.headers.get("Authorization"))
    job = await create_job(session, context, principal, token, data, settings)
    response.headers["Location"] = f"/api/automation/jobs/{job.id}"
    return job


@router.get(
    "/jobs/{job_id}",
    summary="A job's progress and each attachment's outcome",
    description="Jobs you asked for (admins: any of the org's); `404` otherwise.",
    responses=problem_responses(Unauthorized, NotFound),
)
async def get_job(job_id: UUID, principal: PrincipalDep, session: SessionDep) -> JobPublic:
    return await read_job(session, principal, job_id)
