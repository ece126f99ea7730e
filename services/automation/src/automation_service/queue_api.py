"""``GET /api/automation/queue``: the caller's work queue, the leads waiting on an SLA soonest
first (and, at one due time, the higher priority first).

A rep's queue is the leads they own; a manager's, those and their teams' leads; an admin's, the
org's. Viewers work no leads: `403`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import case, or_, select, tuple_
from sqlmodel import col

from automation_service.sla import stage_of
from automation_service.sla_models import CLOSED_STATUSES, PRIORITIES, SlaClock
from pipedesk_common.app import ContextDep, PrincipalDep
from pipedesk_common.auth import Role
from pipedesk_common.db import SessionDep
from pipedesk_common.errors import Forbidden, InvalidCursor, Unauthorized, problem_responses
from pipedesk_common.pagination import Page, PageCursor, PageLimit

router = APIRouter(prefix="/api/automation", tags=["automation"])

# Urgent first: 0 for urgent … 3 for low.
RANK = case(
    {priority: len(PRIORITIES) - 1 - index for index, priority in enumerate(PRIORITIES)},
    value=col(SlaClock.priority),
    else_=len(PRIORITIES),
)


class QueueItem(BaseModel):
    lead_id: UUID
    title: str
    priority: Literal["low", "normal", "high", "urgent"]
    status: str
    owner_id: str
    team_id: str | None
    waiting_for: Literal["first_response", "next_touch"]
    due_at: datetime
    overdue: bool = Field(description="The due time has passed")


@router.get(
    "/queue",
    summary="Your work queue: leads by SLA due time, then priority",
    description="Open leads under an SLA policy, the soonest due first (at one due time, the "
    "higher priority first). Reps see the leads they own; managers also their teams'; admins "
    "the org's; viewers are refused (`403`). Pass `next_cursor` back as `cursor`.",
    responses=problem_responses(Unauthorized, Forbidden, InvalidCursor),
)
async def work_queue(
    principal: PrincipalDep,
    session: SessionDep,
    context: ContextDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[QueueItem]:
    if principal.role is Role.VIEWER:
        raise Forbidden("viewers have no work queue")
    query = select(SlaClock, RANK.label("rank")).where(
        col(SlaClock.org_id) == principal.org_id,
        col(SlaClock.managed).is_(True),
        col(SlaClock.deleted).is_(False),
        col(SlaClock.due_at).is_not(None),
        col(SlaClock.status).not_in(CLOSED_STATUSES),
    )
    if principal.role is Role.REP:
        query = query.where(col(SlaClock.owner_id) == principal.sub)
    elif principal.role is Role.MANAGER:
        query = query.where(
            or_(
                col(SlaClock.owner_id) == principal.sub,
                col(SlaClock.team_id).in_(sorted(principal.team_ids)),
            )
        )
    scope = f"queue:{principal.org_id}:{principal.sub}"
    if cursor:
        position = context.cursors.decode(cursor, scope=scope)
        try:
            due, rank, lead = (
                datetime.fromisoformat(position[0]),
                int(position[1]),
                UUID(position[2]),
            )
        except (IndexError, TypeError, ValueError):
            raise context.cursors.invalid() from None
        query = query.where(
            tuple_(col(SlaClock.due_at), RANK, col(SlaClock.lead_id)) > tuple_(due, rank, lead)
        )
    rows = (
        await session.execute(
            query.order_by(col(SlaClock.due_at), RANK, col(SlaClock.lead_id)).limit(limit + 1)
        )
    ).all()
    now = context.clock.now()
    items = []
    for clock, _rank in rows[:limit]:
        assert clock.due_at is not None
        items.append(
            QueueItem(
                lead_id=clock.lead_id,
                title=clock.title,
                priority=clock.priority,
                status=clock.status,
                owner_id=clock.owner_id,
                team_id=clock.team_id,
                waiting_for=stage_of(clock),
                due_at=clock.due_at,
                overdue=clock.due_at <= now,
            )
        )
    next_cursor = None
    if len(rows) > limit:
        last, rank = rows[limit - 1]
        next_cursor = context.cursors.encode(
            [last.due_at.isoformat(), rank, str(last.lead_id)], scope=scope
        )
    return Page(items=items, next_cursor=next_cursor)
