"""Drive's API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from pipedesk_common.mirror.disconnect import OnDisconnect

RecordType = Literal["lead", "deal", "contact", "company"]


class RootWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shared_drive_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="A shared drive the caller is a member of; without it, a folder in the "
        "caller's My Drive",
    )
    name: str = Field("PipeDesk", min_length=1, max_length=200, description="The root folder")


class RootPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    org_id: str
    user_id: str
    user_email: str
    root_google_id: str
    shared_drive_id: str | None
    type_folders: dict[str, str]
    share_domains: list[str]
    on_disconnect: OnDisconnect = Field(
        description="What the file index becomes once the Google account holding a My Drive "
        "root disconnects Google Drive (or Google revokes its access): `keep_metadata` keeps "
        "the files on timelines as last seen; `remove` removes them from PipeDesk and every "
        "timeline. A shared drive is the org's: its files stay"
    )


class SubfolderPublic(BaseModel):
    name: str
    google_id: str


class FolderPublic(BaseModel):
    id: UUID
    record_type: str
    record_id: str
    google_id: str
    name: str
    web_view_link: str | None
    trashed: bool
    subfolders: list[SubfolderPublic]


class FilePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    folder_id: UUID
    subfolder: str
    google_id: str
    name: str
    mime_type: str
    size: int | None
    md5: str | None
    web_view_link: str | None
    trashed: bool
    trashed_at: datetime | None
    uploaded_by: str
    origin: dict[str, Any] | None = Field(
        None,
        description="What the automation service saved the file from: the email's `message_id` "
        "(`Message-ID`), `subject` and `sender`, and the `rule_id` of the rule that saved it",
    )
    created_at: datetime
    updated_at: datetime


class FileRename(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255, pattern=r"^[^/\x00-\x1f]+$")


class FileMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record_type: RecordType
    record_id: UUID
    subfolder: str = Field("Documents", min_length=1, max_length=200)


class ShareCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(
        min_length=3,
        max_length=320,
        pattern=r"^[^@\s]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$",
        description="Who to share with: an address of one of the org's allowed domains",
    )
    role: Literal["reader", "commenter", "writer"]
    notify: bool = Field(
        description="Whether Google e-mails them the share (an explicit choice, no default)"
    )


class SharePublic(BaseModel):
    type: Literal["user", "domain"]
    email: str | None = Field(description="A user's address (type user)")
    domain: str | None = Field(description="The org's domain (type domain: readable org-wide)")
    role: str
    derived: bool = Field(description="Given by CRM access (owner, member, org-wide records)")
    explicit: bool = Field(description="Given by a record writer or admin through the API")
    notify: bool = Field(description="An explicit share whose grantee Google e-mailed")


class DisconnectRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on_disconnect: OnDisconnect


class ShareDomains(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domains: list[
        Annotated[str, Field(min_length=3, max_length=253, pattern=r"^[a-z0-9.-]+\.[a-z]{2,}$")]
    ] = Field(max_length=100, description="The e-mail domains explicit shares may go to")


class SearchHitPublic(BaseModel):
    google_id: str
    file_id: UUID | None = Field(description="The file in /api/drive/files, once mirrored")
    name: str
    mime_type: str
    size: int | None
    web_view_link: str | None
    modified_time: datetime | None
    record_type: str
    record_id: str
    subfolder: str


class SearchResults(BaseModel):
    items: list[SearchHitPublic] = Field(description="The first `limit` matches, by name")


# One record (both fields) or every record (neither): the route refuses one without the other.
ONE_RECORD_OR_ALL: Final[dict[str, Any]] = {
    "anyOf": [
        {"properties": {"record_type": {"type": "null"}, "record_id": {"type": "null"}}},
        {
            "required": ["record_type", "record_id"],
            "properties": {"record_type": {"type": "string"}, "record_id": {"type": "string"}},
        },
    ]
}


class RepairRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=ONE_RECORD_OR_ALL)

    record_type: RecordType | None = Field(None, description="With record_id: one record only")
    record_id: UUID | None = None
    dry_run: bool = Field(True, description="List what would be done, change nothing")


class RepairActionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    record_type: str
    record_id: str
    folder_google_id: str
    kind: str = Field(
        description="recreate, untrash, trash, move, rename, merge, share_added, "
        "share_changed or share_removed"
    )
    detail: str


class RepairReport(BaseModel):
    dry_run: bool
    actions: list[RepairActionPublic]


class SameContent(BaseModel):
    items: list[FilePublic] = Field(description="The subfolder's files with that content")
