"""API shapes. Input models forbid unknown fields, so ``org_id``, ``owner_id``, ``version`` and
timestamps cannot be mass-assigned: sending them is a 422 naming the field."""

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from crm_service.models import DealStage, LeadPriority, LeadStatus, NoteKind
from pipedesk_common.auth import Role
from pipedesk_common.contract import NonBlank
from pipedesk_common.email_addresses import EMAIL_PATTERN
from pipedesk_common.ids import OpaqueId
from pipedesk_common.moments import IsoDate, Rfc3339
from pipedesk_common.rbac import MemberRole

Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300), NonBlank()
]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300), NonBlank()
]
Source = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NonBlank()
]
# Ids the identity provider chooses: opaque (``auth0|…``, an email…), see pipedesk_common.ids.
TeamId = OpaqueId
UserId = OpaqueId
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50), NonBlank()
]
# An amount: a JSON number or a plain decimal string, 0 to 99 999 999 999 999.99 in cents. The
# schema says so exactly (``multipleOf`` for a number, a pattern for a string), and a string is
# held to that pattern here too, so the document and the service accept the same amounts.
MONEY_TEXT_PATTERN: Final = r"^(0|[1-9][0-9]{0,13})(\.[0-9]{1,2})?$"
_MONEY_TEXT = re.compile(MONEY_TEXT_PATTERN)


def _plain_decimal_text(value: Any) -> Any:
    if isinstance(value, str) and not _MONEY_TEXT.match(value):
        raise ValueError("a plain decimal: up to 14 digits, a point and at most 2 decimals")
    return value


Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=16, decimal_places=2),
    BeforeValidator(_plain_decimal_text),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 99999999999999.99,
                    "multipleOf": 0.01,
                },
                {"type": "string", "pattern": MONEY_TEXT_PATTERN},
            ]
        },
        mode="validation",
    ),
]
NextStep = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


# The constraints come before the validator that lowers the text (they still apply after it):
# pydantic documents a pattern only when it is not behind a validator.
Email = Annotated[
    str,
    StringConstraints(max_length=320, pattern=EMAIL_PATTERN),
    BeforeValidator(_lower),
]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 ().\-/]{2,38}$")
]
# Stored lower case; either case is accepted.
Domain = Annotated[
    str,
    StringConstraints(
        max_length=253,
        pattern=r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$",
    ),
    BeforeValidator(_lower),
]
NoteBody = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10000), NonBlank()
]
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), NonBlank()
]


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


Tags = Annotated[list[Tag], Field(max_length=20), AfterValidator(_unique)]
ContactIds = Annotated[list[UUID], Field(max_length=50), AfterValidator(_unique)]
Emails = Annotated[list[Email], Field(max_length=20), AfterValidator(_unique)]
Phones = Annotated[list[Phone], Field(max_length=20), AfterValidator(_unique)]
TeamIds = Annotated[list[TeamId], Field(max_length=200), AfterValidator(_unique)]


class EditableLeadStatus(StrEnum):
    """Statuses a lead can be given directly; ``converted`` comes only from converting it."""

    NEW = LeadStatus.NEW.value
    CONTACTED = LeadStatus.CONTACTED.value
    QUALIFIED = LeadStatus.QUALIFIED.value
    DISQUALIFIED = LeadStatus.DISQUALIFIED.value


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def currency_with(amount: str) -> Callable[[dict[str, Any]], None]:
    """A ``json_schema_extra`` saying that a new record's ``amount`` (unless absent or null) comes
    with a ``currency`` (not null), as the service requires."""

    def document(schema: dict[str, Any]) -> None:
        schema.setdefault("allOf", []).append(
            {
                "anyOf": [
                    {"not": {"required": [amount]}},
                    {"properties": {amount: {"type": "null"}}},
                    {"required": ["currency"], "properties": {"currency": {"type": "string"}}},
                ]
            }
        )

    return document


class LeadCreate(_Input):
    model_config = ConfigDict(json_schema_extra=currency_with("estimated_value"))

    title: Title
    company_name: ShortText | None = None
    company_id: UUID | None = Field(None, description="A company of the org")
    contact_ids: ContactIds = Field(default_factory=list, description="Contacts of the org")
    team_id: TeamId | None = Field(
        None, description="Required when the creator belongs to several teams"
    )
    status: EditableLeadStatus = EditableLeadStatus.NEW
    priority: LeadPriority = LeadPriority.NORMAL
    source: Source | None = None
    estimated_value: Money | None = None
    currency: Currency | None = Field(None, description="ISO 4217; required with a value")
    tags: Tags = Field(default_factory=list)
    next_step: NextStep | None = None
    sla_due_at: Rfc3339 | None = Field(
        None, description="Replaced by the org's SLA policy's due time when one applies"
    )


