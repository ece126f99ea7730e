"""Timeline queries. Every read is scoped to the viewer's org and decides visibility in SQL, so
pages stay full and a search never matches content the viewer may not see."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Text, and_, case, exists, false, func, literal, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from pipedesk_common.auth import Principal
from pipedesk_common.rbac import ReadScope, read_scope
from timeline_service.models import (
    AccessVersion,
    CrmRecord,
    ItemHolder,
    RecordVersion,
    TimelineLink,
    access_replica,
)
from timeline_service.projection import ORG_READABLE_RECORDS

# Records readable org-wide, whose timelines show an item depending on its other links.
ORG_READABLE = ORG_READABLE_RECORDS
ACL_RECORDS = ("lead", "deal")
# The copy's content that a viewer may be shown (as far as their level allows).
SHOWN_COLUMNS = (
    "kind", "title", "summary", "participants", "status", "actor_id", "source_service",
    "google_id", "url", "recurrence",
)  # fmt: skip


@dataclass(frozen=True)
class Viewer:
    principal: Principal

    @property
    def scope(self) -> ReadScope:
        return read_scope(self.principal)

    @property
    def email(self) -> str:
        return (self.principal.email or "").strip().lower()


class Level(IntEnum):
    """How much of a copy a viewer sees, least to most."""

    BUSY = 0  # a private event: its time only
    METADATA = 1  # a mailbox shared at metadata level (or a level this version does not know)
    SUBJECT = 2
    FULL = 3


@dataclass(frozen=True)
class ShownItem:
    """An item as one viewer is shown it: its id and time, one copy's content, and how much of
    that copy the viewer may see (``level``)."""

    id: UUID
    occurred_at: datetime
    level: Level
    kind: str
    title: str
    summary: str | None
    participants: list[str]
    status: str | None
    actor_id: str | None
    source_service: str
    google_id: str | None
    url: str | None
    recurrence: dict[str, Any] | None


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


def viewer_level(viewer: Viewer, holders: Any) -> Any:
    """The viewer's level of each copy, as SQL: everything of a copy in their own mailbox or
    calendar or one they take part in; else what its holder's sharing allows."""
    attendee = (
        literal(viewer.email, type_=Text) == holders.c.participants.any_()
        if viewer.email
        else false()
    )
    return case(
        (or_(holders.c.owner_id == viewer.principal.sub, attendee), int(Level.FULL)),
        (holders.c.private, int(Level.BUSY)),
        (or_(holders.c.sharing.is_(None), holders.c.sharing == "full"), int(Level.FULL)),
        (holders.c.sharing == "subject", int(Level.SUBJECT)),
        else_=int(Level.METADATA),
    )


def shown_copy(viewer: Viewer) -> Any:
    """Per item, the copy the viewer is shown: among its live copies (all of them once none is
    live), the one they may see most of, the newest of those. A viewer never sees one copy's
    content under another copy's sharing. Also, over all its copies: whether one is the
    viewer's own (``viewer_holds``) and whether any is someone's mailbox or calendar (``owned``).
    """
    holders = ItemHolder.__table__  # type: ignore[attr-defined]
    links = TimelineLink.__table__  # type: ignore[attr-defined]
    level = viewer_level(viewer, holders).label("level")
    return (
        select(
            *(holders.c[name] for name in SHOWN_COLUMNS),
            level,
            func.bool_or(holders.c.owner_id == viewer.principal.sub).over().label("viewer_holds"),
            func.bool_or(holders.c.owner_id.is_not(None)).over().label("owned"),
        )
        .where(holders.c.item_id == links.c.item_id, holders.c.org_id == links.c.org_id)
        .order_by(
            holders.c.held.desc(), level.desc(), holders.c.changed_at.desc(), holders.c.source_key
        )
        .limit(1)
        .lateral("shown")
    )


