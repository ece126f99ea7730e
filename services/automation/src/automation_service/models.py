"""Automation tables (schema ``automation``)."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from pipedesk_common.access import access_replica_table
from pipedesk_common.db import schema_registry
from pipedesk_common.idempotency import idempotency_table
from pipedesk_common.inbox import inbox_tables
from pipedesk_common.outbox import outbox_table


class AutomationModel(SQLModel, registry=schema_registry("automation")):
    """Base of every automation table: schema ``automation``, migrated on its own."""


class AttachmentJob(AutomationModel, table=True):
    """A request to save a message's attachments into a record's ``Email attachments`` folder.

    ``acting_token``: the requester's own PipeDesk token, sent along to the gmail service so it
    decides, for each attachment, whether they still see the message in full; it is cleared
    once every attachment has its outcome.
    """

    __tablename__ = "attachment_jobs"

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255), index=True)
    user_id: str = Field(sa_type=String(255))
    message_id: UUID
    record_type: str = Field(sa_type=String(20))
    record_id: UUID
    acting_token: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class JobAttachment(AutomationModel, table=True):
    """One attachment of a job and its outcome: ``pending``, ``saved`` (with Drive's file id)
    or ``failed`` (with the reason)."""

    __tablename__ = "job_attachments"

    job_id: UUID = Field(
        sa_column=Column(
            ForeignKey("automation.attachment_jobs.id", ondelete="CASCADE"), primary_key=True
        )
    )
    attachment_id: str = Field(primary_key=True, sa_type=String(64))
    filename: str = Field(sa_type=String(500))
    mime_type: str = Field(sa_type=String(255))
    size: int = Field(sa_type=BigInteger)
    status: str = Field(default="pending", sa_type=String(20))
    file_id: UUID | None = None
    error: str | None = Field(default=None, sa_type=String(500))
    attempts: int = 0
    updated_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )


class Notification(AutomationModel, table=True):
    """An email to send about a CRM change, recorded (keyed by the event it is for) in the same
    transaction as that event's inbox row, before anything is sent; its id is the send's key.

    ``status``: ``pending``, ``sent`` or ``skipped`` (every recipient opted out).
    ``sender_id``: set when the org has no automation sender and the actor's mailbox sends.
    """

    __tablename__ = "notifications"

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255), index=True)
    kind: str = Field(sa_type=String(50))
    record_type: str = Field(sa_type=String(20))
    record_id: str = Field(sa_type=String(64))
    actor_id: str = Field(sa_type=String(255))
    new_owner_id: str = Field(sa_type=String(255))
    previous_owner_id: str = Field(sa_type=String(255))
    reason: str | None = Field(default=None, sa_type=Text)
    recipient_ids: list[str] = Field(sa_column=Column(JSONB, nullable=False))
    status: str = Field(default="pending", sa_type=String(20))
    sender_id: str | None = Field(default=None, sa_type=String(255))
    message_id: str | None = Field(default=None, sa_type=String(1000))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    sent_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class NotificationPreference(AutomationModel, table=True):
    """A user's choice for one kind of notification (absent: they get it)."""

    __tablename__ = "notification_preferences"

    org_id: str = Field(primary_key=True, sa_type=String(255))
    user_id: str = Field(primary_key=True, sa_type=String(255))
    kind: str = Field(primary_key=True, sa_type=String(50))
    enabled: bool


class OrgAutomationSettings(AutomationModel, table=True):
    """An org's automation settings (absent: the defaults)."""

    __tablename__ = "org_settings"

    org_id: str = Field(primary_key=True, sa_type=String(255))
    notify_previous_owner: bool = False


outbox = outbox_table(AutomationModel.metadata)
inbox = inbox_tables(AutomationModel.metadata)
access_replica = access_replica_table(AutomationModel.metadata)
idempotency_keys = idempotency_table(AutomationModel.metadata)
