"""Routes of the accounts service: a user's own connection, org admin routes, and the internal
token route other services call."""

from __future__ import annotations

import logging
from typing import Annotated, Final
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from prometheus_client import Counter

from accounts_service.google import GoogleOAuth
from accounts_service.models import ConnectionStatus, lifecycle_answers
from accounts_service.repository import AccountsRepository
from accounts_service.schemas import (
    ConnectionPublic,
    ConnectStart,
    DelegationIn,
    DelegationPublic,
    TokenAnswer,
    TokenRequest,
)
from accounts_service.service import AccountsService, InvalidState, NotAMember
from accounts_service.settings import AccountsSettings
from accounts_service.stopping import ProductStops
from pipedesk_common.app import ContextDep, PrincipalDep
from pipedesk_common.auth import Principal, Role, ServiceCaller
from pipedesk_common.db import SessionDep
from pipedesk_common.directory import OrgDirectory
from pipedesk_common.errors import (
    AppError,
    Forbidden,
    InvalidCursor,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    problem_response,
    problem_responses,
)
from pipedesk_common.google.calls import GoogleCallError
from pipedesk_common.google.credentials import (
    GoogleDelegationRefused,
    GoogleNotConnected,
)
from pipedesk_common.google.scopes import PRODUCT_SCOPES
from pipedesk_common.ids import OpaqueIdPath
from pipedesk_common.internal import callers, internal_problems, refuse_internal_call
from pipedesk_common.lifecycle import lifecycle_router
from pipedesk_common.pagination import Page, PageCursor, WidePageLimit

log = logging.getLogger(__name__)

TOKENS_ISSUED = Counter(
    "pipedesk_google_tokens_issued_total",
    "Google access tokens handed to a product service, by service and grant",
    ["caller", "via"],
)

router = APIRouter(prefix="/api/accounts/google", tags=["google accounts"])
internal = APIRouter(prefix="/internal/google", tags=["internal"])


async def accounts_service(
    session: SessionDep, context: ContextDep, request: Request
) -> AccountsService:
    settings = context.settings
    assert isinstance(settings, AccountsSettings)
    return AccountsService(
        AccountsRepository(session),
        settings=settings,
        clock=context.clock,
        vault=request.app.state.vault,
        oauth=GoogleOAuth(settings, context.http, context.clock),
        delegated=request.app.state.delegated_tokens,
        directory=OrgDirectory(
            settings.url_of("crm"), http=lambda: context.http, issuer=context.issuer
        ),
        products=ProductStops(settings, http=lambda: context.http, issuer=context.issuer),
    )


ServiceDep = Annotated[AccountsService, Depends(accounts_service)]


async def org_admin(principal: PrincipalDep) -> Principal:
    """Org admins manage their org's connections and delegation; nobody else does."""
    if principal.role is not Role.ADMIN:
        raise Forbidden("only an org admin may do this")
    return principal


AdminDep = Annotated[Principal, Depends(org_admin)]


# A comma-separated list naming at least one product (spaces and empty items tolerated).
_PRODUCT: Final = f"({'|'.join(PRODUCT_SCOPES)})"
PRODUCTS_PATTERN: Final = f"^[ ,]*{_PRODUCT} *(, *({_PRODUCT} *)?)*$"


def _products(products: str) -> list[str]:
    return [item.strip() for item in products.split(",") if item.strip()]


@router.get(
    "/connect",
    response_model=ConnectStart,
    responses=problem_responses(InvalidInput),
    summary="Start connecting Google for some products (incremental consent)",
    description=(
        "Answers Google's authorization URL (PKCE, offline access) for the scopes of "
        "the products asked, added to those already granted; the browser goes there, "
        "and Google sends it back to the callback."
    ),
)
async def connect(
    principal: PrincipalDep,
    service: ServiceDep,
    products: Annotated[
        str,
        Query(
            max_length=200,
            pattern=PRODUCTS_PATTERN,
            description="Comma-separated: calendar, tasks, drive, gmail",
        ),
    ],
) -> ConnectStart:
    url = await service.start_connect(principal, _products(products))
    return ConnectStart(authorization_url=url)


