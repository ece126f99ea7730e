"""API shapes of leads. Input models forbid unknown fields, so ``org_id``, ``owner_id``,
``version`` and timestamps cannot be mass-assigned: sending them is a 422 naming the field."""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from crm_service.models import LeadPriority, LeadStatus

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Source = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
TeamId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Money = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]
NextStep = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


def _unique(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


Tags = Annotated[list[Tag], Field(max_length=20), AfterValidator(_unique)]


class EditableLeadStatus(StrEnum):
    """Statuses a lead can be given directly; ``converted`` comes only from converting it."""

    NEW = LeadStatus.NEW.value
    CONTACTED = LeadStatus.CONTACTED.value
    QUALIFIED = LeadStatus.QUALIFIED.value
    DISQUALIFIED = LeadStatus.DISQUALIFIED.value


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LeadCreate(_Input):
    title: Title
    company_name: ShortText | None = None
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
    sla_due_at: AwareDatetime | None = None


class LeadUpdate(_Input):
    """A partial update: only the fields present change; ``null`` clears an optional field."""

    title: Title | None = None
    company_name: ShortText | None = None
    team_id: TeamId | None = None
    status: EditableLeadStatus | None = None
    priority: LeadPriority | None = None
    source: Source | None = None
    estimated_value: Money | None = None
    currency: Currency | None = None
    tags: Tags | None = None
    next_step: NextStep | None = None
    sla_due_at: AwareDatetime | None = None


REQUIRED_ON_UPDATE = frozenset({"title", "status", "priority", "tags"})


class LeadPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    org_id: str
    title: str
    company_name: str | None
    owner_id: str
    team_id: str | None
    status: LeadStatus
    priority: LeadPriority
    source: str | None
    estimated_value: Decimal | None
    currency: str | None
    tags: list[str]
    next_step: str | None
    sla_due_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


LeadSort = Literal["-created_at", "created_at", "-updated_at", "updated_at"]


class AccessListPublic(BaseModel):
    """A record's access list, as other services replicate it."""

    type: Literal["lead"]
    id: str
    org_id: str
    owner_id: str | None
    team_id: str | None
    members: dict[str, str]
    deleted: bool
    version: int
