"""Timeline queries. Every read is scoped to the viewer's org and decides visibility in SQL, so
pages stay full and a search never matches content the viewer may not see."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Text, and_, exists, false, literal, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from pipedesk_common.auth import Principal
from pipedesk_common.rbac import ReadScope, read_scope
from timeline_service.models import (
    AccessVersion,
    CrmRecord,
    RecordVersion,
    TimelineItem,
    TimelineLink,
    access_replica,
)
from timeline_service.projection import ORG_READABLE_RECORDS

# Records readable org-wide, whose timelines show an item depending on its other links.
ORG_READABLE = ORG_READABLE_RECORDS
ACL_RECORDS = ("lead", "deal")
FULL_SHARING = (None, "full")
TITLE_SHARING = ("full", "subject")


@dataclass(frozen=True)
class Viewer:
    principal: Principal

    @property
    def scope(self) -> ReadScope:
        return read_scope(self.principal)

    @property
    def email(self) -> str:
        return (self.principal.email or "").strip().lower()


@dataclass(frozen=True)
class Query:
    record_type: str
    record_id: str
    kinds: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None


def readable_record(scope: ReadScope, replica: Any = access_replica) -> Any:
    """``can(viewer, READ, access_list)`` over replica rows, as SQL (see ``ReadScope``)."""
    clauses = [replica.c.org_id == scope.org_id, replica.c.deleted.is_(False)]
    if scope.whole_org:
        return and_(*clauses)
    return and_(
        *clauses,
        or_(
            replica.c.owner_id == scope.user_id,
            replica.c.members.has_key(scope.user_id),
            replica.c.team_id.in_(sorted(scope.team_ids)) if scope.team_ids else false(),
        ),
    )


def full_view(viewer: Viewer) -> Any:
    """The viewer sees everything of an item from their own mailbox or calendar, or one they
    take part in."""
    items = TimelineItem.__table__  # type: ignore[attr-defined]
    attendee = (
        literal(viewer.email, type_=Text) == items.c.participants.any_()
        if viewer.email
        else false()
    )
    return or_(items.c.owner_id == viewer.principal.sub, attendee)


def title_visible(viewer: Viewer) -> Any:
    items = TimelineItem.__table__  # type: ignore[attr-defined]
    shared = or_(items.c.sharing.is_(None), items.c.sharing.in_(TITLE_SHARING))
    return or_(full_view(viewer), and_(items.c.private.is_(False), shared))


def summary_visible(viewer: Viewer) -> Any:
    items = TimelineItem.__table__  # type: ignore[attr-defined]
    shared = or_(items.c.sharing.is_(None), items.c.sharing == "full")
    return or_(full_view(viewer), and_(items.c.private.is_(False), shared))


def attached_through_readable_record(viewer: Viewer) -> Any:
    """Contact and company timelines show an item only if the viewer could see it through a
    lead or deal, or it is from their own sources, or it is the record's own history (an item
    explicitly attached to it that is nobody's mailbox or calendar)."""
    items = TimelineItem.__table__  # type: ignore[attr-defined]
    other = TimelineLink.__table__.alias("other")  # type: ignore[attr-defined]
    replica = access_replica.alias("replica")
    through_record = exists(
        select(1)
        .select_from(other)
        .join(
            replica,
            and_(
                replica.c.record_type == other.c.record_type,
                replica.c.record_id == other.c.record_id,
            ),
        )
        .where(
            other.c.item_id == items.c.id,
            other.c.record_type.in_(ACL_RECORDS),
            readable_record(viewer.scope, replica),
        )
    )
    own_history = and_(col(TimelineLink.explicit).is_(True), items.c.owner_id.is_(None))
    return or_(through_record, items.c.owner_id == viewer.principal.sub, own_history)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(query: Query, viewer: Viewer) -> Any:
    items = TimelineItem.__table__  # type: ignore[attr-defined]
    statement = (
        select(TimelineItem, col(TimelineLink.change_version))
        .join(TimelineLink, col(TimelineLink.item_id) == col(TimelineItem.id))
        .where(
            col(TimelineLink.org_id) == viewer.principal.org_id,
            col(TimelineLink.record_type) == query.record_type,
            col(TimelineLink.record_id) == query.record_id,
            col(TimelineItem.org_id) == viewer.principal.org_id,
        )
    )
    if query.record_type in ORG_READABLE:
        statement = statement.where(attached_through_readable_record(viewer))
    if query.kinds:
        statement = statement.where(col(TimelineItem.kind).in_(query.kinds))
    if query.since is not None:
        statement = statement.where(col(TimelineLink.occurred_at) >= query.since)
    if query.until is not None:
        statement = statement.where(col(TimelineLink.occurred_at) < query.until)
    if query.text:
        pattern = f"%{_escape_like(query.text)}%"
        statement = statement.where(
            or_(
                and_(title_visible(viewer), items.c.title.ilike(pattern, escape="\\")),
                and_(summary_visible(viewer), items.c.summary.ilike(pattern, escape="\\")),
            )
        )
    return statement