@router.get(
    "/callback",
    status_code=302,
    response_class=RedirectResponse,
    responses={
        302: {
            "description": "Back to the frontend, `?google=connected` or `?google=<error>`",
            "headers": {
                "Location": {
                    "description": "The frontend's page, with the outcome in its query",
                    "schema": {"type": "string", "format": "uri"},
                }
            },
        },
        **problem_responses(InvalidState),
    },
    summary="Google's redirect back (no bearer token: the single-use state identifies the user)",
    description=(
        "Completes the connection: the single-use state names the user, the code is "
        "exchanged for tokens (the refresh token stored encrypted), and the browser "
        "is sent back to the frontend with the outcome."
    ),
)
async def callback(
    service: ServiceDep,
    state: Annotated[str | None, Query(max_length=200)] = None,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> RedirectResponse:
    target = await service.complete_connect(state, code, error)
    return RedirectResponse(target, status_code=302, headers={"Cache-Control": "no-store"})


@router.get("", response_model=ConnectionPublic, summary="The caller's Google connection")
async def my_connection(principal: PrincipalDep, service: ServiceDep) -> ConnectionPublic:
    """Whether the caller has connected Google, with which account, for which products and
    scopes, and whether Google still accepts it."""
    return await service.status(principal.org_id, principal.sub, principal.email)


@router.delete(
    "",
    status_code=204,
    responses=problem_responses(NotFound, ServiceUnavailable),
    summary="Revoke the caller's Google access at Google and forget it",
    description=(
        "Each product the grant covers first stops what runs on the user's account at Google "
        "(push channels, Gmail's watch) while the grant still works; a product that cannot be "
        "reached does not hold the disconnect back (what it left running lapses). Then the "
        "refresh token is revoked at Google and the stored tokens deleted; the services stop "
        "syncing the user's Google data."
    ),
)
async def disconnect(principal: PrincipalDep, service: ServiceDep) -> Response:
    await service.disconnect(principal.org_id, principal.sub, principal.sub)
    return Response(status_code=204)


MAX_PAGE = 200


PRODUCT_PATH_DESCRIPTION = "The product: " + ", ".join(f"`{name}`" for name in PRODUCT_SCOPES)
ProductPath = Annotated[
    str,
    Path(
        min_length=1, max_length=20, pattern=f"^{_PRODUCT}$", description=PRODUCT_PATH_DESCRIPTION
    ),
]
PRODUCT_DISCONNECT_DESCRIPTION = (
    "The product's service stops what runs on the user's account at Google (push channels, "
    "Gmail's watch) while the grant still works and applies the org's rule to what it mirrored; "
    "then the connection loses the product and no token is issued for its scopes again. Google "
    "keeps those scopes in the grant (a refresh token cannot drop one scope) until a full "
    "disconnect revokes it. Disconnecting the last product is a full disconnect. Unknown "
    "product: `422` on `path.product`; not connected for it: `404`."
)


@router.delete(
    "/products/{product}",
    status_code=204,
    responses=problem_responses(InvalidInput, NotFound, ServiceUnavailable),
    summary="Disconnect one Google product of the caller's",
    description=PRODUCT_DISCONNECT_DESCRIPTION,
)
async def disconnect_product(
    product: ProductPath, principal: PrincipalDep, service: ServiceDep
) -> Response:
    await service.disconnect_product(principal.org_id, principal.sub, product, principal.sub)
    return Response(status_code=204)


@router.get(
    "/users",
    response_model=Page[ConnectionPublic],
    responses=problem_responses(Forbidden, InvalidCursor, InvalidInput),
    summary="The org's Google connections, oldest first (org admins)",
    description=(
        "Every user's connection of the org: its Google account, products, scopes and "
        "state; a page at a time: pass `next_cursor` back as `cursor`."
    ),
)
async def list_connections(
    admin: AdminDep,
    service: ServiceDep,
    context: ContextDep,
    status: Annotated[ConnectionStatus | None, Query(description="Only this status")] = None,
    limit: WidePageLimit = 50,
    cursor: PageCursor = None,
) -> Page[ConnectionPublic]:
    scope = f"connections:{admin.org_id}:{status or ''}"
    after = None
    if cursor:
        try:
            after = UUID(str(context.cursors.decode(cursor, scope=scope)[0]))
        except (ValueError, IndexError):
            raise context.cursors.invalid() from None
    items, last = await service.connections(admin.org_id, status=status, after=after, limit=limit)
    next_cursor = context.cursors.encode([str(last)], scope=scope) if last else None
    return Page[ConnectionPublic](items=items, next_cursor=next_cursor)


@router.get(
    "/users/{user_id:path}",  # an opaque id may hold "/"
    response_model=ConnectionPublic,
    responses=problem_responses(Forbidden, NotFound),
    summary="A user's connection (org admins)",
    description="One user's connection in the admin's org; another org's user is `404`.",
)
async def user_connection(
    user_id: OpaqueIdPath, admin: AdminDep, service: ServiceDep
) -> ConnectionPublic:
    return await service.connection_of(admin.org_id, user_id)


# Before ``/users/{user_id:path}``, which would take ``…/products/{product}`` as a user id.
@router.delete(
    "/users/{user_id:path}/products/{product}",
    status_code=204,
    responses=problem_responses(Forbidden, InvalidInput, NotFound, ServiceUnavailable),
    summary="Disconnect one Google product of a user's (org admins)",
    description="As the user's own disconnect of one product. " + PRODUCT_DISCONNECT_DESCRIPTION,
)
async def disconnect_user_product(
    user_id: OpaqueIdPath, product: ProductPath, admin: AdminDep, service: ServiceDep
) -> Response:
    await service.disconnect_product(admin.org_id, user_id, product, admin.sub)
    return Response(status_code=204)


@router.delete(
    "/users/{user_id:path}",  # an opaque id may hold "/"
    status_code=204,
    responses=problem_responses(Forbidden, NotFound, ServiceUnavailable),
    summary="Revoke and forget a user's connection (org admins)",
    description="As the user's own disconnect: the products stop what runs at Google, then "
    "the grant is revoked at Google and forgotten here.",
)
async def disconnect_user(user_id: OpaqueIdPath, admin: AdminDep, service: ServiceDep) -> Response:
    await service.disconnect(admin.org_id, user_id, admin.sub)
    return Response(status_code=204)


@router.get(
    "/delegation",
    response_model=DelegationPublic,
    responses=problem_responses(Forbidden, NotFound),
    summary="The org's domain-wide delegation (org admins)",
    description=(
        "Whether the org's Google Workspace delegates to a service account, which "
        "one, and its scopes (never the key)."
    ),
)
async def get_delegation(admin: AdminDep, service: ServiceDep) -> DelegationPublic:
    return await service.delegation(admin.org_id)


@router.put(
    "/delegation",
    response_model=DelegationPublic,
    responses=problem_responses(Forbidden, InvalidInput),
    summary="Configure domain-wide delegation with a service account key (org admins)",
    description=(
        "Stores the service account key encrypted; Google tokens for the org's users "
        "are then minted by impersonation, without each user's consent."
    ),
)
async def put_delegation(
    config: DelegationIn, admin: AdminDep, service: ServiceDep
) -> DelegationPublic:
    return await service.configure_delegation(admin, config)


@router.delete(
    "/delegation",
    status_code=204,
    responses=problem_responses(Forbidden, NotFound),
    summary="Stop domain-wide delegation (org admins)",
    description="Forgets the service account key; users need their own connections again.",
)
async def delete_delegation(admin: AdminDep, service: ServiceDep) -> Response:
    await service.remove_delegation(admin.org_id)
    return Response(status_code=204)


@internal.post(
    "/token",
    response_model=TokenAnswer,
    responses={
        **internal_problems(),
        **problem_responses(
            GoogleNotConnected,
            GoogleDelegationRefused,
            GoogleCallError,
            ServiceUnavailable,
        ),
    },
    summary="A current access token for a user and the scopes of the calling service's own "
    "Google product (callers: the product services, e.g. calendar → Calendar scopes)",
)
async def token(
    body: TokenRequest,
    caller: Annotated[ServiceCaller, Depends(callers(*PRODUCT_SCOPES))],
    service: ServiceDep,
    request: Request,
    response: Response,
) -> TokenAnswer | JSONResponse:
    response.headers["Cache-Control"] = "no-store"
    foreign = sorted(set(body.scopes) - set(PRODUCT_SCOPES[caller.name]))
    if foreign:
        refuse_internal_call(
            request,
            caller,
            "scopes",
            f"the {caller.name} service may ask only for its own product's scopes, "
            f"not {', '.join(foreign)}",
        )
    try:
        answer = await service.access_token(body)
    except NotAMember as refused:
        refuse_internal_call(request, caller, "user", refused.detail or refused.title)
    if isinstance(answer, AppError):  # recorded (the grant is revoked), then answered
        return problem_response(
            answer.status,
            answer.slug,
            answer.title,
            answer.detail,
            instance="/internal/google/token",
            errors=answer.errors,
            headers={"Cache-Control": "no-store"},
        )
    TOKENS_ISSUED.labels(caller.name, answer.via.value).inc()
    log.info(
        "google token issued",
        extra={
            "caller": caller.name,
            "org_id": body.org_id,
            "user_id": body.user_id,
            "via": answer.via.value,
            "refreshed": body.force_refresh,
        },
    )
    return answer


# The accounts part of the user lifecycle (the CRM calls it after the product services' parts,
# which still need the user's grant to stop their channels at Google).
lifecycle = lifecycle_router(accounts_service, lifecycle_answers)

__all__ = ["internal", "lifecycle", "router"]
