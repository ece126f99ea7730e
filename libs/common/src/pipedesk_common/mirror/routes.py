"""The routes every Google service shares, and helpers for its own.

- ``GOOGLE_PROBLEMS``: the one documented set of problems a route that calls Google may answer;
- ``IdempotencyKeyDep`` and ``answer_created``: an idempotent create (``Idempotency-Key``,
  ``201`` for the request that created, ``200`` for a replay, ``Location``);
- ``webhook_router``: Google's push notifications (verified by the channel token), each a sync
  request for the resource it is about;
- ``sync_router``: ``POST /internal/sync/resync``, a full resync of one user's account, for the
  accounts service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response, status
from prometheus_client import Counter
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.app import provided
from pipedesk_common.auth import ServiceCaller
from pipedesk_common.errors import ServiceUnavailable, Unauthorized, problem_responses
from pipedesk_common.google.calls import GoogleCallError
from pipedesk_common.google.credentials import (
    GoogleDelegationRefused,
    GoogleNotConnected,
    GoogleReconnectRequired,
)
from pipedesk_common.google.push import Channel, verified_notification
from pipedesk_common.idempotency import HEADER, parse_key
from pipedesk_common.internal import callers, internal_problems
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
            description="Makes the create safe to retry (kept 24 hours)",
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
