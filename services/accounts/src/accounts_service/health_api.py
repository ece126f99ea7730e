"""Sync health routes: the caller's (or, for org admins, their org's) sync health per Google
product, and a forced resync of one product."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from accounts_service.api import ServiceDep
from accounts_service.health import HealthBoard
from accounts_service.repository import AccountsRepository
from accounts_service.schemas import AccountHealthPublic, ConnectionPublic, ResyncStarted
from pipedesk_common.app import ContextDep, PrincipalDep
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
from pipedesk_common.events.sync import SyncState
from pipedesk_common.google.credentials import GoogleNotConnected, GoogleReconnectRequired
from pipedesk_common.pagination import Page, PageCursor, WidePageLimit

health = APIRouter(prefix="/api/accounts/google/health", tags=["google accounts"])

MAX_PAGE = 200
UserId = Annotated[str | None, Query(min_length=1, max_length=255)]


async def health_board(session: SessionDep, context: ContextDep) -> HealthBoard:
    return HealthBoard(
        AccountsRepository(session),
        http=context.http,
        issuer=context.issuer,
        service_url=context.settings.url_of,
    )


BoardDep = Annotated[HealthBoard, Depends(health_board)]


@health.get(
    "",
    summary="Sync health per Google product: the caller's own, or their org's users (org admins)",
    description=(
        "For each user, each connected Google product's sync state (`idle`, `syncing`, "
        "`backing_off`, `failing`, `needs_reconnect`), last success, last error, consecutive "
        "failures and next attempt. Others get their own account; org admins get every user of "
        "their org with a connection or a sync (or only `user_id`, or those with a product in "
        "`state`), by user id."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput, InvalidCursor),
)
async def sync_health(
    principal: PrincipalDep,
    board: BoardDep,
    context: ContextDep,
    user_id: UserId = None,
    state: Annotated[SyncState | None, Query()] = None,
    limit: WidePageLimit = 50,
    cursor: PageCursor = None,
) -> Page[AccountHealthPublic]:
    scope = f"sync-health:{principal.org_id}:{user_id}:{state}"
    after = context.cursors.decode_key(cursor, scope=scope) if cursor else None
    items, more = await board.page(
        principal, user_id=user_id, state=state, after=after, limit=limit
    )
    next_cursor = context.cursors.encode([more], scope=scope) if more else None
    return Page[AccountHealthPublic](items=items, next_cursor=next_cursor)


@health.post(
    "/{product}/resync",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Resync one Google product from scratch: the caller's, or a user's (org admins)",
    description=(
        "The product's service drops its sync watermarks for the user and reads everything "
        "again, in the background; `GET /api/accounts/google/health` shows the progress."
    ),
    responses=problem_responses(
        Unauthorized,
        Forbidden,
        NotFound,
        InvalidInput,
        GoogleReconnectRequired,
        GoogleNotConnected,
        ServiceUnavailable,
    ),
)
async def resync(
    product: Annotated[str, Path(min_length=1, max_length=20)],
    principal: PrincipalDep,
    board: BoardDep,
    service: ServiceDep,
    user_id: UserId = None,
) -> ResyncStarted:
    target = user_id or principal.sub

    async def connection() -> ConnectionPublic:
        if target == principal.sub:
            return await service.status(principal.org_id, target, principal.email)
        return await service.connection_of(principal.org_id, target)

    return await board.resync(principal, product, target, connection)
