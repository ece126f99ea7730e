"""Lead routes: parse, authorize (through the service), answer."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Response, status

from crm_service.audit import lead_access
from crm_service.models import LeadPriority, LeadStatus
from crm_service.repository import LeadFilters, LeadRepository
from crm_service.schemas import (
    AccessListPublic,
    LeadCreate,
    LeadPublic,
    LeadSort,
    LeadUpdate,
)
from crm_service.service import LeadService
from pipedesk_common.app import ContextDep, PrincipalDep, ServiceCallerDep
from pipedesk_common.db import SessionDep
from pipedesk_common.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidCursor,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    Unauthorized,
    problem_responses,
)
from pipedesk_common.pagination import Page

router = APIRouter(prefix="/api/leads", tags=["leads"])
internal = APIRouter(prefix="/internal", tags=["internal"])

MAX_PAGE = 100


def lead_service(session: SessionDep, context: ContextDep) -> LeadService:
    return LeadService(LeadRepository(session), context.clock)


ServiceDep = Annotated[LeadService, Depends(lead_service)]


def _etag(version: int) -> str:
    return f'"{version}"'


def _parse_if_match(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise InvalidInput(
            "If-Match must be an ETag this API returned",
            errors=[FieldError(field="header.if-match", message="not a lead ETag", code="invalid")],
        )
    return int(value)


def _public(lead: object, response: Response) -> LeadPublic:
    public = LeadPublic.model_validate(lead)
    response.headers["ETag"] = _etag(public.version)
    return public


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a lead owned by the caller",
    responses=problem_responses(Unauthorized, Forbidden, InvalidInput),
)
async def create_lead(
    data: LeadCreate, principal: PrincipalDep, service: ServiceDep, response: Response
) -> LeadPublic:
    lead = await service.create(principal, data)
    response.headers["Location"] = f"/api/leads/{lead.id}"
    return _public(lead, response)


@router.get(
    "",
    summary="List the leads the caller may read, newest first",
    responses=problem_responses(Unauthorized, InvalidInput, InvalidCursor),
)
async def list_leads(
    principal: PrincipalDep,
    service: ServiceDep,
    context: ContextDep,
    status_: Annotated[list[LeadStatus], Query(alias="status")] = [],  # noqa: B006
    priority: Annotated[list[LeadPriority], Query()] = [],  # noqa: B006
    owner_id: Annotated[str | None, Query(max_length=255)] = None,
    team_id: Annotated[str | None, Query(max_length=255)] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Text in title or company")
    ] = None,
    deleted: Annotated[bool, Query(description="List deleted leads instead (the trash)")] = False,
    sort: LeadSort = "-created_at",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> Page[LeadPublic]:
    filters = LeadFilters(
        status=tuple(sorted(value.value for value in status_)),
        priority=tuple(sorted(value.value for value in priority)),
        owner_id=owner_id,
        team_id=team_id,
        q=q,
        deleted=deleted,
    )
    scope = f"leads:{sort}:{filters!r}"
    after = context.cursors.decode_keyset(cursor, scope=scope) if cursor else None
    rows = await service.list(principal, filters, sort=sort, after=after, limit=limit + 1)
    items = [LeadPublic.model_validate(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        sort_value = getattr(last, sort.lstrip("-"))
        next_cursor = context.cursors.encode_keyset(sort_value, last.id, scope=scope)
    return Page[LeadPublic](items=items, next_cursor=next_cursor)


@router.get(
    "/{lead_id}",
    summary="Get a lead",
    responses=problem_responses(Unauthorized, NotFound),
)
async def get_lead(
    lead_id: UUID, principal: PrincipalDep, service: ServiceDep, response: Response
) -> LeadPublic:
    return _public(await service.get(principal, lead_id), response)


@router.patch(
    "/{lead_id}",
    summary="Change some fields of a lead",
    responses=problem_responses(
        Unauthorized, Forbidden, NotFound, PreconditionFailed, InvalidInput
    ),
)
async def update_lead(
    lead_id: UUID,
    data: LeadUpdate,
    principal: PrincipalDep,
    service: ServiceDep,
    response: Response,
    if_match: Annotated[
        str | None, Header(description="Only update if the lead's ETag is this")
    ] = None,
) -> LeadPublic:
    lead = await service.update(principal, lead_id, data, if_match=_parse_if_match(if_match))
    return _public(lead, response)


@router.delete(
    "/{lead_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Move a lead to the trash (restorable)",
    responses=problem_responses(Unauthorized, Forbidden, NotFound),
)
async def delete_lead(lead_id: UUID, principal: PrincipalDep, service: ServiceDep) -> None:
    await service.delete(principal, lead_id)


@router.post(
    "/{lead_id}/restore",
    summary="Restore a deleted lead",
    responses=problem_responses(Unauthorized, Forbidden, NotFound, Conflict),
)
async def restore_lead(
    lead_id: UUID, principal: PrincipalDep, service: ServiceDep, response: Response
) -> LeadPublic:
    return _public(await service.restore(principal, lead_id), response)


@internal.get(
    "/acl/lead/{lead_id}",
    summary="A lead's access list, for other services' replicas (service tokens only)",
    responses=problem_responses(Unauthorized, NotFound),
)
async def lead_access_list(
    lead_id: UUID, caller: ServiceCallerDep, service: ServiceDep
) -> AccessListPublic:
    lead = await service.access_of(lead_id)
    return AccessListPublic(type="lead", **lead_access(lead).model_dump())
