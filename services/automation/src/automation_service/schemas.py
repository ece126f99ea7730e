"""The automation API's shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

AttachmentId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9.]+$")]
JobStatus = Literal["pending", "done", "failed"]
AttachmentStatus = Literal["pending", "saved", "failed"]


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
    file_id: UUID | None = Field(description="Drive's id of the saved file (PipeDesk's)")
    error: str | None = Field(description="Why it was not saved, when it failed")


class JobPublic(BaseModel):
    id: UUID
    message_id: UUID
    record: RecordRef
    status: JobStatus = Field(
        description="pending while an attachment is; then done, or failed when one failed"
    )
    saved: int
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


class PreferencesWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner_changed: bool


class AutomationSettingsPublic(BaseModel):
    notify_previous_owner: bool = Field(
        description="The previous owner also gets the owner-change email"
    )


class AutomationSettingsWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notify_previous_owner: bool
