"""The lifecycle contract: what each service does when a user's (later: an org's) life in
PipeDesk changes, behind one internal route per step, called by the CRM only.

The CRM coordinates (``LIFECYCLE_CALLERS``): the users live in its directory, the records to
hand over are its own, and its audit log and job row record the whole operation. A service
joins the lifecycle by implementing ``UserLifecycle`` and serving ``lifecycle_router``; the CRM
lists the services it calls in ``CRM_LIFECYCLE_SERVICES``.

- ``POST /internal/lifecycle/users/{user_id}/deactivated`` (body ``{org_id, actor_id,
  job_id}``): the user was deactivated; stop everything of theirs in this service (push
  channels and watches stopped at Google, pending syncs dropped, derived shares removed, their
  Google grant revoked) and answer what was ended, by kind. Idempotent: a second call ends
  nothing more and answers zeros. Before the service's own part, the process refuses the
  user's tokens (``SignInRefusals``) at once.
- ``POST /internal/lifecycle/users/{user_id}/reactivated`` (body ``{org_id}``): the user may
  sign in again; the process stops refusing them at once. Nothing ended is restored.
- ``POST /internal/lifecycle/users/{user_id}/google-data-deleted`` (body ``{org_id, actor_id,
  job_id}``): delete everything this service holds that came from the user's Google account
  (channels and watches stopped at Google first, then mirror rows, sync state, caches; the
  grant itself, for the accounts service) and answer what was deleted, by kind. Idempotent.
- ``POST /internal/lifecycle/orgs/{org_id}/offboarded`` (body ``{actor_id, job_id}``): the org
  leaves PipeDesk; stop at Google what runs for any of its users, then delete every row of the
  org this service holds, and answer what was deleted, by kind. Idempotent.

A step's answer is ``200`` with ``LifecyclePartPublic`` once the service's part is done; any
other answer leaves it to the CRM to call again (the part is not done).
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from pipedesk_common.app import ContextDep
from pipedesk_common.auth import ServiceCaller
from pipedesk_common.errors import InvalidInput, problem_responses
from pipedesk_common.internal import callers, internal_problems

# The coordinating service: the CRM holds the directory, the records and the audit log.
LIFECYCLE_CALLERS = ("crm",)
LIFECYCLE_PREFIX = "/internal/lifecycle"


class UserDeactivation(BaseModel):
    """Who was deactivated, by whom, in which job of the CRM."""

    model_config = ConfigDict(extra="forbid")

    org_id: str = Field(min_length=1, max_length=255)
    actor_id: str = Field(min_length=1, max_length=255, description="The admin who asked")
    job_id: str = Field(min_length=1, max_length=64, description="The CRM's deactivation job")


class GoogleDataDeletion(BaseModel):
    """Whose Google data is deleted, by whom, in which job of the CRM."""

    model_config = ConfigDict(extra="forbid")

    org_id: str = Field(min_length=1, max_length=255)
    actor_id: str = Field(min_length=1, max_length=255, description="The admin who asked")
    job_id: str = Field(min_length=1, max_length=64, description="The CRM's deletion job")


class OrgOffboarding(BaseModel):
    """Which admin offboarded the org, in which job of the CRM."""

    model_config = ConfigDict(extra="forbid")

    actor_id: str = Field(min_length=1, max_length=255, description="The admin who asked")
    job_id: str = Field(min_length=1, max_length=64, description="The CRM's offboarding job")


class UserReactivation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org_id: str = Field(min_length=1, max_length=255)


class LifecyclePartPublic(BaseModel):
    """One service's part of a lifecycle step, done."""

    service: str
    ended: dict[str, int] = Field(
        default_factory=dict,
        description="What this call ended or deleted, by kind (e.g. `channels`, `shares`, "
        "`grants`, `events`); zeros when an earlier call had done it all",
    )


