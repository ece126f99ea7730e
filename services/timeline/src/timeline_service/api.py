"""The timeline of one record, for whoever may read that record."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request

from pipedesk_common.access import AccessReplica
from pipedesk_common.app import ContextDep, PrincipalDep
from pipedesk_common.db import SessionDep
from pipedesk_common.errors import (
    InvalidCursor,
    InvalidInput,
    NotFound,
    Unauthorized,
    problem_responses,
)
from pipedesk_common.events.timeline import ItemKind, Link, RecordType
from pipedesk_common.pagination import Page
from pipedesk_common.rbac import Action
from timeline_service.repository import links_of, record_items
from timeline_service.schemas import ItemSource, TimelineItemPublic, TimelineRecordType

router = APIRouter(prefix="/api/timeline", tags=["timeline"])


@router.get(
    "/{record_type}/{record_id}",
    summary="A record's timeline, newest first",
    responses=problem_responses(Unauthorized, NotFound, InvalidInput, InvalidCursor),
)
async def record_timeline(
    record_type: TimelineRecordType,
    record_id: UUID,
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
    request: Request,
    kinds: Annotated[list[ItemKind], Query(description="Only these kinds")] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> Page[TimelineItemPublic]:
    replica: AccessReplica = request.app.state.access_replica
    if not await replica.can(session, principal, Action.READ, record_type.value, str(record_id)):
        raise NotFound(f"no such {record_type.value}")
    scope = f"timeline:{record_type.value}:{record_id}:{sorted(kind.value for kind in kinds)}"
    after = context.cursors.decode_keyset(cursor, scope=scope) if cursor else None
    rows = await record_items(
        session,
        org_id=principal.org_id,
        record_type=record_type.value,
        record_id=str(record_id),
        kinds=[kind.value for kind in kinds],
        after=after,
        limit=limit + 1,
    )
    page = rows[:limit]
    links = await links_of(session, [item.id for item in page])
    items = [
        TimelineItemPublic(
            id=item.id,
            kind=ItemKind(item.kind),
            occurred_at=item.occurred_at,
            title=item.title,
            summary=item.summary,
            participants=item.participants,
            status=item.status,
            actor_id=item.actor_id,
            source=ItemSource(service=item.source_service, google_id=item.google_id, url=item.url),
            links=[Link(type=RecordType(kind), id=ident) for kind, ident in links.get(item.id, [])],
        )
        for item in page
    ]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = context.cursors.encode_keyset(last.occurred_at, last.id, scope=scope)
    return Page[TimelineItemPublic](items=items, next_cursor=next_cursor)
