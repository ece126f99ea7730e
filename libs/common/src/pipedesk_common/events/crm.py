"""Events the CRM service publishes (routing keys ``crm.*``)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import AwareDatetime, Field

from pipedesk_common.events.envelope import EventData, VersionedData, contract
from pipedesk_common.events.timeline import Link, TimelineProjection


class LeadSnapshot(VersionedData):
    """A lead as it is after the change (``id`` and ``version`` identify it)."""

    org_id: str
    title: str
    company_name: str | None
    owner_id: str
    team_id: str | None
    status: str
    priority: str
    source: str | None
    estimated_value: Decimal | None
    currency: str | None
    tags: list[str]
    next_step: str | None
    sla_due_at: datetime | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    deleted_at: AwareDatetime | None
    company_id: str | None = None
    contact_ids: list[str] = Field(
        default_factory=list, description="The lead's contacts, for participant matching"
    )
    sla_managed: bool = Field(
        False,
        description="An SLA policy applies: the automation service sets `sla_due_at`",
    )


@contract("crm", "lead", "created")
class LeadCreated(LeadSnapshot):
    """A lead was created."""


@contract("crm", "lead", "updated")
class LeadUpdated(LeadSnapshot):
    """Fields of a lead changed."""

    changed: list[str] = Field(description="The fields this change touched")


@contract("crm", "lead", "deleted")
class LeadDeleted(LeadSnapshot):
    """A lead was moved to the trash."""


@contract("crm", "lead", "restored")
class LeadRestored(LeadSnapshot):
    """A lead was restored from the trash."""


class AccessChanged(VersionedData):
    """A record's access list after a change; replicas keep the newest version."""

    version_stream: ClassVar[str] = "access"

    org_id: str
    owner_id: str | None
    team_id: str | None
    members: dict[str, str] = Field(default_factory=dict)
    deleted: bool = False
    audit_id: str | None = Field(
        None,
        description="The audit entry of the CRM change that changed access (an owner change, "
        "a member added or removed, a move to another team): effects elsewhere carry it",
    )


@contract("crm", "lead", "access_changed")
class LeadAccessChanged(AccessChanged):
    """Who may see or change a lead changed: owner, team, members or deletion."""


@contract("crm", "deal", "access_changed")
class DealAccessChanged(AccessChanged):
    """Who may see or change a deal changed: owner, team, members or deletion."""


class OwnerChange(VersionedData):
    """A record's owner changed (``id`` and ``version`` are the record's)."""

    version_stream: ClassVar[str] = "owner"

    org_id: str
    previous_owner_id: str
    new_owner_id: str
    reason: str | None
    changed_by: str
    previous_owner_kept_as: str | None = Field(
        None, description="`collaborator` when the previous owner stayed a member"
    )
    occurred_at: AwareDatetime


@contract("crm", "lead", "owner_changed")
class LeadOwnerChanged(OwnerChange):
    """A lead was handed to a new owner."""


@contract("crm", "deal", "owner_changed")
class DealOwnerChanged(OwnerChange):
    """A deal was handed to a new owner."""


class DealSnapshot(VersionedData):
    """A deal as it is after the change (``id`` and ``version`` identify it)."""

    org_id: str
    title: str
    company_id: str | None
    contact_ids: list[str] = Field(default_factory=list)
    lead_id: str | None = Field(None, description="The lead this deal was converted from")
    owner_id: str
    team_id: str | None
    stage: str = Field(description="qualification, proposal, negotiation, won or lost")
    amount: Decimal | None
    currency: str | None
    expected_close_date: date | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    deleted_at: AwareDatetime | None


@contract("crm", "deal", "created")
class DealCreated(DealSnapshot):
    """A deal was created, directly or by converting a lead."""


@contract("crm", "deal", "updated")
class DealUpdated(DealSnapshot):
    """Fields of a deal changed."""

    changed: list[str] = Field(description="The fields this change touched")


@contract("crm", "deal", "deleted")
class DealDeleted(DealSnapshot):
    """A deal was moved to the trash."""


