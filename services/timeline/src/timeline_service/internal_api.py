"""What the timeline knows of items that their producers do not: the records each item is on
(its copies' explicit links and the records its participants matched). The gmail service reads
them to decide who may read a teammate's mail (a message on a record the reader can read) and
to list a record's mail; nothing here decides visibility for a user."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.auth import ServiceCaller
from pipedesk_common.db import SessionDep
from pipedesk_common.events.timeline import Link
from pipedesk_common.internal import callers, internal_problems
from timeline_service.models import ItemHolder, TimelineItem, TimelineLink

internal = APIRouter(prefix="/internal", tags=["internal"])
ITEM_CALLERS = ("gmail",)
CallerDep = Annotated[ServiceCaller, Depends(callers(*ITEM_CALLERS))]
# The automation service runs its rules on the records mail matched.
RECORDS_CALLERS = ("automation", "gmail")
RecordsCallerDep = Annotated[ServiceCaller, Depends(callers(*RECORDS_CALLERS))]
MAX_IDENTITIES = 100
MAX_PAGE = 200


class ItemRecordsPublic(BaseModel):
    identity: str = Field(description="The item's identity (a `Message-ID`, an `iCalUID`)")
    item_id: UUID
    occurred_at: datetime
    records: list[Link] = Field(description="Every record the item is on")


class ItemRecordsList(BaseModel):
    items: list[ItemRecordsPublic]


async def _records_of(session: AsyncSession, item_ids: list[UUID]) -> dict[UUID, list[Link]]:
    found: dict[UUID, list[Link]] = {item: [] for item in item_ids}
    if not item_ids:
        return found
    links = TimelineLink.__table__  # type: ignore[attr-defined]
    rows = await session.execute(
        select(links.c.item_id, links.c.record_type, links.c.record_id)
        .where(links.c.item_id.in_(item_ids))
        .order_by(links.c.record_type, links.c.record_id)
    )
    for item_id, record_type, record_id in rows:
        found[item_id].append(Link(type=record_type, id=record_id))
    return found


@internal.get(
    "/orgs/{org_id}/items/records",
    summary="The records each item of these identities is on (callers: automation, gmail)",
    responses=internal_problems(),
)
async def records_of_items(
    org_id: str,
    caller: RecordsCallerDep,
    session: SessionDep,
    identity: Annotated[list[str], Query(min_length=1, max_length=MAX_IDENTITIES)],
) -> ItemRecordsList:
    items = TimelineItem.__table__  # type: ignore[attr-defined]
    rows = (
        await session.execute(
            select(items.c.id, items.c.identity, items.c.occurred_at).where(
                items.c.org_id == org_id, items.c.identity.in_(sorted(set(identity)))
            )
        )
    ).all()
    records = await _records_of(session, [row.id for row in rows])
    return ItemRecordsList(
        items=[
            ItemRecordsPublic(
                identity=row.identity,
                item_id=row.id,
                occurred_at=row.occurred_at,
                records=records[row.id],
            )
            for row in rows
        ]
    )


@internal.get(
    "/orgs/{org_id}/records/{record_type}/{record_id}/items",
    summary="A page of a record's items held by one service, newest first (callers: gmail)",
    description=(
        "Keyset paging: pass the last item's `occurred_at` and `item_id` as `after_at` and "
        "`after_id` for the next page. Only items with an identity."
    ),
    responses=internal_problems(),
)
async def record_items(
    org_id: str,
    record_type: Literal["lead", "deal", "contact", "company"],
    record_id: Annotated[str, Path(max_length=64)],
    caller: CallerDep,
    session: SessionDep,
    service: Annotated[str, Query(max_length=50)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    after_at: datetime | None = None,
    after_id: UUID | None = None,
) -> ItemRecordsList:
    links = TimelineLink.__table__  # type: ignore[attr-defined]
    items = TimelineItem.__table__  # type: ignore[attr-defined]
    holders = ItemHolder.__table__  # type: ignore[attr-defined]
    held_by_service = (
        select(holders.c.item_id)
        .where(holders.c.item_id == links.c.item_id, holders.c.source_service == service)
        .exists()
    )
    query = (
        select(links.c.item_id, links.c.occurred_at, items.c.identity)
        .join(items, items.c.id == links.c.item_id)
        .where(
            links.c.org_id == org_id,
            links.c.record_type == record_type,
            links.c.record_id == record_id,
            items.c.identity.is_not(None),
            held_by_service,
        )
    )
    if after_at is not None and after_id is not None:
        query = query.where(
            or_(
                links.c.occurred_at < after_at,
                and_(links.c.occurred_at == after_at, links.c.item_id < after_id),
            )
        )
    query = query.order_by(links.c.occurred_at.desc(), links.c.item_id.desc()).limit(limit)
    rows = (await session.execute(query)).all()
    records = await _records_of(session, [row.item_id for row in rows])
    return ItemRecordsList(
        items=[
            ItemRecordsPublic(
                identity=row.identity,
                item_id=row.item_id,
                occurred_at=row.occurred_at,
                records=records[row.item_id],
            )
            for row in rows
        ]
    )
