"""CRM records' domain logic. Access is decided by ``can`` before any write; nothing here commits,
and nothing here writes audit rows: the session listeners of ``crm_service.audit`` do."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC
from typing import Any, ClassVar, Generic
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import DateTime, Numeric, inspect

from crm_service.audit import OwnerChangeContext, act_as, explain_owner_change
from crm_service.directory import active_user
from crm_service.models import (
    Company,
    Contact,
    Deal,
    Lead,
    LeadStatus,
    Note,
    NoteKind,
    RecordMember,
)
from crm_service.repository import (
    CompanyRepository,
    ContactRepository,
    DealRepository,
    Filters,
    LeadRepository,
    R,
    RecordRepository,
)
from crm_service.schemas import REQUIRED_ON_UPDATE, LeadConvert, OwnerChange
from pipedesk_common.auth import Principal, Role
from pipedesk_common.clock import Clock
from pipedesk_common.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
)
from pipedesk_common.ids import new_id
from pipedesk_common.rbac import ROLE_ACTIONS, AccessList, Action, MemberRole, can, read_scope


def invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"{field}: {message}",
        errors=[FieldError(field=field, message=message, code="invalid")],
    )


def _team_for(principal: Principal, requested: str | None) -> str | None:
    """The team a record is filed under: one of the caller's teams (any team, for an admin)."""
    if requested is None:
        if len(principal.team_ids) > 1:
            raise invalid("body.team_id", "required: you belong to several teams")
        return next(iter(principal.team_ids), None)
    if principal.role is not Role.ADMIN and requested not in principal.team_ids:
        raise invalid("body.team_id", "you are not a member of this team")
    return requested


def _present(data: BaseModel) -> dict[str, Any]:
    """The fields a partial update actually sent, with their (already validated) values."""
    return {name: getattr(data, name) for name in data.model_fields_set}


def _stored_differently(record: Any, name: str) -> bool:
    """Whether the database may give back ``record``'s value of ``name`` in another form than
    it was given: a number rounded to its column's scale, a time converted to UTC."""
    column = inspect(type(record)).columns[name]
    if isinstance(column.type, Numeric):
        return True
    if isinstance(column.type, DateTime):
        value = getattr(record, name)
        return value is not None and value.tzinfo is not UTC
    return False


class _Decisions(Generic[R]):
    """The access decisions about one record for one request. A record's members are read
    at most once, and only when a decision depends on them: ``can`` grants a member nothing
    it refuses to a non-member, so a decision allowed without them stands."""

    def __init__(self, service: "RecordService[R]", record: R | None) -> None:
        self.service: RecordService[R] = service
        self.record: R | None = record
        self.access: AccessList | None = None

    def about(self, record: R) -> "_Decisions[R]":
        if self.record is not record:
            self.record, self.access = record, None
        return self

    async def allowed(self, principal: Principal, action: Action) -> bool:
        record = self.record
        assert record is not None
        if not self.service.owned:
            if record.org_id != principal.org_id:
                return False
            return action is Action.READ or action in ROLE_ACTIONS[principal.role]
        if self.access is None:
            without_members = AccessList(
                org_id=record.org_id,
                owner_id=getattr(record, "owner_id", None),
                team_id=getattr(record, "team_id", None),
            )
            if can(principal, action, without_members):
                return True
            self.access = await self.service.access_list(record)
        return can(principal, action, self.access)


