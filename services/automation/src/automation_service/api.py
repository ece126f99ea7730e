"""The automation API: attachments of a message saved into a record's Drive folder, and the
job that does it."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Response, status
from sqlalchemy.dialects.postgresql import insert

from automation_service.jobs import create_job, job_public, read_job, writable_record
from automation_service.models import NotificationPreference, OrgAutomationSettings
from automation_service.notifications import notify_previous_owner, preferences_of
from automation_service.rules import (
    create_rule,
    delete_rule,
    rule_jobs,
    rule_of,
    rules_of,
    update_rule,
)
from automation_service.schemas import (
    AttachmentsToDrive,
    AutomationSettingsPublic,
    AutomationSettingsWrite,
    JobPublic,
    JobsPage,
    PreferencesPublic,
    PreferencesWrite,
    RuleCreate,
    RulePublic,
    RuleUpdate,
)
from automation_service.settings import AutomationSettings
from pipedesk_common.access import AccessReplica
from pipedesk_common.app import ContextDep, PrincipalDep, provided
from pipedesk_common.auth import Role
from pipedesk_common.db import SessionDep
from pipedesk_common.errors import (
    Forbidden,
    InvalidCursor,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    problem_responses,
)
from pipedesk_common.idempotent import IDEMPOTENCY_PROBLEMS, IDEMPOTENT
from pipedesk_common.pagination import Page, PageCursor, PageLimit

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
    response: Response,
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
    replica: ReplicaDep,
    settings: SettingsDep,
) -> JobPublic:
    await writable_record(session, replica, principal, data.record)
    job = await create_job(session, context, principal, data, settings)
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
    return await preferences_of(session, principal.org_id, principal.sub)


@router.put(
    "/preferences",
    summary="Choose which notifications you get (your own)",
    description="`owner_changed`: the email when a lead or deal is handed to you (or taken from "
    "you, when the org tells previous owners). `sla_warning` and `sla_breached`: the emails "
    "when a lead you are told about nears or passes its SLA due time (the alert still reaches "
    "the lead's timeline). The kinds given change, the others keep their choice; each takes "
    "effect for what happens from now on.",
    responses=problem_responses(Unauthorized, InvalidInput),
)
async def write_preferences(
    data: PreferencesWrite, principal: PrincipalDep, session: SessionDep
) -> PreferencesPublic:
    for kind, enabled in data.model_dump(exclude_none=True).items():
        statement = insert(NotificationPreference).values(
            org_id=principal.org_id, user_id=principal.sub, kind=kind, enabled=enabled
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["org_id", "user_id", "kind"],
                set_={"enabled": statement.excluded.enabled},
            )
        )
    return await preferences_of(session, principal.org_id, principal.sub)


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


@router.post(
    "/rules",
    status_code=status.HTTP_201_CREATED,
    summary="Create a rule (admins)",
    description=(
        "Save the attachments of mail matched to a deal (optionally in given `stages`) or a "
        "lead into the record's `Email attachments` folder, filtered by `sender_domains`, "
        "`file_types` and size. The rule reads mail for you (its acting admin): it saves from "
        "messages you see in full. Anyone but an admin is refused (`403`)."
    ),
    responses=problem_responses(Unauthorized, Forbidden, InvalidInput),
)
async def post_rule(
    data: RuleCreate,
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
    response: Response,
) -> RulePublic:
    rule = await create_rule(session, principal, data, context.clock)
    response.headers["Location"] = f"/api/automation/rules/{rule.id}"
    return RulePublic.model_validate(rule)


@router.get(
    "/rules",
    summary="The org's rules",
    description="Readable by anyone of the org, oldest first; a page at a time: pass "
    "`next_cursor` back as `cursor`.",
    responses=problem_responses(Unauthorized, InvalidCursor),
)
async def list_rules(
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[RulePublic]:
    rules = [RulePublic.model_validate(rule) for rule in await rules_of(session, principal)]
    return context.cursors.listed_page(
        rules,
        limit,
        cursor,
        key=lambda rule: [rule.created_at.isoformat(), str(rule.id)],
        scope=f"rules:{principal.org_id}",
    )


@router.get(
    "/rules/{rule_id}",
    summary="A rule of the org",
    description="A rule of another org is `404`.",
    responses=problem_responses(Unauthorized, NotFound),
)
async def get_rule(rule_id: UUID, principal: PrincipalDep, session: SessionDep) -> RulePublic:
    return RulePublic.model_validate(await rule_of(session, principal, rule_id))


@router.patch(
    "/rules/{rule_id}",
    summary="Change a rule (admins)",
    description=(
        "The fields given change; the others stay (`stages: null`: any stage). You become the "
        "rule's acting admin, and a paused rule runs again. Anyone but an admin is refused "
        "(`403`); a rule of another org is `404`."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput),
)
async def patch_rule(
    rule_id: UUID,
    data: RuleUpdate,
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
) -> RulePublic:
    return RulePublic.model_validate(
        await update_rule(session, principal, rule_id, data, context.clock)
    )


@router.delete(
    "/rules/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a rule (admins)",
    description="Its jobs stay readable (without their rule). Anyone but an admin is refused "
    "(`403`); a rule of another org is `404`.",
    responses=problem_responses(Unauthorized, Forbidden, NotFound),
)
async def remove_rule(rule_id: UUID, principal: PrincipalDep, session: SessionDep) -> None:
    await delete_rule(session, principal, rule_id)


@router.get(
    "/rules/{rule_id}/jobs",
    summary="The jobs a rule made, newest first (admins)",
    description="Each job as `GET /api/automation/jobs/{id}` shows it; a page at a time: pass "
    "`next_cursor` back as `cursor`.",
    responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidCursor),
)
async def list_rule_jobs(
    rule_id: UUID,
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> JobsPage:
    scope = f"rule-jobs:{rule_id}"
    after = context.cursors.decode_keyset(cursor, scope=scope) if cursor else None
    found = await rule_jobs(session, principal, rule_id, after=after, limit=limit + 1)
    items = [job_public(job, rows) for job, rows in found[:limit]]
    next_cursor = None
    if len(found) > limit:
        last = found[limit - 1][0]
        next_cursor = context.cursors.encode_keyset(last.created_at, last.id, scope=scope)
    return JobsPage(items=items, next_cursor=next_cursor)