def attached_through_readable_record(viewer: Viewer, shown: Any) -> Any:
    """Contact and company timelines show an item only if the viewer could see it through a
    lead or deal, or it is from their own sources, or it is the record's own history (an item
    explicitly attached to it that is nobody's mailbox or calendar)."""
    links = TimelineLink.__table__  # type: ignore[attr-defined]
    other = links.alias("other")
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
            other.c.item_id == links.c.item_id,
            other.c.record_type.in_(ACL_RECORDS),
            readable_record(viewer.scope, replica),
        )
    )
    own_history = and_(links.c.explicit.is_(True), shown.c.owned.is_(False))
    return or_(through_record, shown.c.viewer_holds.is_(True), own_history)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(query: Query, viewer: Viewer) -> Any:
    links = TimelineLink.__table__  # type: ignore[attr-defined]
    shown = shown_copy(viewer)
    statement = (
        select(shown, links.c.item_id, links.c.occurred_at.label("item_occurred_at"),
               links.c.change_version)
        .select_from(links.join(shown, true()))
        .where(
            links.c.org_id == viewer.principal.org_id,
            links.c.record_type == query.record_type,
            links.c.record_id == query.record_id,
        )
    )  # fmt: skip
    if query.record_type in ORG_READABLE:
        statement = statement.where(attached_through_readable_record(viewer, shown))
    if query.kinds:
        statement = statement.where(shown.c.kind.in_(query.kinds))
    if query.since is not None:
        statement = statement.where(links.c.occurred_at >= query.since)
    if query.until is not None:
        statement = statement.where(links.c.occurred_at < query.until)
    if query.text:
        pattern = f"%{_escape_like(query.text)}%"
        holders = ItemHolder.__table__  # type: ignore[attr-defined]
        some_copy_matches = exists(
            select(1).where(
                holders.c.item_id == links.c.item_id,
                or_(
                    holders.c.title.ilike(pattern, escape="\\"),
                    holders.c.summary.ilike(pattern, escape="\\"),
                ),
            )
        )
        # The text must be in what the viewer sees of the copy they are shown; that some copy
        # holds it at all is a cheap test that spares choosing the copy of every other item.
        statement = statement.where(
            some_copy_matches,
            or_(
                and_(
                    shown.c.level >= int(Level.SUBJECT), shown.c.title.ilike(pattern, escape="\\")
                ),
                and_(shown.c.level >= int(Level.FULL), shown.c.summary.ilike(pattern, escape="\\")),
            ),
        )
    return statement


def _shown(row: Any) -> ShownItem:
    values = row._mapping
    return ShownItem(
        id=values["item_id"],
        occurred_at=values["item_occurred_at"],
        level=Level(values["level"]),
        **{name: values[name] for name in SHOWN_COLUMNS},
    )


async def record_items(
    session: AsyncSession,
    query: Query,
    viewer: Viewer,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[ShownItem]:
    """A page, newest first, by keyset on (occurred_at, item id)."""
    links = TimelineLink.__table__  # type: ignore[attr-defined]
    statement = _filtered(query, viewer)
    key = tuple_(links.c.occurred_at, links.c.item_id)
    if after is not None:
        statement = statement.where(key < tuple_(*after))
    statement = statement.order_by(links.c.occurred_at.desc(), links.c.item_id.desc()).limit(limit)
    return [_shown(row) for row in (await session.execute(statement)).all()]


async def changed_items(
    session: AsyncSession,
    query: Query,
    viewer: Viewer,
    *,
    after_version: int,
    limit: int | None,
    up_to: int | None = None,
) -> list[tuple[ShownItem, int]]:
    """Items of the record added or changed after ``after_version``, oldest change first."""
    links = TimelineLink.__table__  # type: ignore[attr-defined]
    statement = (
        _filtered(query, viewer)
        .where(links.c.change_version > after_version)
        .order_by(links.c.change_version, links.c.item_id)
        .limit(limit)
    )
    if up_to is not None:
        statement = statement.where(links.c.change_version <= up_to)
    return [
        (_shown(row), int(row._mapping["change_version"]))
        for row in (await session.execute(statement)).all()
    ]


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


def _holds_series(org_id: str, record_type: str, record_id: str) -> Any:
    """Whether the record's timeline holds a live series, whose next occurrence moves on with
    time (so a page's validator must too)."""
    holders = ItemHolder.__table__  # type: ignore[attr-defined]
    links = TimelineLink.__table__  # type: ignore[attr-defined]
    return exists().where(
        # The live series' copies first (ix_holders_series: few), then their links.
        holders.c.org_id == org_id,
        holders.c.recurrence.is_not(None),
        holders.c.held,
        links.c.item_id == holders.c.item_id,
        links.c.org_id == org_id,
        links.c.record_type == record_type,
        links.c.record_id == record_id,
    )


def _versions(org_id: str, record_type: str, record_id: str) -> tuple[Any, Any]:
    record_version = (
        select(col(RecordVersion.version))
        .where(
            col(RecordVersion.org_id) == org_id,
            col(RecordVersion.record_type) == record_type,
            col(RecordVersion.record_id) == record_id,
        )
        .scalar_subquery()
    )
    access_version = (
        select(col(AccessVersion.version))
        .where(col(AccessVersion.org_id) == org_id)
        .scalar_subquery()
    )
    return record_version, access_version


async def versions(
    session: AsyncSession, org_id: str, record_type: str, record_id: str
) -> tuple[int, int]:
    """The record's version and the org's access-list version, in one round trip."""
    row = (await session.execute(select(*_versions(org_id, record_type, record_id)))).one()
    return int(row[0] or 0), int(row[1] or 0)


async def page_state(
    session: AsyncSession, org_id: str, record_type: str, record_id: str
) -> tuple[int, int, bool]:
    """``versions`` and whether the record's timeline holds a live series, in one round trip:
    what a page's validator is made of."""
    row = (
        await session.execute(
            select(
                *_versions(org_id, record_type, record_id),
                _holds_series(org_id, record_type, record_id),
            )
        )
    ).one()
    return int(row[0] or 0), int(row[1] or 0), bool(row[2])
