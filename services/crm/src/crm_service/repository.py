"""Every lead query. Reads are scoped to the caller's org and, for lists, to what they may read."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from crm_service.models import Lead
from pipedesk_common.rbac import ReadScope


@dataclass(frozen=True)
class LeadFilters:
    status: Sequence[str] = ()
    priority: Sequence[str] = ()
    owner_id: str | None = None
    team_id: str | None = None
    q: str | None = None
    deleted: bool = False


SORT_COLUMNS = {"created_at": col(Lead.created_at), "updated_at": col(Lead.updated_at)}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _readable(scope: ReadScope) -> ColumnElement[bool]:
    if scope.whole_org:
        return true()
    conditions = [col(Lead.owner_id) == scope.user_id]
    if scope.team_ids:
        conditions.append(col(Lead.team_id).in_(sorted(scope.team_ids)))
    return or_(*conditions)


class LeadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, lead: Lead) -> None:
        self.session.add(lead)

    async def get(self, org_id: str, lead_id: UUID, *, for_update: bool = False) -> Lead | None:
        """A lead of the org, deleted or not; the caller decides what the user may see."""
        query = select(Lead).where(col(Lead.org_id) == org_id, col(Lead.id) == lead_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get_by_id(self, lead_id: UUID) -> Lead | None:
        return await self.session.get(Lead, lead_id)

    async def list_readable(
        self,
        scope: ReadScope,
        filters: LeadFilters,
        *,
        sort: str,
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[Lead]:
        deleted_at = col(Lead.deleted_at)
        query = select(Lead).where(
            col(Lead.org_id) == scope.org_id,
            _readable(scope),
            deleted_at.is_not(None) if filters.deleted else deleted_at.is_(None),
        )
        if filters.status:
            query = query.where(col(Lead.status).in_(filters.status))
        if filters.priority:
            query = query.where(col(Lead.priority).in_(filters.priority))
        if filters.owner_id is not None:
            query = query.where(col(Lead.owner_id) == filters.owner_id)
        if filters.team_id is not None:
            query = query.where(col(Lead.team_id) == filters.team_id)
        if filters.q:
            pattern = f"%{_escape_like(filters.q)}%"
            query = query.where(
                or_(
                    col(Lead.title).ilike(pattern, escape="\\"),
                    col(Lead.company_name).ilike(pattern, escape="\\"),
                )
            )
        descending = sort.startswith("-")
        column = SORT_COLUMNS[sort.lstrip("-")]
        key = tuple_(column, col(Lead.id))
        if after is not None:
            query = query.where(key < tuple_(*after) if descending else key > tuple_(*after))
        lead_id = col(Lead.id)
        order = (column.desc(), lead_id.desc()) if descending else (column.asc(), lead_id.asc())
        query = query.order_by(*order).limit(limit)
        return list((await self.session.scalars(query)).all())