class LeadUpdate(_Input):
    """A partial update: only the fields present change; ``null`` clears an optional field."""

    title: Title | None = None
    company_name: ShortText | None = None
    company_id: UUID | None = None
    contact_ids: ContactIds | None = None
    team_id: TeamId | None = None
    status: EditableLeadStatus | None = None
    priority: LeadPriority | None = None
    source: Source | None = None
    estimated_value: Money | None = None
    currency: Currency | None = None
    tags: Tags | None = None
    next_step: NextStep | None = None
    sla_due_at: Rfc3339 | None = Field(
        None, description="Refused (`422`) while an SLA policy applies (`sla_managed`)"
    )


class LeadPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    org_id: str
    title: str
    company_name: str | None
    company_id: UUID | None
    contact_ids: list[UUID]
    owner_id: str
    team_id: str | None
    status: LeadStatus
    priority: LeadPriority
    source: str | None
    estimated_value: Decimal | None
    currency: str | None
    tags: list[str]
    next_step: str | None
    sla_due_at: datetime | None = Field(
        description="When the lead is due for its next touch; set by the org's SLA policy "
        "(and then read-only) while one applies"
    )
    sla_managed: bool = Field(
        False, description="An SLA policy applies: the automation service sets `sla_due_at`"
    )
    created_by: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


Sort = Literal["-created_at", "created_at", "-updated_at", "updated_at"]
LeadSort = Sort


class DealCreate(_Input):
    model_config = ConfigDict(json_schema_extra=currency_with("amount"))

    title: Title
    company_id: UUID | None = None
    contact_ids: ContactIds = Field(default_factory=list)
    team_id: TeamId | None = Field(
        None, description="Required when the creator belongs to several teams"
    )
    stage: DealStage = DealStage.QUALIFICATION
    amount: Money | None = None
    currency: Currency | None = Field(None, description="ISO 4217; required with an amount")
    expected_close_date: IsoDate | None = None


class DealUpdate(_Input):
    title: Title | None = None
    company_id: UUID | None = None
    contact_ids: ContactIds | None = None
    team_id: TeamId | None = None
    stage: DealStage | None = None
    amount: Money | None = None
    currency: Currency | None = None
    expected_close_date: IsoDate | None = None


class DealPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    org_id: str
    title: str
    company_id: UUID | None
    contact_ids: list[UUID]
    lead_id: UUID | None
    owner_id: str
    team_id: str | None
    stage: DealStage
    amount: Decimal | None
    currency: str | None
    expected_close_date: date | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


class LeadConvert(_Input):
    """The deal a lead becomes; anything left out is taken from the lead."""

    title: Title | None = None
    stage: DealStage = DealStage.QUALIFICATION
    amount: Money | None = Field(None, description="Defaults to the lead's estimated value")
    currency: Currency | None = None
    expected_close_date: IsoDate | None = None


class ContactCreate(_Input):
    name: Title
    emails: Emails = Field(default_factory=list, description="Stored lower case")
    phones: Phones = Field(default_factory=list)
    company_id: UUID | None = None
    job_title: ShortText | None = None


class ContactUpdate(_Input):
    name: Title | None = None
    emails: Emails | None = None
    phones: Phones | None = None
    company_id: UUID | None = None
    job_title: ShortText | None = None


class ContactPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    org_id: str
    name: str
    emails: list[str]
    phones: list[str]
    company_id: UUID | None
    job_title: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


class CompanyCreate(_Input):
    name: Title
    domain: Domain | None = None


class CompanyUpdate(_Input):
    name: Title | None = None
    domain: Domain | None = None


class CompanyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    org_id: str
    name: str
    domain: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


REQUIRED_ON_UPDATE = {
    "lead": frozenset({"title", "status", "priority", "tags", "contact_ids"}),
    "deal": frozenset({"title", "stage", "contact_ids"}),
    "contact": frozenset({"name", "emails", "phones"}),
    "company": frozenset({"name"}),
}


class MemberPut(_Input):
    role: MemberRole


class MemberPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: str
    role: MemberRole
    added_by: str
    added_at: datetime


class OwnerChange(_Input):
    new_owner_id: UserId
    reason: Reason | None = None
    keep_previous_owner_as_member: bool = Field(
        False, description="Keep the previous owner on the record as a collaborator"
    )


class NoteCreate(_Input):
    body: NoteBody
    kind: NoteKind = Field(
        NoteKind.NOTE,
        description="`call`: the note records a call with the record's contact (a first "
        "response for the SLA)",
    )


