"""The routes every Google service shares, and helpers for its own.

- ``GOOGLE_PROBLEMS``: the one documented set of problems a route that calls Google may answer;
- ``IdempotencyKeyDep`` and ``answer_created``: an idempotent create (``Idempotency-Key``,
  ``201`` for the request that created, ``200`` for a replay, ``Location``);
- ``webhook_router``: Google's push notifications (verified by the channel token), each a sync
  request for the resource it is about;
- ``sync_router``: ``POST /internal/sync/resync``, a full resync of one user's account, for the
  accounts service;
- ``org_settings_routes``: ``GET``/``PUT <prefix>/settings``, the org's settings of the product
  (``pipedesk_common.mirror.org_settings``), read by admins and managers, set by admins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response, status
from prometheus_client import Counter
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from pipedesk_common.app import PrincipalDep, provided
from pipedesk_common.auth import Role, ServiceCaller
from pipedesk_common.errors import (
    Forbidden,
    InvalidInput,
    ServiceUnavailable,
    Unauthorized,
    problem_responses,
)
from pipedesk_common.google.calls import GoogleCallError
from pipedesk_common.google.credentials import (
    GoogleDelegationRefused,
    GoogleNotConnected,
    GoogleReconnectRequired,
)
from pipedesk_common.google.push import Channel, verified_notification
from pipedesk_common.idempotency import HEADER, KEY_PATTERN, parse_key
from pipedesk_common.internal import callers, internal_problems
from pipedesk_common.mirror import org_settings
from pipedesk_common.mirror.keys import SyncKey
from pipedesk_common.mirror.runtime import MirrorRuntime
from pipedesk_common.mirror.settings import PushServiceSettings

# What a route calling Google may answer besides its own problems: Google refused (502), Google
# or a dependency is away (503, with Retry-After), the user must connect or reconnect (409).
GOOGLE_PROBLEMS = (
    GoogleDelegationRefused,
    GoogleCallError,
    ServiceUnavailable,
    GoogleReconnectRequired,
    GoogleNotConnected,
)

NOTIFICATIONS = Counter(
    "pipedesk_google_push_notifications_total",
    "Push notifications received, by product and outcome (refused, sync, ignored, sync_requested)",
    ["product", "outcome"],
)

AnyRuntime = MirrorRuntime[Any, Any]
RuntimeDep = Annotated[AnyRuntime, Depends(provided(MirrorRuntime))]
ResolveChannel = Callable[[AsyncSession, Channel], Awaitable[SyncKey | None]]
Resync = Callable[[AnyRuntime, AsyncSession, str, str], Awaitable[list[SyncKey]]]


async def _idempotency_key(
    value: Annotated[
        str | None,
        Header(
            alias=HEADER,
            max_length=255,
            pattern=KEY_PATTERN,
            description="Makes the create safe to retry (kept 24 hours): 1 to 255 visible "
            "ASCII characters",
        ),
    ] = None,
) -> str | None:
    return parse_key(value)


IdempotencyKeyDep = Annotated[str | None, Depends(_idempotency_key)]


def answer_created(response: Response, location: str, created: bool) -> None:
    """``201`` with ``Location`` for the request that created; ``200`` for a replayed one."""
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Location"] = location


def webhook_router(product: str, path: str, resolve: ResolveChannel) -> APIRouter:
    """``POST <path>``: Google's push notifications. A notification with a wrong token is
    refused; one for a channel no longer live, or a resource ``resolve`` does not know, is
    answered and ignored; any other asks for a sync of what ``resolve`` names."""
    router = APIRouter(tags=["webhooks"])

    @router.post(
        path,
        status_code=status.HTTP_200_OK,
        response_class=Response,
        summary=f"Google {product.title()} push notifications (verified by the channel token)",
        description=(
            "Google calls it when a watched resource changes. The channel token must "
            "verify; a notification for a channel no longer live is answered and "
            "ignored; any other requests a sync of what changed."
        ),
        responses={
            200: {
                "description": "Taken: a sync of the resource is requested (the body is empty)",
                "content": {"text/plain": {"schema": {"type": "string", "maxLength": 0}}},
            },
            **problem_responses(Unauthorized),
        },
    )
    async def notification(request: Request, runtime: RuntimeDep) -> Response:
        settings: PushServiceSettings = runtime.settings
        try:
            note = verified_notification(request.headers, settings.channel_secrets)
        except Unauthorized:
            NOTIFICATIONS.labels(product, "refused").inc()
            raise
        outcome = "sync"
        if not note.is_sync:
            async with runtime.uow.write() as session:
                channel = await runtime.push().accepting(session, note)
                key = await resolve(session, channel) if channel is not None else None
                if key is not None:
                    await runtime.work.request(session, key)
            outcome = "sync_requested" if key is not None else "ignored"
        NOTIFICATIONS.labels(product, outcome).inc()
        return Response(status_code=status.HTTP_200_OK)

    return router


class ResyncRequest(BaseModel):
    org_id: str = Field(min_length=1, max_length=255)
    user_id: str = Field(min_length=1, max_length=255)


class ResyncPublic(BaseModel):
    syncs: int = Field(description="How many syncs were requested (one per resource)")


def sync_router(resync: Resync) -> APIRouter:
    """``POST /internal/sync/resync`` (callers: accounts): a full resync of one user's
    account in this product, started at once."""
    router = APIRouter(prefix="/internal/sync", tags=["internal"])

    @router.post(
        "/resync",
        status_code=status.HTTP_202_ACCEPTED,
        summary="Resync one user's account from scratch (callers: accounts)",
        responses=internal_problems(),
    )
    async def resync_user(
        body: ResyncRequest,
        caller: Annotated[ServiceCaller, Depends(callers("accounts"))],
        runtime: RuntimeDep,
    ) -> ResyncPublic:
        async with runtime.uow.write() as session:
            keys = await resync(runtime, session, body.org_id, body.user_id)
            for key in keys:
                await runtime.work.request(session, key)
        return ResyncPublic(syncs=len(keys))

    return router


def org_settings_routes(
    router: APIRouter,
    *,
    product: str,
    model: type[SQLModel],
    public: type[BaseModel],
    write: type[BaseModel],
    read_description: str,
    write_summary: str,
    write_description: str,
) -> None:
    """``GET`` and ``PUT`` ``/settings`` on ``router``: the org's ``product`` settings (rows of
    ``model``) read by admins and managers as ``public``, replaced by an admin with ``write``."""

    async def get_settings(principal: PrincipalDep, runtime: RuntimeDep) -> BaseModel:
        if principal.role not in (Role.ADMIN, Role.MANAGER):
            raise Forbidden(f"only admins and managers read the org's {product} settings")
        found = await org_settings.org_settings(runtime.uow, runtime.clock, model, principal.org_id)
        return public.model_validate(found, from_attributes=True)

    async def put_settings(
        body: BaseModel, principal: PrincipalDep, runtime: RuntimeDep
    ) -> BaseModel:
        if principal.role is not Role.ADMIN:
            raise Forbidden(f"only an admin may change the org's {product} settings")
        stored = await org_settings.set_org_settings(
            runtime.uow, runtime.clock, model, principal.org_id, body.model_dump()
        )
        return public.model_validate(stored, from_attributes=True)

    # FastAPI reads the body's model from its annotation: the product's own.
    put_settings.__annotations__["body"] = write
    router.get(
        "/settings",
        response_model=public,
        summary=f"The org's {product} settings (admins and managers)",
        description=read_description,
        responses=problem_responses(Unauthorized, Forbidden),
    )(get_settings)
    router.put(
        "/settings",
        response_model=public,
        summary=write_summary,
        description=write_description,
        responses=problem_responses(Unauthorized, Forbidden, InvalidInput),
    )(put_settings)
