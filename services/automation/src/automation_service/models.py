"""Automation tables (schema ``automation``)."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from pipedesk_common.access import access_replica_table
from pipedesk_common.db import schema_registry
from pipedesk_common.idempotency import idempotency_table
from pipedesk_common.inbox import inbox_tables
from pipedesk_common.lifecycle_answers import lifecycle_answers_table
from pipedesk_common.outbox import outbox_table


class AutomationModel(SQLModel, registry=schema_registry("automation")):
    """Base of every automation table: schema ``automation``, migrated on its own."""


class Rule(AutomationModel, table=True):
    """An org's rule: save the attachments of mail matched to a deal (optionally in given
    stages) or a lead into the record's ``Email attachments`` folder, filtered by sender
    domain, file type and size.

    A rule acts for ``acting_user_id`` (the admin who last created or changed it): gmail reads
    the mail at that admin's level, and the saved file says the rule saved it. A rule whose
    acting admin is deactivated is paused (``paused_reason``) until an admin changes it.
    """

    __tablename__ = "rules"

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255), index=True)
    name: str = Field(sa_type=String(200))
    record_type: str = Field(sa_type=String(20))
    stages: list[str] | None = Field(
        default=None, sa_column=Column(JSONB(none_as_null=True), nullable=True)
    )
    sender_domains: list[str] = Field(sa_column=Column(JSONB, nullable=False))
    file_types: list[str] = Field(sa_column=Column(JSONB, nullable=False))
    min_size: int | None = Field(default=None, sa_type=BigInteger)
    max_size: int | None = Field(default=None, sa_type=BigInteger)
    enabled: bool = True
    paused_reason: str | None = Field(default=None, sa_type=String(500))
    acting_user_id: str = Field(sa_type=String(255))
    created_by: str = Field(sa_type=String(255))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))
    version: int = 1


class AttachmentJob(AutomationModel, table=True):
    """A request to save a message's attachments into a record's ``Email attachments`` folder.

    No token of the requester is kept: each attachment is read from gmail for ``user_id`` of
    ``org_id``, and gmail decides again whether that user (still an active member of the org)
    sees the message in full.
    """

    __tablename__ = "attachment_jobs"
    __table_args__ = (
        # A rule saves a message's attachments into a record once, whichever copy (mailbox)
        # of the message and however often its events arrive.
        Index(
            "uq_attachment_jobs_rule_run",
            "rule_id",
            "source_identity",
            "record_type",
            "record_id",
            unique=True,
            postgresql_where=text("rule_id IS NOT NULL"),
        ),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255), index=True)
    user_id: str = Field(sa_type=String(255))
    message_id: UUID
    record_type: str = Field(sa_type=String(20))
    record_id: UUID
    rule_id: UUID | None = Field(
        default=None,
        sa_column=Column(ForeignKey("automation.rules.id", ondelete="SET NULL"), nullable=True),
        description="The rule that made the job (none: a user asked for it)",
    )
    source_identity: str | None = Field(default=None, sa_type=String(300))
    source_subject: str | None = Field(default=None, sa_type=String(500))
    source_sender: str | None = Field(default=None, sa_type=String(320))
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class JobAttachment(AutomationModel, table=True):
    """One attachment of a job and its outcome: ``pending``, ``saved`` (with Drive's file id),
    ``skipped`` (a rule's: the folder already held the same content, that file's id) or
    ``failed`` (with the reason)."""

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
lifecycle_answers = lifecycle_answers_table(AutomationModel.metadata)
