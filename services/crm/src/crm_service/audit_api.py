"""The audit log's routes: a filtered, paged query and a streamed CSV export."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from crm_service.api import CallerDep
from crm_service.audit_log import AuditFilters, audit_page, audit_query, export_csv
from crm_service.schemas import AuditEntryPublic
from pipedesk_common.app import ContextDep
from pipedesk_common.db import SessionDep
from pipedesk_common.errors import (
    Forbidden,
    InvalidCursor,
    InvalidInput,
    Unauthorized,
    problem_responses,
)
from pipedesk_common.moments import Rfc3339
from pipedesk_common.pagination import Page, PageCursor, PageLimit

router = APIRouter(prefix="/api/audit", tags=["audit"])

EntityType = Literal["lead", "deal", "contact", "company", "user", "team"]
Action = Literal[
    "created", "updated", "deleted", "restored", "owner_changed", "archived",
    "member_added", "member_updated", "member_removed", "note_added", "note_edited",
    "note_deleted", "file_uploaded", "file_renamed", "file_moved", "file_trashed",
    "file_restored", "file_deleted", "share_added", "share_changed", "share_removed",
    "folder_repaired",
]  # fmt: skip


async def audit_filters(
    entity_type: EntityType | None = None,
    entity_id: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    actor_id: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    action: Action | None = None,
    since: Annotated[Rfc3339 | None, Query(description="From this time (inclusive)")] = None,
    until: Annotated[Rfc3339 | None, Query(description="Before this time")] = None,
) -> AuditFilters:
    return AuditFilters(entity_type, entity_id, actor_id, action, since, until)


FiltersDep = Annotated[AuditFilters, Depends(audit_filters)]


@router.get(
    "",
    summary="Audit entries the caller may read, newest first (admins and managers)",
    description=(
        "Every recorded change across the org's records (admins) or their teams' "
        "(managers): who changed which field, from what to what, by which request. "
        "Filters by record, actor, action and time; a page at a time: pass "
        "`next_cursor` back as `cursor`."
    ),
    responses=problem_responses(Unauthorized, Forbidden, InvalidInput, InvalidCursor),
)
async def list_audit(
    principal: CallerDep,
    filters: FiltersDep,
    session: SessionDep,
    context: ContextDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[AuditEntryPublic]:
    scope = f"audit:{filters!r}"
    after = context.cursors.decode_keyset(cursor, scope=scope) if cursor else None
    rows = await audit_page(session, principal, filters, after=after, limit=limit + 1)
    items = [AuditEntryPublic.model_validate(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = context.cursors.encode_keyset(last.occurred_at, last.id, scope=scope)
    return Page[AuditEntryPublic](items=items, next_cursor=next_cursor)


@router.get(
    "/export",
    summary="The same entries as CSV, streamed (admins and managers)",
    description=(
        "The entries the same filters select, as CSV with a header row, streamed as "
        "they are read (no page size)."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "CSV, one entry per line"},
        **problem_responses(Unauthorized, Forbidden, InvalidInput),
    },
)
async def export_audit(
    principal: CallerDep, filters: FiltersDep, context: ContextDep
) -> StreamingResponse:
    query = audit_query(principal, filters)  # refuses before the first byte
    return StreamingResponse(
        export_csv(context.engine, query),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )
