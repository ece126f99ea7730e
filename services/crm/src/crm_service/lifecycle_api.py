"""Users leaving: deactivation (a resumable job) and reactivation, for admins; and the list of
deactivated users every other service reads to refuse their tokens."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Response, status
from pydantic import BaseModel, Field

from crm_service.api import CallerDep
from crm_service.deletion import GoogleDataDeletions, report_of
from crm_service.directory import offboarded_orgs, upsert_caller
from crm_service.directory_api import UserIdPath
from crm_service.lifecycle import LifecycleContext, UserLifecycle, deactivated_users, in_order
from crm_service.models import GoogleDataDeletionJob, UserDeactivationJob
from crm_service.schemas import (
    DataDeletionPublic,
    DeletionPartPublic,
    OrgOffboard,
    UserDeactivate,
    UserDeactivationPublic,
    UserPublic,
)
from pipedesk_common.app import ContextDep, PrincipalDep
from pipedesk_common.auth import Principal, ServiceCaller
from pipedesk_common.db import SessionDep
from pipedesk_common.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthorized,
    problem_responses,
)
from pipedesk_common.ids import id_path
from pipedesk_common.internal import callers, internal_problems
from pipedesk_common.signin import OrgOffboarded, RefusedUser

# Every service refuses deactivated users' tokens, the gateway included.
REFUSAL_READERS = (
    "accounts", "automation", "calendar", "drive", "gateway", "gmail", "tasks", "timeline",
)  # fmt: skip

user_lifecycle = APIRouter(prefix="/api/users", tags=["directory"])
org_lifecycle = APIRouter(prefix="/api/org", tags=["directory"])
internal_refusals = APIRouter(prefix="/internal/users", tags=["internal"])


async def lifecycle(context: ContextDep) -> UserLifecycle:
    return UserLifecycle(LifecycleContext.of(context))


LifecycleDep = Annotated[UserLifecycle, Depends(lifecycle)]


def _public(job: UserDeactivationJob) -> UserDeactivationPublic:
    public = UserDeactivationPublic.model_validate(job)
    public.parts = {name: public.parts[name] for name in in_order(job.parts)}
    return public


@user_lifecycle.post(
    "/{user_id:path}/deactivate",
    status_code=status.HTTP_201_CREATED,
    summary="Deactivate a user: sign-in refused, Google ended, records handed over (admins)",
    description=(
        "Marks the user inactive (every service refuses their token from then on: the CRM at "
        "once, the others within `AUTH_REFUSALS_REFRESH_SECONDS`), has every service of the "
        "lifecycle stop their channels, watches, syncs and derived Drive shares and the "
        "accounts service revoke their Google grant, and hands each lead and deal they own to "
        "`reassign_to` (or their team's manager) as an owner change, audited with `caused_by` "
        "= the job's `audit_id`. Answers the job: `201` when this request started it, `200` "
        "when it repeats one (an unfinished job is resumed: what is done is not done again; "
        "a finished one is answered as it is; one another request is running is answered as it "
        "stands, `running`, without running anything). `status: running` after the answer "
        "means a service's part failed, or another request is finishing the job: repeat the "
        "request (or read the job) to see it finished."
    ),
    responses={
        200: {
            "model": UserDeactivationPublic,
            "description": "An earlier job, resumed, done, or being run by another request",
        },
        **problem_responses(Unauthorized, Forbidden, NotFound, Conflict, InvalidInput),
    },
)
async def deactivate_user(
    user_id: UserIdPath,
    principal: CallerDep,
    service: LifecycleDep,
    response: Response,
    data: Annotated[UserDeactivate | None, Body()] = None,
) -> UserDeactivationPublic:
    job, created = await service.deactivate(principal, user_id, data or UserDeactivate())
    location = id_path("/api/users", user_id) + f"/deactivations/{job.id}"
    response.headers["Location"] = location
    if not created:
        response.status_code = status.HTTP_200_OK
    return _public(job)


@user_lifecycle.get(
    "/{user_id:path}/deactivations/{job_id}",
    summary="A user's deactivation job and each service's part (admins)",
    description=(
        "The job as the deactivation answered it (its `Location`), and as it stands now: "
        "each service's part, the records handed over, `completed` once all is done. A job of "
        "another org, or of another user, is `404`."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput),
)
async def get_deactivation(
    user_id: UserIdPath, job_id: UUID, principal: CallerDep, service: LifecycleDep
) -> UserDeactivationPublic:
    return _public(await service.job(principal, user_id, job_id))


@user_lifecycle.post(
    "/{user_id:path}/reactivate",
    summary="Reactivate a deactivated user: sign-in restored, not their records (admins)",
    description=(
        "The user may sign in again (every service stops refusing their token within "
        "`AUTH_REFUSALS_REFRESH_SECONDS`); the records handed over stay with their new owners "
        "and the Google connection stays revoked until they connect again. `409` when the "
        "user is active or their deactivation has not finished."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, Conflict),
)
async def reactivate_user(
    user_id: UserIdPath, principal: CallerDep, service: LifecycleDep
) -> UserPublic:
    return UserPublic.model_validate(await service.reactivate(principal, user_id))


async def deletions(context: ContextDep) -> GoogleDataDeletions:
    return GoogleDataDeletions(LifecycleContext.of(context))


DeletionsDep = Annotated[GoogleDataDeletions, Depends(deletions)]


def deletion_public(job: GoogleDataDeletionJob) -> DataDeletionPublic:
    return DataDeletionPublic(
        id=job.id,
        org_id=job.org_id,
        scope="org" if job.scope == "org" else "user",
        user_id=job.user_id,
        requested_by=job.requested_by,
        audit_id=job.audit_id,
        status="completed" if job.status == "completed" else "running",
        parts={
            name: DeletionPartPublic(
                state=job.parts[name]["state"],
                deleted=job.parts[name].get("ended") or {},
                error=job.parts[name].get("error"),
                done_at=job.parts[name].get("done_at"),
            )
            for name in in_order(job.parts)
        },
        report=report_of(job),
        created_at=job.created_at,
        updated_at=job.updated_at,
        completed_at=job.completed_at,
    )


@user_lifecycle.post(
    "/{user_id:path}/delete-google-data",
    status_code=status.HTTP_201_CREATED,
    summary="Delete everything that came from a user's Google account, everywhere (admins)",
    description=(
        "Has every service of the lifecycle delete what it holds from the user's Google "
        "account: mirrored events, tasks, mail and Drive accounts, sync state, push channels "
        "and watches (stopped at Google first), the timeline copies only they held; the "
        "accounts service then revokes and forgets their grant. The user stays a user of the "
        "org (sign-in, records). Answers the job with each service's part and its counts: "
        "`201` when this request started it, `200` when it resumes an unfinished one (the "
        "parts done are not run again), or when another request is running it (answered as "
        "it stands, nothing run). `status: running` after the answer means a part failed, "
        "or another request is finishing it: repeat the request to finish it. The audit log "
        "records the request and the counts, never what was deleted."
    ),
    responses={
        200: {
            "model": DataDeletionPublic,
            "description": "An unfinished job, resumed, or being run by another request",
        },
        **problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput),
    },
)
async def delete_google_data(
    user_id: UserIdPath, principal: CallerDep, service: DeletionsDep, response: Response
) -> DataDeletionPublic:
    job, created = await service.delete_user_data(principal, user_id)
    location = id_path("/api/users", user_id) + f"/google-data-deletions/{job.id}"
    response.headers["Location"] = location
    if not created:
        response.status_code = status.HTTP_200_OK
    return deletion_public(job)


@user_lifecycle.get(
    "/{user_id:path}/google-data-deletions/{job_id}",
    summary="A deletion of a user's Google data and each service's part (admins)",
    description=(
        "The job as its request answered it (its `Location`), and as it stands now. A job of "
        "another org, or of another user, is `404`."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput),
)
async def get_google_data_deletion(
    user_id: UserIdPath, job_id: UUID, principal: CallerDep, service: DeletionsDep
) -> DataDeletionPublic:
    return deletion_public(await service.job(principal, user_id, job_id))


async def offboarding_caller(
    principal: PrincipalDep, session: SessionDep, context: ContextDep
) -> Principal:
    """The caller upserted as on every route, but an org whose offboarding is unfinished lets
    its admin resume it (an offboarded org is refused, ``403 org-offboarded``)."""
    await upsert_caller(session, principal, context.clock, resuming_offboarding=True)
    return principal


@org_lifecycle.post(
    "/offboard",
    status_code=status.HTTP_201_CREATED,
    summary="Offboard the organization: everything of it deleted in every service (admins)",
    description=(
        "The organization leaves PipeDesk: every service of the lifecycle stops what runs at "
        "Google for its users (push channels, Gmail watches, grants revoked) and deletes every "
        "row of the org, then the CRM deletes its own (records, directory, audit log). Only "
        "the job row is kept, with each service's counts: the record that the offboarding "
        "happened. The org's admin asks, typing the org's id again in `confirm_org_id` (`422` "
        "otherwise). Answers the job: `201` when this request started it, `200` when it "
        "resumes an unfinished one, or when another request is running it (answered as it "
        "stands, `running`, nothing run). From the job's start every service refuses the org's "
        "users (`403 org-offboarded`), but this request resuming an unfinished job, until an "
        "operator onboards the org again (`python -m crm_service.reonboard`); a completed "
        "offboarding is refused too."
    ),
    responses={
        200: {
            "model": DataDeletionPublic,
            "description": "An unfinished job, resumed, or being run by another request",
        },
        **problem_responses(Unauthorized, Forbidden, OrgOffboarded, InvalidInput),
    },
)
async def offboard_org(
    data: OrgOffboard,
    principal: Annotated[Principal, Depends(offboarding_caller)],
    service: DeletionsDep,
    response: Response,
) -> DataDeletionPublic:
    job, created = await service.offboard_org(principal, data)
    if not created:
        response.status_code = status.HTTP_200_OK
    return deletion_public(job)


class RefusedUsersPublic(BaseModel):
    items: list[RefusedUser]
    offboarded_orgs: list[str] = Field(
        description="The orgs offboarded (their job started) and not onboarded again"
    )


@internal_refusals.get(
    "/deactivated",
    summary="Every deactivated user of every org and every offboarded org "
    f"(callers: {', '.join(REFUSAL_READERS)})",
    responses=internal_problems(),
)
async def list_deactivated(
    caller: Annotated[ServiceCaller, Depends(callers(*REFUSAL_READERS))], session: SessionDep
) -> RefusedUsersPublic:
    return RefusedUsersPublic(
        items=[
            RefusedUser(org_id=org_id, id=user_id)
            for org_id, user_id in await deactivated_users(session)
        ],
        offboarded_orgs=await offboarded_orgs(session),
    )


__all__ = ["internal_refusals", "org_lifecycle", "user_lifecycle"]