@contract("crm", "deal", "restored")
class DealRestored(DealSnapshot):
    """A deal was restored from the trash."""


class ContactSnapshot(VersionedData):
    """A contact as it is after the change; every email is lower case."""

    org_id: str
    name: str
    emails: list[str] = Field(description="Every address of the contact, lower case")
    phones: list[str] = Field(default_factory=list)
    company_id: str | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    deleted_at: AwareDatetime | None


@contract("crm", "contact", "created")
class ContactCreated(ContactSnapshot):
    """A contact was created."""


@contract("crm", "contact", "updated")
class ContactUpdated(ContactSnapshot):
    """Fields of a contact changed (``emails`` lists all of them after the change)."""

    changed: list[str] = Field(description="The fields this change touched")


@contract("crm", "contact", "deleted")
class ContactDeleted(ContactSnapshot):
    """A contact was moved to the trash."""


@contract("crm", "contact", "restored")
class ContactRestored(ContactSnapshot):
    """A contact was restored from the trash."""


class CompanySnapshot(VersionedData):
    """A company as it is after the change."""

    org_id: str
    name: str
    domain: str | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    deleted_at: AwareDatetime | None


@contract("crm", "company", "created")
class CompanyCreated(CompanySnapshot):
    """A company was created."""


@contract("crm", "company", "updated")
class CompanyUpdated(CompanySnapshot):
    """Fields of a company changed."""

    changed: list[str] = Field(description="The fields this change touched")


@contract("crm", "company", "deleted")
class CompanyDeleted(CompanySnapshot):
    """A company was moved to the trash."""


@contract("crm", "company", "restored")
class CompanyRestored(CompanySnapshot):
    """A company was restored from the trash."""


class NoteData(VersionedData):
    """A note on a CRM record, the CRM's own communication record."""

    org_id: str
    record: Link
    author_id: str
    kind: str = Field("note", description="note, or call: a call with the record's contact")
    body: str
    created_at: AwareDatetime
    updated_at: AwareDatetime
    deleted_at: AwareDatetime | None
    timeline: TimelineProjection


@contract("crm", "note", "created")
class NoteCreated(NoteData):
    """A note was added to a record."""


@contract("crm", "note", "updated")
class NoteUpdated(NoteData):
    """Its author edited a note."""


@contract("crm", "note", "deleted")
class NoteDeleted(NoteData):
    """Its author deleted a note (the timeline shows it as deleted)."""


class UserSnapshot(VersionedData):
    """A user of the org directory (``id`` is the identity provider's ``sub``)."""

    org_id: str
    email: str | None
    name: str | None
    role: str
    team_ids: list[str]
    active: bool = Field(True, description="False once an admin deactivated the user")


@contract("crm", "user", "created")
class UserCreated(UserSnapshot):
    """A user appeared in the directory: first request, or pre-provisioned by an admin."""


@contract("crm", "user", "updated")
class UserUpdated(UserSnapshot):
    """A user's email, name, role or teams changed, or an admin deactivated (``active``
    false: their tokens are refused everywhere) or reactivated them."""


class TeamSnapshot(VersionedData):
    """A team of the org directory."""

    org_id: str
    name: str
    archived: bool


@contract("crm", "team", "created")
class TeamCreated(TeamSnapshot):
    """An admin created a team."""


@contract("crm", "team", "updated")
class TeamUpdated(TeamSnapshot):
    """An admin renamed a team."""


@contract("crm", "team", "archived")
class TeamArchived(TeamSnapshot):
    """An admin archived a team."""


@contract("crm", "audit", "recorded")
class AuditRecorded(EventData):
    """One audited change of a CRM record: who changed which fields, from what to what."""

    id: str
    record: Link
    action: str = Field(description="created, updated, deleted, restored, …")
    actor_id: str | None
    changes: dict[str, tuple[Any, Any]] = Field(
        default_factory=dict, description="field → [old, new]"
    )
    occurred_at: AwareDatetime
    timeline: TimelineProjection
    reason: str | None = Field(None, description="Why, when the actor gave a reason")