class UserLifecycle(Protocol):
    """What a service does in the user lifecycle (one method per step)."""

    async def user_deactivated(
        self, deactivation: UserDeactivation, user_id: str
    ) -> dict[str, int]:
        """Stop everything of the user's in this service; what was ended, by kind.
        Idempotent: once everything is ended, it ends nothing more."""
        ...

    async def user_google_data_deleted(
        self, deletion: GoogleDataDeletion, user_id: str
    ) -> dict[str, int]:
        """Delete everything this service holds that came from the user's Google account
        (what is running at Google stopped first); what was deleted, by kind. Idempotent."""
        ...

    async def org_offboarded(self, offboarding: OrgOffboarding, org_id: str) -> dict[str, int]:
        """Delete every row of the org in this service (what is running at Google for its
        users stopped first); what was deleted, by kind. Idempotent."""
        ...


UserIdPath = Annotated[str, Path(min_length=1, max_length=255)]


def lifecycle_router(participant: Callable[..., Awaitable[UserLifecycle]]) -> APIRouter:
    """The lifecycle routes of a service whose part ``participant`` (a FastAPI dependency,
    taking what it needs: the context, a session…) answers."""
    router = APIRouter(prefix=LIFECYCLE_PREFIX, tags=["internal"])
    callers_list = ", ".join(LIFECYCLE_CALLERS)

    @router.post(
        "/users/{user_id:path}/deactivated",
        summary=f"A user was deactivated: stop everything of theirs (callers: {callers_list})",
        responses={**internal_problems(), **problem_responses(InvalidInput)},
    )
    async def user_deactivated(
        user_id: UserIdPath,
        body: UserDeactivation,
        caller: Annotated[ServiceCaller, Depends(callers(*LIFECYCLE_CALLERS))],
        context: ContextDep,
        part: Annotated[UserLifecycle, Depends(participant)],
    ) -> LifecyclePartPublic:
        context.refusals.refuse(body.org_id, user_id)
        ended = await part.user_deactivated(body, user_id)
        return LifecyclePartPublic(service=context.settings.service_name, ended=ended)

    @router.post(
        "/users/{user_id:path}/reactivated",
        summary=f"A user was reactivated: they may sign in again (callers: {callers_list})",
        responses={**internal_problems(), **problem_responses(InvalidInput)},
    )
    async def user_reactivated(
        user_id: UserIdPath,
        body: UserReactivation,
        caller: Annotated[ServiceCaller, Depends(callers(*LIFECYCLE_CALLERS))],
        context: ContextDep,
    ) -> LifecyclePartPublic:
        context.refusals.allow(body.org_id, user_id)
        return LifecyclePartPublic(service=context.settings.service_name)

    @router.post(
        "/users/{user_id:path}/google-data-deleted",
        summary=f"Delete what came from a user's Google account (callers: {callers_list})",
        responses={**internal_problems(), **problem_responses(InvalidInput)},
    )
    async def user_google_data_deleted(
        user_id: UserIdPath,
        body: GoogleDataDeletion,
        caller: Annotated[ServiceCaller, Depends(callers(*LIFECYCLE_CALLERS))],
        context: ContextDep,
        part: Annotated[UserLifecycle, Depends(participant)],
    ) -> LifecyclePartPublic:
        deleted = await part.user_google_data_deleted(body, user_id)
        return LifecyclePartPublic(service=context.settings.service_name, ended=deleted)

    @router.post(
        "/orgs/{org_id:path}/offboarded",
        summary=f"An org leaves: delete everything of it (callers: {callers_list})",
        responses={**internal_problems(), **problem_responses(InvalidInput)},
    )
    async def org_offboarded(
        org_id: UserIdPath,
        body: OrgOffboarding,
        caller: Annotated[ServiceCaller, Depends(callers(*LIFECYCLE_CALLERS))],
        context: ContextDep,
        part: Annotated[UserLifecycle, Depends(participant)],
    ) -> LifecyclePartPublic:
        deleted = await part.org_offboarded(body, org_id)
        return LifecyclePartPublic(service=context.settings.service_name, ended=deleted)

    return router
