"""The automation API's shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from pipedesk_common.contract import JSON_NUMBER, NonBlank

AttachmentId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9.]+$")]
JobStatus = Literal["pending", "done", "failed"]
AttachmentStatus = Literal["pending", "saved", "skipped", "failed"]
DealStage = Literal["qualification", "proposal", "negotiation", "won", "lost"]
Domain = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$",
    ),
]
# An extension (``pdf``, ``.pdf``) or a MIME type (``application/pdf``, ``image/*``).
FileType = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=1,
        max_length=255,
        pattern=r"^(\.?[A-Za-z0-9][A-Za-z0-9+_-]{0,31}|[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/(\*|[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}))$",
    ),
]
Size = Annotated[int, Field(ge=0, le=1 << 40), JSON_NUMBER]


class RecordRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["lead", "deal"]
    id: UUID


class AttachmentsToDrive(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: UUID = Field(description="The gmail service's id of the message")
    attachment_ids: list[AttachmentId] | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="Some of its attachments (their ids, as the message lists them); default: "
        "all of them",
    )
    record: RecordRef = Field(description="The lead or deal whose folder receives the files")


class JobAttachmentPublic(BaseModel):
    attachment_id: str
    filename: str
    mime_type: str
    size: int
    status: AttachmentStatus
    file_id: UUID | None = Field(
        description="Drive's id of the saved file (PipeDesk's); when skipped, of the file "
        "with the same content already in the folder"
    )
    error: str | None = Field(description="Why it was not saved, when it failed or was skipped")


class JobPublic(BaseModel):
    id: UUID
    message_id: UUID
    record: RecordRef
    status: JobStatus = Field(
        description="pending while an attachment is; then done (each saved or skipped), or "
        "failed when one failed"
    )
    rule_id: UUID | None = Field(description="The rule that made the job; none when a user asked")
    saved: int
    skipped: int
    failed: int
    total: int
    created_at: datetime
    finished_at: datetime | None
    attachments: list[JobAttachmentPublic]


class PreferencesPublic(BaseModel):
    owner_changed: bool = Field(
        description="An email when a lead or deal is handed to you (or, per the org's "
        "setting, taken from you)"
    )
    sla_warning: bool = Field(
        description="An email when a lead you are told about (yours, your team's, the org's "
        "for an escalating policy) is near its SLA due time"
    )
    sla_breached: bool = Field(description="An email when such a lead is past its SLA due time")


class PreferencesWrite(BaseModel):
    """The kinds given change; a kind left out (or null) keeps its choice."""

    model_config = ConfigDict(extra="forbid")

    owner_changed: StrictBool | None = None
    sla_warning: StrictBool | None = None
    sla_breached: StrictBool | None = None


class AutomationSettingsPublic(BaseModel):
    notify_previous_owner: bool = Field(
        description="The previous owner also gets the owner-change email"
    )


class AutomationSettingsWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notify_previous_owner: StrictBool


class RuleFilters(BaseModel):
    """What a rule's filters take: each list empty means any."""

    sender_domains: list[Domain] = Field(
        default_factory=list,
        max_length=50,
        description="The sender's domain is one of these (a subdomain counts); empty: any",
    )
    file_types: list[FileType] = Field(
        default_factory=list,
        max_length=50,
        description="Extensions (`pdf`, `.pdf`) or MIME types (`application/pdf`, `image/*`); "
        "empty: any",
    )
    min_size: Size | None = Field(
        None, description="Bytes, at least (the smaller of the two sizes, given either way round)"
    )
    max_size: Size | None = Field(None, description="Bytes, at most (the larger of the two)")


RuleName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NonBlank()
]
# Stages are for rules on deals: a rule on leads has none (absent or null).
LEAD_RULES_HAVE_NO_STAGES: Final[JsonDict] = {
    "oneOf": [
        {"properties": {"record_type": {"const": "deal"}}},
        {"properties": {"record_type": {"const": "lead"}, "stages": {"type": "null"}}},
    ]
}


class RuleCreate(RuleFilters):
    model_config = ConfigDict(extra="forbid", json_schema_extra=LEAD_RULES_HAVE_NO_STAGES)

    name: RuleName
    record_type: Literal["deal", "lead"] = Field(description="Mail matched to a deal, or to a lead")
    stages: list[DealStage] | None = Field(
        None,
        min_length=1,
        max_length=5,
        description="Deals only: the deal is in one of these stages when the mail arrives; "
        "absent: any stage",
    )
    enabled: StrictBool = True


class RuleUpdate(BaseModel):
    """The fields to change; the others stay. Only `stages`, `min_size` and `max_size` may be
    set to null (the others answer `422` naming the field, so their schemas admit no null)."""

    # A change to leads takes no stages (a rule on leads has none).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "not": {
                "properties": {"record_type": {"const": "lead"}, "stages": {"type": "array"}},
                "required": ["record_type", "stages"],
            }
        },
    )

    name: RuleName | SkipJsonSchema[None] = None
    record_type: Literal["deal", "lead"] | SkipJsonSchema[None] = None
    stages: list[DealStage] | None = Field(None, min_length=1, max_length=5)
    sender_domains: Annotated[list[Domain], Field(max_length=50)] | SkipJsonSchema[None] = None
    file_types: Annotated[list[FileType], Field(max_length=50)] | SkipJsonSchema[None] = None
    min_size: Size | None = None
    max_size: Size | None = None
    enabled: StrictBool | SkipJsonSchema[None] = None


class RulePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    record_type: Literal["deal", "lead"]
    stages: list[str] | None
    sender_domains: list[str]
    file_types: list[str]
    min_size: int | None
    max_size: int | None
    enabled: bool
    paused_reason: str | None = Field(
        description="Why the rule does not run although enabled (its acting admin left)"
    )
    acting_user_id: str = Field(
        description="The admin the rule reads mail for: who last created or changed it"
    )
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int


class JobsPage(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None