class RecordService(ABC, Generic[R]):
    """Create, read, list, update, delete and restore one kind of record, and its notes.

    Leads and deals are ``owned``: visible by owner, team and membership through ``can``.
    Contacts and companies are readable by the whole org and changed by any role allowed to.
    """

    record_type: ClassVar[str]
    owned: ClassVar[bool] = False
    repository: RecordRepository[R]

    def __init__(self, repository: RecordRepository[R], clock: Clock) -> None:
        self.repository = repository
        self.clock = clock

    @property
    def session(self) -> Any:
        return self.repository.session

    @property
    def label(self) -> str:
        return self.record_type

    @abstractmethod
    def build(self, principal: Principal, data: BaseModel, now: Any) -> R:
        """A new record of the caller's org from validated input."""

    async def validate(self, principal: Principal, record: R, changed: set[str]) -> None:
        """Cross-field and reference checks, before the record is written."""
        company_id: UUID | None = getattr(record, "company_id", None)
        if "company_id" in changed and company_id is not None:
            found = await CompanyRepository(self.session).existing_ids(
                principal.org_id, [company_id]
            )
            if not found:
                raise invalid("body.company_id", "no such company")
        if "contact_ids" in changed:
            wanted = list(getattr(record, "contact_ids", []))
            found = await ContactRepository(self.session).existing_ids(principal.org_id, wanted)
            for index, contact_id in enumerate(wanted):
                if contact_id not in found:
                    raise invalid(f"body.contact_ids.{index}", "no such contact")

    # --- access -------------------------------------------------------------------------------

    async def access_list(self, record: R) -> AccessList:
        members: dict[str, MemberRole] = {}
        if self.owned:
            rows = await self.repository.members(self.record_type, record.id)
            members = {row.user_id: MemberRole(row.role) for row in rows}
        return AccessList(
            org_id=record.org_id,
            owner_id=getattr(record, "owner_id", None),
            team_id=getattr(record, "team_id", None),
            members=members,
        )

    async def allowed(self, principal: Principal, action: Action, record: R) -> bool:
        return await _Decisions(self, record).allowed(principal, action)

    async def visible(
        self,
        principal: Principal,
        record_id: UUID,
        *,
        for_update: bool,
        decisions: "_Decisions[R] | None" = None,
    ) -> R:
        record = await self.repository.get(principal.org_id, record_id, for_update=for_update)
        if record is None:
            raise NotFound(f"no such {self.label}")
        decisions = decisions or _Decisions(self, record)
        if not await decisions.about(record).allowed(principal, Action.READ):
            raise NotFound(f"no such {self.label}")
        return record

    async def for_action(
        self, principal: Principal, record_id: UUID, action: Action, *, deleted: bool = False
    ) -> R:
        act_as(self.session, principal, self.clock)
        decisions: _Decisions[R] = _Decisions(self, None)
        record = await self.visible(principal, record_id, for_update=True, decisions=decisions)
        if record.deleted_at is not None and not deleted:
            raise NotFound(f"no such {self.label}")
        if record.deleted_at is None and deleted:
            raise Conflict(f"this {self.label} is not deleted")
        if not await decisions.allowed(principal, action):
            raise Forbidden(f"you may not {action.value.replace('_', ' ')} this {self.label}")
        return record

    def touch(self, record: Any) -> None:
        record.updated_at = self.clock.now()
        record.version += 1

    async def answer(self, record: R) -> R:
        await self.session.flush()
        await self.session.refresh(record)  # answer with values as stored
        return record

    async def answer_changed(self, record: R, changed: set[str]) -> R:
        """``answer`` after an update of the row locked by ``for_action``: only the values the
        database may store differently from how they were given (amounts rounded to their
        scale, times not in UTC) are read back; the others are as stored already."""
        await self.session.flush()
        stored = sorted(
            name for name in changed | {"updated_at"} if _stored_differently(record, name)
        )
        if stored:
            await self.session.refresh(record, attribute_names=stored)
        return record

    # --- records ------------------------------------------------------------------------------

    async def create(self, principal: Principal, data: BaseModel) -> R:
        act_as(self.session, principal, self.clock)
        record = self.build(principal, data, self.clock.now())
        if not await self.allowed(principal, Action.CREATE, record):
            raise Forbidden(f"your role may not create {self.label}s")
        await self.validate(principal, record, set(type(data).model_fields))
        self.repository.add(record)
        return await self.answer(record)

    async def get(self, principal: Principal, record_id: UUID) -> R:
        record = await self.visible(principal, record_id, for_update=False)
        if record.deleted_at is not None:
            raise NotFound(f"no such {self.label}")
        return record

    async def list_readable(
        self,
        principal: Principal,
        filters: Filters,
        *,
        sort: str,
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[R]:
        return await self.repository.list_readable(
            read_scope(principal), filters, sort=sort, after=after, limit=limit
        )

    async def update(
        self, principal: Principal, record_id: UUID, data: BaseModel, *, if_match: int | None
    ) -> R:
        record = await self.for_action(principal, record_id, Action.UPDATE)
        if if_match is not None and if_match != record.version:
            raise PreconditionFailed(
                f"the {self.label} is at version {record.version}, not {if_match}"
            )
        changes = _present(data)
        for name in REQUIRED_ON_UPDATE[self.record_type] & changes.keys():
            if changes[name] is None:
                raise invalid(f"body.{name}", "may not be null")
        if "team_id" in changes:
            if changes["team_id"] is None and principal.role is not Role.ADMIN:
                raise invalid("body.team_id", "may not be null")
            if changes["team_id"] is not None:
                changes["team_id"] = _team_for(principal, changes["team_id"])
        changed = {name for name, value in changes.items() if getattr(record, name) != value}
        if "sla_due_at" in changed and getattr(record, "sla_managed", False):
            raise invalid("body.sla_due_at", "set by the org's SLA policy while one applies")
        if not changed:
            return record
        for name in changed:
            setattr(record, name, changes[name])
        await self.validate(principal, record, changed)
        self.touch(record)
        return await self.answer_changed(record, changed)

    async def delete(self, principal: Principal, record_id: UUID) -> R:
        record = await self.for_action(principal, record_id, Action.DELETE)
        record.deleted_at = self.clock.now()
        self.touch(record)
        return await self.answer(record)

    async def restore(self, principal: Principal, record_id: UUID) -> R:
        record = await self.for_action(principal, record_id, Action.RESTORE, deleted=True)
        record.deleted_at = None
        self.touch(record)
        return await self.answer(record)

    # --- notes --------------------------------------------------------------------------------

    async def add_note(
        self, principal: Principal, record_id: UUID, body: str, kind: NoteKind = NoteKind.NOTE
    ) -> Note:
        record = await self.for_action(principal, record_id, Action.UPDATE)
        now = self.clock.now()
        note = Note(
            id=new_id(),
            org_id=record.org_id,
            record_type=self.record_type,
            record_id=record.id,
            author_id=principal.sub,
            kind=kind.value,
            body=body,
            created_at=now,
            updated_at=now,
            version=1,
        )
        self.session.add(note)
        await self.session.flush()
        return note

    async def notes(
        self, principal: Principal, record_id: UUID, *, after: Sequence[Any] | None, limit: int
    ) -> list[Note]:
        record = await self.get(principal, record_id)
        return await self.repository.notes(
            principal.org_id, self.record_type, record.id, after=after, limit=limit
        )

    async def _own_note(self, principal: Principal, record_id: UUID, note_id: UUID) -> Note:
        act_as(self.session, principal, self.clock)
        record = await self.get(principal, record_id)
        note = await self.repository.note(principal.org_id, note_id)
        if (
            note is None
            or note.record_type != self.record_type
            or note.record_id != record.id
            or note.deleted_at is not None
        ):
            raise NotFound("no such note")
        if note.author_id != principal.sub:
            raise Forbidden("only its author may change a note")
        return note

    async def edit_note(
        self, principal: Principal, record_id: UUID, note_id: UUID, body: str
    ) -> Note:
        note = await self._own_note(principal, record_id, note_id)
        if note.body != body:
            note.body = body
            self.touch(note)
            await self.session.flush()
        return note

    async def delete_note(self, principal: Principal, record_id: UUID, note_id: UUID) -> None:
        note = await self._own_note(principal, record_id, note_id)
        note.deleted_at = self.clock.now()
        self.touch(note)
        await self.session.flush()

    # --- for other services -------------------------------------------------------------------

    async def access_of(self, record_id: UUID) -> tuple[R, dict[str, str]]:
        """For other services' access replicas: any org's record, by its globally unique id."""
        record = await self.repository.get_by_id(record_id)
        if record is None:
            raise NotFound(f"no such {self.label}")
        members = await self.repository.members(self.record_type, record.id)
        return record, {member.user_id: member.role for member in members}


class OwnedRecordService(RecordService[R]):
    """Leads and deals: owner, team, members and owner change."""

    owned = True

    @abstractmethod
    def check_money(self, record: R) -> None:
        """Refuse an amount without a currency."""

    async def validate(self, principal: Principal, record: R, changed: set[str]) -> None:
        await super().validate(principal, record, changed)  # type: ignore[arg-type]
        self.check_money(record)

    async def members(self, principal: Principal, record_id: UUID) -> list[RecordMember]:
        record = await self.get(principal, record_id)
        return await self.repository.members(self.record_type, record.id)

    async def put_member(
        self, principal: Principal, record_id: UUID, user_id: str, role: MemberRole
    ) -> RecordMember:
        record = await self.for_action(principal, record_id, Action.MANAGE_MEMBERS)
        if await active_user(self.session, principal.org_id, user_id) is None:
            raise invalid("path.user_id", "no such user in your organization")
        if user_id == record.owner_id:  # type: ignore[attr-defined]
            raise invalid("path.user_id", "the owner is not added as a member")
        current = {m.user_id: m for m in await self.repository.members(self.record_type, record.id)}
        member = current.get(user_id)
        if member is not None and member.role == role.value:
            return member
        if member is None:
            member = RecordMember(
                record_type=self.record_type,
                record_id=record.id,
                user_id=user_id,
                org_id=record.org_id,
                role=role.value,
                added_by=principal.sub,
                added_at=self.clock.now(),
            )
            self.session.add(member)
        else:
            member.role = role.value
        self.touch(record)
        await self.session.flush()
        return member

    async def remove_member(self, principal: Principal, record_id: UUID, user_id: str) -> None:
        leaving_on_their_own = user_id == principal.sub
        action = Action.READ if leaving_on_their_own else Action.MANAGE_MEMBERS
        record = await self.for_action(principal, record_id, action)
        current = {m.user_id: m for m in await self.repository.members(self.record_type, record.id)}
        member = current.get(user_id)
        if member is None:
            raise NotFound("no such member")
        await self.session.delete(member)
        self.touch(record)
        await self.session.flush()

    async def change_owner(self, principal: Principal, record_id: UUID, data: OwnerChange) -> R:
        """Hand the record to another user of the org, under each role's rules."""
        record = await self.for_action(principal, record_id, Action.CHANGE_OWNER)
        owner_id: str = record.owner_id  # type: ignore[attr-defined]
        team_id: str | None = record.team_id  # type: ignore[attr-defined]
        if principal.role is Role.MANAGER and team_id not in principal.team_ids:
            raise Forbidden(f"managers change the owner of their teams' {self.label}s only")
        if principal.role is Role.REP and owner_id != principal.sub:
            raise Forbidden(f"you may only hand over a {self.label} you own")
        target = await active_user(self.session, principal.org_id, data.new_owner_id)
        if target is None:
            raise invalid("body.new_owner_id", "no such user in your organization")
        if target.role == Role.VIEWER.value:
            raise invalid("body.new_owner_id", "a viewer cannot own records")
        if principal.role is not Role.ADMIN and not principal.team_ids & set(target.team_ids):
            raise invalid("body.new_owner_id", "not a member of your teams")
        if target.id == owner_id:
            raise Conflict(f"this user already owns the {self.label}")
        members = {m.user_id: m for m in await self.repository.members(self.record_type, record.id)}
        if target.id in members:
            await self.session.delete(members[target.id])
        kept_as = None
        if data.keep_previous_owner_as_member:
            kept_as = MemberRole.COLLABORATOR.value
            self.session.add(
                RecordMember(
                    record_type=self.record_type,
                    record_id=record.id,
                    user_id=owner_id,
                    org_id=record.org_id,
                    role=kept_as,
                    added_by=principal.sub,
                    added_at=self.clock.now(),
                )
            )
        context = OwnerChangeContext(data.reason, kept_as)
        explain_owner_change(self.session, str(record.id), context)
        record.owner_id = target.id
        self.touch(record)
        return await self.answer(record)


class LeadService(OwnedRecordService[Lead]):
    record_type = "lead"

    def __init__(self, repository: LeadRepository, clock: Clock) -> None:
        super().__init__(repository, clock)

    def build(self, principal: Principal, data: BaseModel, now: Any) -> Lead:
        lead = Lead(
            id=new_id(),
            org_id=principal.org_id,
            owner_id=principal.sub,
            created_by=principal.sub,
            created_at=now,
            updated_at=now,
            version=1,
            **data.model_dump(exclude={"team_id"}),
        )
        lead.team_id = _team_for(principal, getattr(data, "team_id", None))
        return lead

    def check_money(self, record: Lead) -> None:
        if record.estimated_value is not None and record.currency is None:
            raise invalid("body.currency", "required when estimated_value is set")

    async def convert(self, principal: Principal, lead_id: UUID, data: LeadConvert) -> Deal:
        """Turn a lead into a deal that keeps its owner, team, company, contacts and members."""
        lead = await self.for_action(principal, lead_id, Action.UPDATE)
        if not can(principal, Action.CREATE, await self.access_list(lead)):
            raise Forbidden("your role may not create deals")
        deals = DealRepository(self.session)
        if lead.status == LeadStatus.CONVERTED.value or await deals.of_lead(lead.id) is not None:
            raise Conflict("this lead is already converted")
        now = self.clock.now()
        amount = data.amount if "amount" in data.model_fields_set else lead.estimated_value
        currency = data.currency or (lead.currency if amount is not None else None)
        if amount is not None and currency is None:
            raise invalid("body.currency", "required when amount is set")
        deal = Deal(
            id=new_id(),
            org_id=lead.org_id,
            title=data.title or lead.title,
            company_id=lead.company_id,
            contact_ids=list(lead.contact_ids),
            lead_id=lead.id,
            owner_id=lead.owner_id,
            team_id=lead.team_id,
            stage=data.stage.value,
            amount=amount,
            currency=currency,
            expected_close_date=data.expected_close_date,
            created_by=principal.sub,
            created_at=now,
            updated_at=now,
            version=1,
        )
        self.session.add(deal)
        await self.session.flush()
        members = await self.repository.members("lead", lead.id)
        for member in members:
            self.session.add(
                RecordMember(
                    record_type="deal",
                    record_id=deal.id,
                    user_id=member.user_id,
                    org_id=member.org_id,
                    role=member.role,
                    added_by=principal.sub,
                    added_at=now,
                )
            )
        if members:
            self.touch(deal)  # its access list changed after creation: a newer version
        lead.status = LeadStatus.CONVERTED.value
        self.touch(lead)
        await self.session.flush()
        await self.session.refresh(deal)
        return deal


class DealService(OwnedRecordService[Deal]):
    record_type = "deal"

    def build(self, principal: Principal, data: BaseModel, now: Any) -> Deal:
        deal = Deal(
            id=new_id(),
            org_id=principal.org_id,
            owner_id=principal.sub,
            created_by=principal.sub,
            created_at=now,
            updated_at=now,
            version=1,
            **data.model_dump(exclude={"team_id"}),
        )
        deal.team_id = _team_for(principal, getattr(data, "team_id", None))
        return deal

    def check_money(self, record: Deal) -> None:
        if record.amount is not None and record.currency is None:
            raise invalid("body.currency", "required when amount is set")


class ContactService(RecordService[Contact]):
    record_type = "contact"

    def build(self, principal: Principal, data: BaseModel, now: Any) -> Contact:
        return Contact(
            id=new_id(),
            org_id=principal.org_id,
            created_by=principal.sub,
            created_at=now,
            updated_at=now,
            version=1,
            **data.model_dump(),
        )


class CompanyService(RecordService[Company]):
    record_type = "company"

    def build(self, principal: Principal, data: BaseModel, now: Any) -> Company:
        return Company(
            id=new_id(),
            org_id=principal.org_id,
            created_by=principal.sub,
            created_at=now,
            updated_at=now,
            version=1,
            **data.model_dump(),
        )
