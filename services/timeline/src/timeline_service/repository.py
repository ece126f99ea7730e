"""Timeline queries: a record's items, newest first, by keyset on (occurred_at, item id)."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from timeline_service.models import TimelineItem, TimelineLink


async def record_items(
    session: AsyncSession,
    *,
    org_id: str,
    record_type: str,
    record_id: str,
    kinds: Sequence[str],
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[TimelineItem]:
    query = (
        select(TimelineItem)
        .join(TimelineLink, col(TimelineLink.item_id) == col(TimelineItem.id))
        .where(
            col(TimelineLink.org_id) == org_id,
            col(TimelineLink.record_type) == record_type,
            col(TimelineLink.record_id) == record_id,
        )
    )
    if kinds:
        query = query.where(col(TimelineItem.kind).in_(kinds))
    key = tuple_(col(TimelineLink.occurred_at), col(TimelineLink.item_id))
    if after is not None:
        query = query.where(key < tuple_(*after))
    query = query.order_by(
        col(TimelineLink.occurred_at).desc(), col(TimelineLink.item_id).desc()
    ).limit(limit)
    return list((await session.scalars(query)).all())


async def links_of(
    session: AsyncSession, item_ids: Sequence[UUID]
) -> dict[UUID, list[tuple[str, str]]]:
    if not item_ids:
        return {}
    rows = await session.execute(
        select(
            col(TimelineLink.item_id), col(TimelineLink.record_type), col(TimelineLink.record_id)
        ).where(col(TimelineLink.item_id).in_(item_ids))
    )
    found: dict[UUID, list[tuple[str, str]]] = {}
    for item_id, record_type, record_id in rows:
        found.setdefault(item_id, []).append((record_type, record_id))
    return found