async def record_items(
    session: AsyncSession,
    query: Query,
    viewer: Viewer,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[TimelineItem]:
    """A page, newest first, by keyset on (occurred_at, item id)."""
    statement = _filtered(query, viewer)
    key = tuple_(col(TimelineLink.occurred_at), col(TimelineLink.item_id))
    if after is not None:
        statement = statement.where(key < tuple_(*after))
    statement = statement.order_by(
        col(TimelineLink.occurred_at).desc(), col(TimelineLink.item_id).desc()
    ).limit(limit)
    return [item for item, _ in (await session.execute(statement)).all()]


async def changed_items(
    session: AsyncSession,
    query: Query,
    viewer: Viewer,
    *,
    after_version: int,
    limit: int | None,
    up_to: int | None = None,
) -> list[tuple[TimelineItem, int]]:
    """Items of the record added or changed after ``after_version``, oldest change first."""
    statement = (
        _filtered(query, viewer)
        .where(col(TimelineLink.change_version) > after_version)
        .order_by(col(TimelineLink.change_version), col(TimelineLink.item_id))
        .limit(limit)
    )
    if up_to is not None:
        statement = statement.where(col(TimelineLink.change_version) <= up_to)
    return [(item, int(version)) for item, version in (await session.execute(statement)).all()]


async def visible_links(
    session: AsyncSession, item_ids: Sequence[UUID], viewer: Viewer
) -> dict[UUID, list[tuple[str, str]]]:
    """The records each item is attached to, limited to those the viewer may see."""
    if not item_ids:
        return {}
    links = TimelineLink.__table__  # type: ignore[attr-defined]
    replica = access_replica
    readable = exists(
        select(1).where(
            replica.c.record_type == links.c.record_type,
            replica.c.record_id == links.c.record_id,
            readable_record(viewer.scope, replica),
        )
    )
    live_org_record = ~exists(
        select(1).where(
            col(CrmRecord.org_id) == links.c.org_id,
            col(CrmRecord.record_type) == links.c.record_type,
            col(CrmRecord.record_id) == links.c.record_id,
            col(CrmRecord.deleted).is_(True),
        )
    )
    rows = await session.execute(
        select(links.c.item_id, links.c.record_type, links.c.record_id)
        .where(
            links.c.item_id.in_(item_ids),
            links.c.org_id == viewer.principal.org_id,
            or_(
                and_(links.c.record_type.in_(ACL_RECORDS), readable),
                and_(links.c.record_type.in_(sorted(ORG_READABLE)), live_org_record),
            ),
        )
        .order_by(links.c.record_type, links.c.record_id)
    )
    found: dict[UUID, list[tuple[str, str]]] = {}
    for item_id, record_type, record_id in rows:
        found.setdefault(item_id, []).append((record_type, record_id))
    return found


async def org_record_exists(
    session: AsyncSession, org_id: str, record_type: str, record_id: str
) -> bool:
    """A contact or company the timeline has heard of and that is not in the trash."""
    found = await session.scalar(
        select(true()).where(
            col(CrmRecord.org_id) == org_id,
            col(CrmRecord.record_type) == record_type,
            col(CrmRecord.record_id) == record_id,
            col(CrmRecord.deleted).is_(False),
        )
    )
    return bool(found)


async def versions(
    session: AsyncSession, org_id: str, record_type: str, record_id: str
) -> tuple[int, int]:
    """The record's version and the org's access-list version."""
    record_version = await session.scalar(
        select(col(RecordVersion.version)).where(
            col(RecordVersion.org_id) == org_id,
            col(RecordVersion.record_type) == record_type,
            col(RecordVersion.record_id) == record_id,
        )
    )
    access_version = await session.scalar(
        select(col(AccessVersion.version)).where(col(AccessVersion.org_id) == org_id)
    )
    return int(record_version or 0), int(access_version or 0)
