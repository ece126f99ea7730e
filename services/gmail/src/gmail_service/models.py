"""Gmail tables (schema ``gmail``): each connected mailbox and where its sync stands, the mirror
of its messages (what PipeDesk read of each, never the raw bytes), the org's mail settings, and
the Google service kit's tables."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Column, DateTime, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from pipedesk_common.db import schema_registry
from pipedesk_common.mirror.links import record_links_table
from pipedesk_common.mirror.models import UserCollection
from pipedesk_common.mirror.tables import MirrorTables


class GmailModel(SQLModel, registry=schema_registry("gmail")):
    """Base of every gmail table: schema ``gmail``, migrated on its own."""


class Mailbox(UserCollection, GmailModel, table=True):
    """A user's connected mailbox: its sharing level, blocklist, sync watermark and watch."""

    __tablename__ = "mailboxes"
    __table_args__ = (
        UniqueConstraint("org_id", "user_id"),
        Index("ix_mailboxes_email", "user_email"),
    )

    sharing: str | None = Field(
        default=None, sa_type=String(20), description="metadata, subject or full; null: org's"
    )
    blocklist: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    history_id: str | None = Field(
        default=None, sa_type=String(40), description="Where history sync goes on; null: full"
    )
    window_start: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    synced_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    watch_expires_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    watch_renewed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    connected: bool = True
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class MirroredMessage(GmailModel, table=True):
    """A message of a mailbox as last read. ``etag`` is Gmail's ``historyId`` of the message
    (it changes with its labels); a deleted message stays as a tombstone (``deleted``)."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("mailbox_id", "google_id"),
        Index("ix_messages_mailbox_date", "mailbox_id", "internal_date"),
        Index("ix_messages_identity", "org_id", "identity"),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    user_id: str = Field(sa_type=String(255))
    mailbox_id: UUID = Field(foreign_key="gmail.mailboxes.id", ondelete="CASCADE")
    google_id: str = Field(sa_type=String(64))
    thread_id: str = Field(sa_type=String(64))
    identity: str = Field(sa_type=String(300), description="Message-ID (or a header digest)")
    etag: str | None = Field(default=None, sa_type=String(40))
    google_updated: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    deleted: bool = False
    internal_date: datetime = Field(sa_type=DateTime(timezone=True))
    label_ids: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    subject: str = Field(default="", sa_type=Text)
    sender: str | None = Field(default=None, sa_type=String(320))
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    snippet: str = Field(default="", sa_type=Text)
    text_body: str | None = Field(default=None, sa_type=Text)
    html_body: str | None = Field(default=None, sa_type=Text, description="Sanitised")
    attachments: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False)
    )
    headers: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    problems: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    version: int = 1
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))

    @property
    def participants(self) -> list[str]:
        return sorted({*([self.sender] if self.sender else []), *self.recipients})


class OrgMailSettings(GmailModel, table=True):
    """How an org's mail reaches timelines; absent: the defaults."""

    __tablename__ = "org_settings"

    org_id: str = Field(primary_key=True, sa_type=String(255))
    domains: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    blocklist: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    default_sharing: str = Field(default="metadata", sa_type=String(20))
    on_disconnect: str = Field(default="keep_metadata", sa_type=String(20))
    automation_sender_id: str | None = Field(
        default=None,
        sa_type=String(255),
        description="The user whose address the automation service sends from by default",
    )
    retention_days: int | None = Field(
        default=None,
        description="How many days mirrored mail is kept (by its date); null: as long as it is "
        "in the mailbox",
    )
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class SentMessage(GmailModel, table=True):
    """A message PipeDesk sends, written before Gmail is asked and keyed by its sender's
    ``Idempotency-Key``: its ``Message-ID`` is generated once, so a retry after an answer that
    never came looks for it (``rfc822msgid:``) before sending again. ``attempted_at``: when a
    send was last asked of Gmail (a retry finding it set looks first); ``lease_until``: the
    request sending it now holds it until then."""

    __tablename__ = "sent_messages"
    __table_args__ = (UniqueConstraint("org_id", "scope", "key"),)

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    user_id: str = Field(sa_type=String(255), description="Whose mailbox it is sent from")
    sender_email: str = Field(sa_type=String(320))
    scope: str = Field(sa_type=String(300), description="Who keyed it: a user or a service")
    key: str = Field(sa_type=String(255))
    fingerprint: str = Field(sa_type=String(64))
    rfc822_message_id: str = Field(sa_type=String(300))
    google_id: str | None = Field(default=None, sa_type=String(64))
    thread_id: str | None = Field(default=None, sa_type=String(64))
    message_id: UUID | None = Field(
        default=None, description="The mirrored message (``gmail.messages``) once sent"
    )
    attempted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    lease_until: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    sent_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))


message_links = record_links_table(
    GmailModel.metadata, "message_links", parent="messages", key="message_id"
)
TABLES = MirrorTables.of(GmailModel.metadata)
