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
  leaves PipeDesk; the process refuses its users' tokens at once (``403 org-offboarded``), then
  the service stops at Google what runs for any of its users, deletes every row of the org it
  holds, and answers what was deleted, by kind. Idempotent.

One more step is the accounts service's, not the CRM's (``DISCONNECT_CALLERS``), served by the
Google products only (``google_disconnect_router``):

- ``POST /internal/lifecycle/users/{user_id}/google-disconnected`` (body ``{org_id, actor_id,
  products}``): the user (or an admin) disconnects Google for ``products``; the accounts service
  calls it while the grant still works, before it revokes the grant. The product stops at Google
  what runs on the user's account (push channels, watches; kept suspended, to open again if
  they reconnect), drops their pending syncs and answers what it stopped, by kind. A product not
  named answers zeros. Idempotent.

A step's answer is ``200`` with ``LifecyclePartPublic`` once the service's part is done; any
other answer leaves it to the CRM to call again (the part is not done). The answer of a step
with a ``job_id`` is remembered (``pipedesk_common.lifecycle_answers``): called again for the
same job, the step answers the first call's counts, so a job the CRM resumes after dying between
the call and recording the answer reports what an uninterrupted one does.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Table

from pipedesk_common.app import ContextDep, ServiceContext
from pipedesk_common.auth import ServiceCaller
from pipedesk_common.errors import InvalidInput, problem_responses
from pipedesk_common.google.scopes import PRODUCT_SCOPES
from pipedesk_common.internal import callers, internal_problems
from pipedesk_common.lifecycle_answers import LifecycleAnswers

# The coordinating service: the CRM holds the directory, the records and the audit log.
LIFECYCLE_CALLERS = ("crm",)
LIFECYCLE_PREFIX = "/internal/lifecycle"
# The accounts service stops each product before it revokes the grant.
DISCONNECT_CALLERS = ("accounts",)
GOOGLE_DISCONNECTED_PATH = "/users/{user_id}/google-disconnected"


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


class GoogleDisconnection(BaseModel):
    """Whose Google connection ends for which products, by whom."""

    model_config = ConfigDict(extra="forbid")

    org_id: str = Field(min_length=1, max_length=255)
    actor_id: str = Field(
        min_length=1, max_length=255, description="The user themselves, or the admin who asked"
    )
    products: list[str] = Field(
        min_length=1, max_length=len(PRODUCT_SCOPES), description="The products disconnected"
    )

    @field_validator("products")
    @classmethod
    def _known_products(cls, products: list[str]) -> list[str]:
        unknown = sorted(set(products) - set(PRODUCT_SCOPES))
        if unknown:
            raise ValueError(f"unknown products: {', '.join(unknown)}")
        return sorted(set(products))


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


class GoogleDisconnecting(Protocol):
    """What a Google product does when a user disconnects Google for it."""

    async def user_google_disconnected(
        self, disconnection: GoogleDisconnection, user_id: str
    ) -> dict[str, int]:
        """Stop at Google what runs on the user's account for this product (the grant still
        works); what was stopped, by kind. Idempotent."""
        ...


UserIdPath = Annotated[str, Path(min_length=1, max_length=255)]


def google_disconnect_router(
    participant: Callable[..., Awaitable[GoogleDisconnecting]],
) -> APIRouter:
    """The route the accounts service calls before it revokes a user's grant."""
    router = APIRouter(prefix=LIFECYCLE_PREFIX, tags=["internal"])
    callers_list = ", ".join(DISCONNECT_CALLERS)

    @router.post(
        "/users/{user_id:path}/google-disconnected",
        summary=f"A user disconnects Google: stop what runs at Google (callers: {callers_list})",
        responses={**internal_problems(), **problem_responses(InvalidInput)},
    )
    async def user_google_disconnected(
        user_id: UserIdPath,
        body: GoogleDisconnection,
        caller: Annotated[ServiceCaller, Depends(callers(*DISCONNECT_CALLERS))],
        context: ContextDep,
        part: Annotated[GoogleDisconnecting, Depends(participant)],
    ) -> LifecyclePartPublic:
        stopped = await part.user_google_disconnected(body, user_id)
        return LifecyclePartPublic(service=context.settings.service_name, ended=stopped)

    return router


def lifecycle_router(
    participant: Callable[..., Awaitable[UserLifecycle]], answers: Table
) -> APIRouter:
    """The lifecycle routes of a service whose part ``participant`` (a FastAPI dependency,
    taking what it needs: the context, a session…) answers, its answers remembered per job in
    ``answers`` (a ``lifecycle_answers_table`` of its schema)."""
    router = APIRouter(prefix=LIFECYCLE_PREFIX, tags=["internal"])
    callers_list = ", ".join(LIFECYCLE_CALLERS)

    def remembered(context: ServiceContext) -> LifecycleAnswers:
        return LifecycleAnswers(answers, context.sessionmaker, context.clock)

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
        ended = await remembered(context).once(
            "deactivated",
            body.job_id,
            {"org_id": body.org_id, "user_id": user_id},
            lambda: part.user_deactivated(body, user_id),
        )
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
        deleted = await remembered(context).once(
            "google-data-deleted",
            body.job_id,
            {"org_id": body.org_id, "user_id": user_id},
            lambda: part.user_google_data_deleted(body, user_id),
        )
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
        context.refusals.refuse_org(org_id)
        deleted = await remembered(context).once(
            "offboarded",
            body.job_id,
            {"org_id": org_id},
            lambda: part.org_offboarded(body, org_id),
        )
        return LifecyclePartPublic(service=context.settings.service_name, ended=deleted)

    return router
