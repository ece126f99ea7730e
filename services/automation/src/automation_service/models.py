"""Automation tables (schema ``automation``)."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, String, Text, text
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


outbox = outbox_table(AutomationModel.metadata)
inbox = inbox_tables(AutomationModel.metadata)
access_replica = access_replica_table(AutomationModel.metadata)
idempotency_keys = idempotency_table(AutomationModel.metadata)
