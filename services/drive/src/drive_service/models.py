"""Drive tables (schema ``drive``): each org's root, the CRM records' names, one folder per
record, the files in those folders, and the Google service kit's tables."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from pipedesk_common.db import schema_registry
from pipedesk_common.mirror.disconnect import KEEP_METADATA
from pipedesk_common.mirror.tables import MirrorTables


class DriveModel(SQLModel, registry=schema_registry("drive")):
    """Base of every drive table: schema ``drive``, migrated on its own."""


class DriveRoot(DriveModel, table=True):
    """Where an org's record folders live, and the Google account that holds them."""

    __tablename__ = "roots"

    org_id: str = Field(primary_key=True, sa_type=String(255))
    user_id: str = Field(sa_type=String(255), description="The Drive admin Google calls act as")
    user_email: str = Field(sa_type=String(320))
    root_google_id: str = Field(sa_type=String(200), description="The root folder")
    shared_drive_id: str | None = Field(default=None, sa_type=String(200))
    type_folders: dict[str, str] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False),
        description="Record type → the Google id of its folder (Leads, Deals…)",
    )
    share_domains: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb")),
        description="The e-mail domains explicit shares may go to (the org's allow-list)",
    )
    on_disconnect: str = Field(
        default=KEEP_METADATA,
        sa_type=String(20),
        sa_column_kwargs={"server_default": KEEP_METADATA},
        description="What the file index becomes once the account holding a My Drive root "
        "disconnects: kept, or removed",
    )
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class RecordName(DriveModel, table=True):
    """A CRM record's name and state, as CRM's events (or CRM, on first sight) tell it."""

    __tablename__ = "record_names"

    record_type: str = Field(primary_key=True, sa_type=String(20))
    record_id: str = Field(primary_key=True, sa_type=String(64))
    org_id: str = Field(sa_type=String(255))
    name: str = Field(sa_type=Text)
    deleted: bool = False
    lead_id: str | None = Field(default=None, sa_type=String(64))
    version: int


class RecordFolder(DriveModel, table=True):
    """A record's folder; a row without ``google_id`` is a creation in progress."""

    __tablename__ = "record_folders"
    __table_args__ = (
        UniqueConstraint("org_id", "record_type", "record_id"),
        Index("ix_record_folders_lead", "org_id", "lead_id", unique=True),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    record_type: str = Field(sa_type=String(20))
    record_id: str = Field(sa_type=String(64))
    lead_id: str | None = Field(
        default=None, sa_type=String(64), description="The lead a deal's folder was the folder of"
    )
    google_id: str | None = Field(default=None, sa_type=String(200))
    subfolders: dict[str, str] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False),
        description="Subfolder name → its Google id",
    )
    name: str = Field(default="", sa_type=Text)
    web_view_link: str | None = Field(default=None, sa_type=Text)
    trashed: bool = False
    creating_until: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    sharing_cause: dict[str, Any] | None = Field(
        default=None,
        sa_column=Column(JSONB, nullable=True),
        description="The CRM change (audit_id, actor_id) the next sharing sync follows",
    )
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class DriveFile(DriveModel, table=True):
    """A file in a record's folder as last seen; a row without ``size`` is an upload in progress
    (its ``google_id`` chosen before Google is asked, so a retry cannot make a second file)."""

    __tablename__ = "files"
    __table_args__ = (
        UniqueConstraint("google_id"),
        UniqueConstraint("org_id", "caller_key"),
        Index("ix_files_folder", "folder_id", "trashed", "created_at", "id"),
        Index("ix_files_folder_md5", "folder_id", "md5"),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    folder_id: UUID = Field(foreign_key="drive.record_folders.id", ondelete="CASCADE")
    subfolder: str = Field(sa_type=Text)
    google_id: str = Field(sa_type=String(200))
    name: str = Field(sa_type=Text)
    mime_type: str = Field(sa_type=String(255))
    size: int | None = Field(default=None, sa_type=BigInteger)
    md5: str | None = Field(default=None, sa_type=String(64))
    web_view_link: str | None = Field(default=None, sa_type=Text)
    trashed: bool = False
    trashed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    uploaded_by: str = Field(sa_type=String(255))
    caller_key: str | None = Field(
        default=None, sa_type=String(300), description="An internal caller's idempotency key"
    )
    resource: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    origin: dict[str, Any] | None = Field(
        default=None,
        sa_column=Column(JSONB(none_as_null=True), nullable=True),
        description="What an internal caller saved the file from: the email (`message_id`, "
        "`subject`, `sender`) and, for an automation rule, its `rule_id`",
    )
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class ExplicitShare(DriveModel, table=True):
    """A share of a record's folder with someone CRM access does not name (a client), made by
    one of the record's writers or an admin; kept in Google beside the derived shares."""

    __tablename__ = "shares"
    __table_args__ = (UniqueConstraint("folder_id", "email"),)

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    folder_id: UUID = Field(foreign_key="drive.record_folders.id", ondelete="CASCADE")
    email: str = Field(sa_type=String(320), description="Lower case")
    role: str = Field(sa_type=String(20), description="reader, commenter or writer")
    notify: bool = Field(sa_type=Boolean, description="Whether Google e-mailed them the share")
    created_by: str = Field(sa_type=String(255))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))


class ChangeCursor(DriveModel, table=True):
    """Where an org's reading of Drive's change log stands (the next ``pageToken``)."""

    __tablename__ = "change_cursors"

    org_id: str = Field(primary_key=True, sa_type=String(255))
    page_token: str = Field(sa_type=String(200))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class GoogleAccount(DriveModel, table=True):
    """The Google account a user connected (any product), as the accounts service announced it:
    derived shares go to it rather than to the user's directory e-mail."""

    __tablename__ = "google_accounts"

    org_id: str = Field(primary_key=True, sa_type=String(255))
    user_id: str = Field(primary_key=True, sa_type=String(255))
    email: str = Field(sa_type=String(320), description="Lower case")
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


TABLES = MirrorTables.of(DriveModel.metadata, push=True)
