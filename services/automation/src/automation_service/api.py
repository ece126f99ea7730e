"""The automation API: attachments of a message saved into a record's Drive folder, and the
job that does it."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy.dialects.postgresql import insert

from automation_service.jobs import create_job, read_job, writable_record
from automation_service.models import NotificationPreference, OrgAutomationSettings
from automation_service.notifications import OWNER_CHANGED, notify_previous_owner, wants
from automation_service.schemas import (
    AttachmentsToDrive,
    AutomationSettingsPublic,
    AutomationSettingsWrite,
    JobPublic,
    PreferencesPublic,
    PreferencesWrite,
)
from automation_service.settings import AutomationSettings
from pipedesk_common.access import AccessReplica
from pipedesk_common.app import ContextDep, PrincipalDep, provided
from pipedesk_common.auth import Role, bearer_token
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


@router.get(
    "/preferences",
    summary="Your notification choices",
    description="Which notification emails you get; a kind you never chose is on.",
    responses=problem_responses(Unauthorized),
)
async def read_preferences(principal: PrincipalDep, session: SessionDep) -> PreferencesPublic:
    return PreferencesPublic(
        owner_changed=await wants(session, principal.org_id, principal.sub, OWNER_CHANGED)
    )


@router.put(
    "/preferences",
    summary="Choose which notifications you get (your own)",
    description="`owner_changed`: the email when a lead or deal is handed to you (or taken from "
    "you, when the org tells previous owners). Takes effect for changes from now on.",
    responses=problem_responses(Unauthorized, InvalidInput),
)
async def write_preferences(
    data: PreferencesWrite, principal: PrincipalDep, session: SessionDep
) -> PreferencesPublic:
    statement = insert(NotificationPreference).values(
        org_id=principal.org_id,
        user_id=principal.sub,
        kind=OWNER_CHANGED,
        enabled=data.owner_changed,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["org_id", "user_id", "kind"],
            set_={"enabled": statement.excluded.enabled},
        )
    )
    return PreferencesPublic(owner_changed=data.owner_changed)


@router.get(
    "/settings",
    summary="The org's automation settings",
    description="Readable by anyone of the org: who gets the owner-change email.",
    responses=problem_responses(Unauthorized),
)
async def read_settings(principal: PrincipalDep, session: SessionDep) -> AutomationSettingsPublic:
    return AutomationSettingsPublic(
        notify_previous_owner=await notify_previous_owner(session, principal.org_id)
    )


@router.put(
    "/settings",
    summary="Change the org's automation settings (admins)",
    description="`notify_previous_owner`: the previous owner gets the owner-change email too. "
    "Anyone but an admin is refused (`403`).",
    responses=problem_responses(Unauthorized, Forbidden, InvalidInput),
)
async def write_settings(
    data: AutomationSettingsWrite, principal: PrincipalDep, session: SessionDep
) -> AutomationSettingsPublic:
    if principal.role is not Role.ADMIN:
        raise Forbidden("only admins change the org's automation settings")
    statement = insert(OrgAutomationSettings).values(
        org_id=principal.org_id, notify_previous_owner=data.notify_previous_owner
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["org_id"],
            set_={"notify_previous_owner": statement.excluded.notify_previous_owner},
        )
    )
    return AutomationSettingsPublic(notify_previous_owner=data.notify_previous_owner)