class NoteEdit(_Input):
    body: NoteBody


class NotePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    record_type: str
    record_id: UUID
    author_id: str
    kind: NoteKind = NoteKind.NOTE
    body: str
    created_at: datetime
    updated_at: datetime
    version: int


class UserProvision(_Input):
    id: UserId = Field(description="The identity provider's `sub` of the user")
    email: Email
    name: ShortText | None = None
    role: Role
    team_ids: TeamIds = Field(default_factory=list)


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    org_id: str
    email: str | None
    name: str | None
    role: Role
    team_ids: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime
    version: int


class UserDeactivate(_Input):
    reassign_to: UserId | None = Field(
        None,
        description="Who receives the user's leads and deals: an active user of the org who may "
        "own records; left out, the manager of the user's team (the one active manager sharing "
        "a team with them)",
    )


class DeactivationPartPublic(BaseModel):
    state: Literal["pending", "done", "failed"] = Field(
        description="`pending`: not run yet (the accounts part waits for every other part, "
        "whose channels need the user's Google grant); `failed`: the last call did not succeed "
        "and the next request runs it again"
    )
    ended: dict[str, int] = Field(
        default_factory=dict, description="What the service ended, by kind (summed over calls)"
    )
    error: str | None = Field(None, description="Why the last call failed")
    done_at: datetime | None = None


class UserDeactivationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    org_id: str
    user_id: str
    requested_by: str
    new_owner_id: str
    audit_id: UUID = Field(
        description="The audit entry of the deactivation; each hand-over of a record is audited "
        "with `caused_by` = this id"
    )
    status: Literal["running", "completed"]
    records_reassigned: int
    records_done: bool = Field(description="Every lead and deal of the user has been handed over")
    parts: dict[str, DeactivationPartPublic] = Field(description="Each service's part, by name")
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class OrgOffboard(_Input):
    confirm_org_id: str = Field(
        min_length=1,
        max_length=255,
        description="Your organization's id, typed again: the offboarding deletes everything "
        "of the org in every service and cannot be undone",
    )


class DeletionPartPublic(BaseModel):
    state: Literal["pending", "done", "failed"] = Field(
        description="`pending`: not run yet (the accounts part waits for every other part, "
        "which need the user's Google grant to stop their channels); `failed`: the last call "
        "did not succeed and the next request runs it again"
    )
    deleted: dict[str, int] = Field(
        default_factory=dict,
        description="What the service deleted or stopped, by kind (summed over calls)",
    )
    error: str | None = Field(None, description="Why the last call failed")
    done_at: datetime | None = None


class DataDeletionPublic(BaseModel):
    id: UUID
    org_id: str
    scope: Literal["user", "org"] = Field(
        description="`user`: what came from one user's Google account; `org`: the whole org"
    )
    user_id: str | None = Field(
        description="The user whose Google data is deleted (`user`); null for an org"
    )
    requested_by: str
    audit_id: UUID = Field(
        description="The audit entry of the request; the entry recording the deletion done "
        "names it in `caused_by`"
    )
    status: Literal["running", "completed"]
    parts: dict[str, DeletionPartPublic] = Field(description="Each service's part, by name")
    report: dict[str, dict[str, int]] = Field(
        description="What each service deleted, by kind: the parts' counts (complete once "
        "`status` is `completed`)"
    )
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


TeamName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NonBlank()
]


class TeamCreate(_Input):
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$")] | None = (
        Field(None, description="The identity provider's id of the team; generated if left out")
    )
    name: TeamName


class TeamUpdate(_Input):
    name: TeamName


class TeamPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    org_id: str
    name: str
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class AuditEntryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    org_id: str
    entity_type: str = Field(validation_alias="record_type")
    entity_id: str = Field(validation_alias="record_id")
    action: str
    actor_id: str
    changes: dict[str, Any] = Field(description="field → [old, new]")
    reason: str | None
    request_id: str | None
    occurred_at: datetime
    source: str = Field(description="crm, or drive for a Drive action taken through PipeDesk")
    file_id: str | None = Field(description="A Drive action's file or folder (Google's id)")
    file_name: str | None
    caused_by: UUID | None = Field(
        description="The CRM entry (its `id`) whose change caused this one: a Drive share "
        "changed because an owner, member or team changed"
    )


class AccessListPublic(BaseModel):
    """A record's access list, as other services replicate it."""

    type: Literal["lead", "deal"]
    id: str
    org_id: str
    owner_id: str | None
    team_id: str | None
    members: dict[str, str]
    deleted: bool
    version: int
