"""Lead domain logic. Access is decided by ``can`` before any write; nothing here commits."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from crm_service.audit import record_lead_change
from crm_service.models import Lead
from crm_service.repository import LeadFilters, LeadRepository
from crm_service.schemas import REQUIRED_ON_UPDATE, LeadCreate, LeadUpdate
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
from pipedesk_common.rbac import AccessList, Action, can, read_scope


def access_list(lead: Lead) -> AccessList:
    return AccessList(org_id=lead.org_id, owner_id=lead.owner_id, team_id=lead.team_id)


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"{field}: {message}",
        errors=[FieldError(field=f"body.{field}", message=message, code="invalid")],
    )


def _team_for(principal: Principal, requested: str | None) -> str | None:
    """The team a lead is filed under: one of the caller's teams (any team, for an admin)."""
    if requested is None:
        if len(principal.team_ids) > 1:
            raise _invalid("team_id", "required: you belong to several teams")
        return next(iter(principal.team_ids), None)
    if principal.role is not Role.ADMIN and requested not in principal.team_ids:
        raise _invalid("team_id", "you are not a member of this team")
    return requested


def _check_money(lead: Lead) -> None:
    if lead.estimated_value is not None and lead.currency is None:
        raise _invalid("currency", "required when estimated_value is set")


class LeadService:
    def __init__(self, repository: LeadRepository, clock: Clock) -> None:
        self.repository = repository
        self.clock = clock

    async def create(self, principal: Principal, data: LeadCreate) -> Lead:
        now = self.clock.now()
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
        lead.team_id = _team_for(principal, data.team_id)
        if not can(principal, Action.CREATE, access_list(lead)):
            raise Forbidden("your role may not create leads")
        _check_money(lead)
        self.repository.add(lead)
        await self.repository.session.flush()
        await self.repository.session.refresh(lead)  # answer with values as stored
        await record_lead_change(self.repository.session, principal, lead, "created", {})
        return lead

    async def _visible(self, principal: Principal, lead_id: UUID, *, for_update: bool) -> Lead:
        lead = await self.repository.get(principal.org_id, lead_id, for_update=for_update)
        if lead is None or not can(principal, Action.READ, access_list(lead)):
            raise NotFound("no such lead")
        return lead

    async def _for_action(
        self, principal: Principal, lead_id: UUID, action: Action, *, deleted: bool
    ) -> Lead:
        lead = await self._visible(principal, lead_id, for_update=True)
        if lead.deleted_at is not None and not deleted:
            raise NotFound("no such lead")
        if lead.deleted_at is None and deleted:
            raise Conflict("this lead is not deleted")
        if not can(principal, action, access_list(lead)):
            raise Forbidden(f"you may not {action.value.replace('_', ' ')} this lead")
        return lead

    async def get(self, principal: Principal, lead_id: UUID) -> Lead:
        lead = await self._visible(principal, lead_id, for_update=False)
        if lead.deleted_at is not None:
            raise NotFound("no such lead")
        return lead

    async def list(
        self,
        principal: Principal,
        filters: LeadFilters,
        *,
        sort: str,
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[Lead]:
        return await self.repository.list_readable(
            read_scope(principal), filters, sort=sort, after=after, limit=limit
        )

    async def update(
        self, principal: Principal, lead_id: UUID, data: LeadUpdate, *, if_match: int | None
    ) -> Lead:
        lead = await self._for_action(principal, lead_id, Action.UPDATE, deleted=False)
        if if_match is not None and if_match != lead.version:
            raise PreconditionFailed(f"the lead is at version {lead.version}, not {if_match}")
        changes = _present(data)
        for name in REQUIRED_ON_UPDATE & changes.keys():
            if changes[name] is None:
                raise _invalid(name, "may not be null")
        if "team_id" in changes:
            if changes["team_id"] is None and principal.role is not Role.ADMIN:
                raise _invalid("team_id", "may not be null")
            if changes["team_id"] is not None:
                changes["team_id"] = _team_for(principal, changes["team_id"])
        changed = {
            name: (getattr(lead, name), value)
            for name, value in changes.items()
            if getattr(lead, name) != value
        }
        if not changed:
            return lead
        for name, (_old, new) in changed.items():
            setattr(lead, name, new)
        _check_money(lead)
        self._touch(lead)
        await self.repository.session.flush()
        await self.repository.session.refresh(lead)  # answer with values as stored
        await record_lead_change(self.repository.session, principal, lead, "updated", changed)
        return lead

    async def delete(self, principal: Principal, lead_id: UUID) -> Lead:
        lead = await self._for_action(principal, lead_id, Action.DELETE, deleted=False)
        lead.deleted_at = self.clock.now()
        self._touch(lead)
        await record_lead_change(self.repository.session, principal, lead, "deleted", {})
        return lead

    async def restore(self, principal: Principal, lead_id: UUID) -> Lead:
        lead = await self._for_action(principal, lead_id, Action.RESTORE, deleted=True)
        lead.deleted_at = None
        self._touch(lead)
        await record_lead_change(self.repository.session, principal, lead, "restored", {})
        return lead

    async def access_of(self, lead_id: UUID) -> Lead:
        """For other services' access replicas: any org's lead, by its globally unique id."""
        lead = await self.repository.get_by_id(lead_id)
        if lead is None:
            raise NotFound("no such lead")
        return lead

    def _touch(self, lead: Lead) -> None:
        lead.updated_at = self.clock.now()
        lead.version += 1


def _present(data: BaseModel) -> dict[str, Any]:
    """The fields a partial update actually sent, with their (already validated) values."""
    return {name: getattr(data, name) for name in data.model_fields_set}
