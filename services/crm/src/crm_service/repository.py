"""Every query of CRM records. Reads are scoped to the caller's org and, for lists of leads and
deals, to what the caller may read (owner, team, membership), in SQL."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from sqlalchemy import ColumnElement, Select, bindparam, func, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from crm_service.models import Company, Contact, Deal, Lead, Note, RecordMember
from pipedesk_common.rbac import ReadScope

R = TypeVar("R", Lead, Deal, Contact, Company)


@dataclass(frozen=True)
class Filters:
    """List filters: ``one_of`` column → allowed values, ``equals`` column → value."""

    one_of: Sequence[tuple[str, Sequence[Any]]] = ()
    equals: Sequence[tuple[str, Any]] = ()
    contains_email: str | None = None
    q: str | None = None
    deleted: bool = False


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


TEXT_SEARCH: dict[type[Any], Sequence[Any]] = {
    Lead: (col(Lead.title), col(Lead.company_name)),
    Deal: (col(Deal.title),),
    Contact: (col(Contact.name), func.array_to_string(col(Contact.emails), " ")),
    Company: (col(Company.name), col(Company.domain)),
}


def has_contact_matching(model: type[Lead] | type[Deal], pattern: str) -> ColumnElement[bool]:
    """The record has a contact whose name or one of whose emails matches ``pattern``."""
    contact_text = TEXT_SEARCH[Contact]
    return (
        select(col(Contact.id))
        .where(
            col(Contact.id) == func.any(col(model.contact_ids)),
            col(Contact.org_id) == col(model.org_id),
            or_(*(column.ilike(pattern, escape="\\") for column in contact_text)),
        )
        .exists()
    )


def member_of(model: type[Lead] | type[Deal], scope: ReadScope) -> ColumnElement[bool]:
    record_type = "lead" if model is Lead else "deal"
    memberships = select(col(RecordMember.record_id)).where(
        col(RecordMember.org_id) == scope.org_id,
        col(RecordMember.user_id) == scope.user_id,
        col(RecordMember.record_type) == record_type,
    )
    return col(model.id).in_(memberships)


def readable(model: type[Lead] | type[Deal], scope: ReadScope) -> ColumnElement[bool]:
    if scope.whole_org:
        return true()
    conditions = [col(model.owner_id) == scope.user_id, member_of(model, scope)]
    if scope.team_ids:
        conditions.append(col(model.team_id).in_(sorted(scope.team_ids)))
    return or_(*conditions)


def _one_record(model: type[Any], for_update: bool) -> Select[Any]:
    query = select(model).where(
        col(model.org_id) == bindparam("org_id"), col(model.id) == bindparam("record_id")
    )
    return query.with_for_update() if for_update else query


# Built once per kind: every read or change of a record starts with it.
_ONE_RECORD: dict[tuple[type[Any], bool], Select[Any]] = {
    (model, for_update): _one_record(model, for_update)
    for model in (Lead, Deal, Contact, Company)
    for for_update in (False, True)
}


class RecordRepository(Generic[R]):
    model: type[R]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, record: R) -> None:
        self.session.add(record)

    async def get(self, org_id: str, record_id: UUID, *, for_update: bool = False) -> R | None:
        """A record of the org, deleted or not; the caller decides what the user may see."""
        query = _ONE_RECORD[self.model, for_update]
        found = await self.session.execute(query, {"org_id": org_id, "record_id": record_id})
        record: R | None = found.scalar_one_or_none()
        return record

    async def get_by_id(self, record_id: UUID) -> R | None:
        return await self.session.get(self.model, record_id)

    async def existing_ids(self, org_id: str, ids: Sequence[UUID]) -> set[UUID]:
        """Which of ``ids`` are live (not deleted) records of the org."""
        if not ids:
            return set()
        query = select(col(self.model.id)).where(
            col(self.model.org_id) == org_id,
            col(self.model.id).in_(list(ids)),
            col(self.model.deleted_at).is_(None),
        )
        return set((await self.session.scalars(query)).all())

    def _scoped(self, scope: ReadScope) -> Select[Any]:
        query = select(self.model).where(col(self.model.org_id) == scope.org_id)
        if self.model in {Lead, Deal}:
            query = query.where(readable(self.model, scope))  # type: ignore[arg-type]
        return query

    async def list_readable(
        self,
        scope: ReadScope,
        filters: Filters,
        *,
        sort: str,
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[R]:
        model = self.model
        deleted_at = col(model.deleted_at)
        query = self._scoped(scope).where(
            deleted_at.is_not(None) if filters.deleted else deleted_at.is_(None)
        )
        for name, values in filters.one_of:
            if values:
                query = query.where(getattr(model, name).in_(values))
        for name, value in filters.equals:
            query = query.where(getattr(model, name) == value)
        if filters.contains_email is not None:
            query = query.where(col(Contact.emails).contains([filters.contains_email]))
        if filters.q:
            pattern = f"%{escape_like(filters.q)}%"
            matches = [column.ilike(pattern, escape="\\") for column in TEXT_SEARCH[model]]
            if model in {Lead, Deal}:
                matches.append(has_contact_matching(model, pattern))  # type: ignore[arg-type]
            query = query.where(or_(*matches))
        descending = sort.startswith("-")
        column = getattr(model, sort.lstrip("-"))
        key = tuple_(column, col(model.id))
        if after is not None:
            query = query.where(key < tuple_(*after) if descending else key > tuple_(*after))
        record_id = col(model.id)
        order = (column.desc(), record_id.desc()) if descending else (column.asc(), record_id.asc())
        query = query.order_by(*order).limit(limit)
        return list((await self.session.scalars(query)).all())

    async def members(self, record_type: str, record_id: UUID) -> list[RecordMember]:
        query = (
            select(RecordMember)
            .where(
                col(RecordMember.record_type) == record_type,
                col(RecordMember.record_id) == record_id,
            )
            .order_by(col(RecordMember.added_at), col(RecordMember.user_id))
        )
        return list((await self.session.scalars(query)).all())

    async def notes(
        self,
        org_id: str,
        record_type: str,
        record_id: UUID,
        *,
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[Note]:
        query = select(Note).where(
            col(Note.org_id) == org_id,
            col(Note.record_type) == record_type,
            col(Note.record_id) == record_id,
            col(Note.deleted_at).is_(None),
        )
        key = tuple_(col(Note.created_at), col(Note.id))
        if after is not None:
            query = query.where(key < tuple_(*after))
        query = query.order_by(col(Note.created_at).desc(), col(Note.id).desc()).limit(limit)
        return list((await self.session.scalars(query)).all())

    async def note(self, org_id: str, note_id: UUID) -> Note | None:
        query = (
            select(Note)
            .where(col(Note.org_id) == org_id, col(Note.id) == note_id)
            .with_for_update()
        )
        return (await self.session.execute(query)).scalar_one_or_none()


class LeadRepository(RecordRepository[Lead]):
    model = Lead


class DealRepository(RecordRepository[Deal]):
    model = Deal

    async def of_lead(self, lead_id: UUID) -> Deal | None:
        return (
            await self.session.execute(select(Deal).where(col(Deal.lead_id) == lead_id))
        ).scalar_one_or_none()


class ContactRepository(RecordRepository[Contact]):
    model = Contact


class CompanyRepository(RecordRepository[Company]):
    model = Company
