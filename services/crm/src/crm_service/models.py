"""CRM tables (schema ``crm``)."""

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from pipedesk_common.auth import Role
from pipedesk_common.db import schema_registry
from pipedesk_common.idempotency import idempotency_table
from pipedesk_common.inbox import inbox_tables
from pipedesk_common.outbox import outbox_table
from pipedesk_common.periodic import job_schedule_table
from pipedesk_common.rbac import MemberRole


class CrmModel(SQLModel, registry=schema_registry("crm")):
    """Base of every CRM table: schema ``crm``, migrated on its own."""


class DealStage(StrEnum):
    QUALIFICATION = "qualification"
    PROPOSAL = "proposal"
    NEGOTIATION = "negotiation"
    WON = "won"
    LOST = "lost"


class LeadStatus(StrEnum):
    NEW = "new"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"
    CONVERTED = "converted"


class LeadPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


def _in(values: type[StrEnum]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class Lead(CrmModel, table=True):
    __tablename__ = "leads"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(LeadStatus)})", name="status"),
        CheckConstraint(f"priority IN ({_in(LeadPriority)})", name="priority"),
        CheckConstraint("version >= 1", name="version"),
        Index("ix_leads_org_created", "org_id", "created_at", "id"),
        Index("ix_leads_org_updated", "org_id", "updated_at", "id"),
        Index("ix_leads_org_owner", "org_id", "owner_id"),
        Index("ix_leads_org_team", "org_id", "team_id"),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    title: str = Field(sa_type=String(300))
    company_name: str | None = Field(default=None, sa_type=String(300))
    company_id: UUID | None = Field(default=None, foreign_key="crm.companies.id")
    contact_ids: list[UUID] = Field(
        default_factory=list, sa_column=Column(ARRAY(Uuid), nullable=False)
    )
    owner_id: str = Field(sa_type=String(255))
    team_id: str | None = Field(default=None, sa_type=String(255))
    status: str = Field(sa_type=String(20))
    priority: str = Field(sa_type=String(10))
    source: str | None = Field(default=None, sa_type=String(100))
    estimated_value: Decimal | None = Field(default=None, sa_type=Numeric(16, 2))
    currency: str | None = Field(default=None, sa_type=String(3))
    tags: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    next_step: str | None = Field(default=None, sa_type=Text)
    sla_due_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # While an SLA policy applies, the automation service sets ``sla_due_at``; clients may not.
    sla_managed: bool = Field(
        default=False,
        sa_column=Column(Boolean, nullable=False, server_default=text("false")),
    )
    created_by: str = Field(sa_type=String(255))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    version: int = 1


class User(CrmModel, table=True):
    """A user of the org directory; ``id`` is the identity provider's ``sub``."""

    __tablename__ = "users"
    __table_args__ = (
        PrimaryKeyConstraint("org_id", "id"),
        CheckConstraint(f"role IN ({_in(Role)})", name="role"),
    )

    org_id: str = Field(sa_type=String(255))
    id: str = Field(sa_type=String(255))
    email: str | None = Field(default=None, sa_type=String(320))
    name: str | None = Field(default=None, sa_type=String(300))
    role: str = Field(sa_type=String(10))
    team_ids: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    active: bool = Field(default=True, sa_type=Boolean)
    provisioned_by: str | None = Field(default=None, sa_type=String(255))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))
    version: int = 1


class Team(CrmModel, table=True):
    __tablename__ = "teams"
    __table_args__ = (PrimaryKeyConstraint("org_id", "id"),)

    org_id: str = Field(sa_type=String(255))
    id: str = Field(sa_type=String(255))
    name: str = Field(sa_type=String(200))
    archived_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))
    version: int = 1


class Company(CrmModel, table=True):
    __tablename__ = "companies"
    __table_args__ = (
        Index("ix_companies_org_created", "org_id", "created_at", "id"),
        Index("ix_companies_org_updated", "org_id", "updated_at", "id"),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    name: str = Field(sa_type=String(300))
    domain: str | None = Field(default=None, sa_type=String(253))
    created_by: str = Field(sa_type=String(255))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    version: int = 1


class Contact(CrmModel, table=True):
    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_org_created", "org_id", "created_at", "id"),
        Index("ix_contacts_org_updated", "org_id", "updated_at", "id"),
        Index("ix_contacts_emails", "emails", postgresql_using="gin"),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    name: str = Field(sa_type=String(300))
    emails: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    phones: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    company_id: UUID | None = Field(default=None, foreign_key="crm.companies.id")
    job_title: str | None = Field(default=None, sa_type=String(300))
    created_by: str = Field(sa_type=String(255))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    version: int = 1


class Deal(CrmModel, table=True):
    __tablename__ = "deals"
    __table_args__ = (
        CheckConstraint(f"stage IN ({_in(DealStage)})", name="stage"),
        CheckConstraint("version >= 1", name="version"),
        CheckConstraint("amount IS NULL OR amount >= 0", name="amount"),
        Index("ix_deals_org_created", "org_id", "created_at", "id"),
        Index("ix_deals_org_updated", "org_id", "updated_at", "id"),
        Index("ix_deals_org_owner", "org_id", "owner_id"),
        Index("ix_deals_org_team", "org_id", "team_id"),
        Index("ix_deals_lead", "lead_id", unique=True),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    title: str = Field(sa_type=String(300))
    company_id: UUID | None = Field(default=None, foreign_key="crm.companies.id")
    contact_ids: list[UUID] = Field(
        default_factory=list, sa_column=Column(ARRAY(Uuid), nullable=False)
    )
    lead_id: UUID | None = Field(default=None, foreign_key="crm.leads.id")
    owner_id: str = Field(sa_type=String(255))
    team_id: str | None = Field(default=None, sa_type=String(255))
    stage: str = Field(sa_type=String(20))
    amount: Decimal | None = Field(default=None, sa_type=Numeric(16, 2))
    currency: str | None = Field(default=None, sa_type=String(3))
    expected_close_date: date | None = Field(default=None, sa_type=Date)
    created_by: str = Field(sa_type=String(255))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    version: int = 1


class RecordMember(CrmModel, table=True):
    """A user given access to a lead or deal besides its owner and team."""

    __tablename__ = "record_members"
    __table_args__ = (
        PrimaryKeyConstraint("record_type", "record_id", "user_id"),
        CheckConstraint("record_type IN ('lead', 'deal')", name="record_type"),
        CheckConstraint(f"role IN ({_in(MemberRole)})", name="role"),
        Index("ix_record_members_user", "org_id", "user_id", "record_type"),
    )

    record_type: str = Field(sa_type=String(10))
    record_id: UUID
    user_id: str = Field(sa_type=String(255))
    org_id: str = Field(sa_type=String(255))
    role: str = Field(sa_type=String(15))
    added_by: str = Field(sa_type=String(255))
    added_at: datetime = Field(sa_type=DateTime(timezone=True))


class NoteKind(StrEnum):
    NOTE = "note"
    CALL = "call"


class Note(CrmModel, table=True):
    __tablename__ = "notes"
    __table_args__ = (
        CheckConstraint(
            "record_type IN ('lead', 'deal', 'contact', 'company')", name="record_type"
        ),
        CheckConstraint(f"kind IN ({_in(NoteKind)})", name="kind"),
        Index("ix_notes_record", "org_id", "record_type", "record_id", "created_at", "id"),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    record_type: str = Field(sa_type=String(10))
    record_id: UUID
    author_id: str = Field(sa_type=String(255))
    kind: str = Field(
        default=NoteKind.NOTE.value,
        sa_column=Column(String(10), nullable=False, server_default=text("'note'")),
    )
    body: str = Field(sa_type=Text)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    version: int = 1


class AuditEntry(CrmModel, table=True):
    """One change of a CRM record: append-only, never updated or deleted by the application."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_record", "org_id", "record_type", "record_id", "occurred_at"),
        Index("ix_audit_log_org_time", "org_id", "occurred_at", "id"),
        Index("ix_audit_log_actor", "org_id", "actor_id", "occurred_at"),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    record_type: str = Field(sa_type=String(20))
    record_id: str = Field(sa_type=String(255))
    action: str = Field(sa_type=String(30))
    actor_id: str = Field(sa_type=String(255))
    changes: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    occurred_at: datetime = Field(sa_type=DateTime(timezone=True))
    request_id: str | None = Field(default=None, sa_type=String(128))
    reason: str | None = Field(default=None, sa_type=Text)
    source: str = Field(
        default="crm",
        sa_column_kwargs={"server_default": "crm"},
        sa_type=String(20),
        description="crm, or the service whose action it records (drive, gmail)",
    )
    file_id: str | None = Field(
        default=None,
        sa_type=String(200),
        description="A Drive action's file or folder; a mail link's Gmail thread",
    )
    file_name: str | None = Field(default=None, sa_type=Text)
    caused_by: UUID | None = Field(
        default=None,
        description="The CRM entry whose change caused this one (a share that followed an "
        "owner change)",
    )


class UserDeactivationJob(CrmModel, table=True):
    """A user's deactivation, step by step: their records handed over, then each service's part
    of the lifecycle contract, so a repeated request finishes what an interrupted one began."""

    __tablename__ = "user_deactivations"
    __table_args__ = (
        Index("ix_user_deactivations_user", "org_id", "user_id", "created_at"),
        CheckConstraint("status IN ('running', 'completed')", name="status"),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    user_id: str = Field(sa_type=String(255))
    requested_by: str = Field(sa_type=String(255))
    new_owner_id: str = Field(sa_type=String(255), description="Who receives their records")
    audit_id: UUID = Field(
        description="The audit entry of the deactivation; every hand-over "
        "it caused names it in ``caused_by``"
    )
    status: str = Field(sa_type=String(20))
    records_reassigned: int = 0
    records_done: bool = Field(default=False, sa_type=Boolean)
    parts: dict[str, Any] = Field(
        sa_column=Column(JSONB, nullable=False),
        description="Each service's part, by name: state (pending, done, failed), what it "
        "ended, its last error",
    )
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))
    completed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    lease_holder: str | None = Field(
        default=None,
        sa_column=Column(
            String(64), nullable=True, comment="The runner calling the parts now (none: no one)"
        ),
    )
    lease_expires_at: datetime | None = Field(
        default=None,
        sa_column=Column(
            DateTime(timezone=True),
            nullable=True,
            comment="Until when the runner holds the job unless it renews (a dead one lets go "
            "then)",
        ),
    )


class GoogleDataDeletionJob(CrmModel, table=True):
    """A deletion on request: everything that came from one user's Google account (``scope``
    ``user``), or everything of one org (``org``), deleted by each service's part of the
    lifecycle contract; the row keeps each part's progress and counts, never the content."""

    __tablename__ = "data_deletions"
    __table_args__ = (
        Index("ix_data_deletions_subject", "org_id", "scope", "user_id", "created_at"),
        CheckConstraint("status IN ('running', 'completed')", name="status"),
        CheckConstraint("scope IN ('user', 'org')", name="scope"),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    scope: str = Field(sa_type=String(10))
    user_id: str | None = Field(default=None, sa_type=String(255), description="Scope user")
    requested_by: str = Field(sa_type=String(255))
    audit_id: UUID = Field(description="The audit entry recording the request")
    status: str = Field(sa_type=String(20))
    parts: dict[str, Any] = Field(
        sa_column=Column(JSONB, nullable=False),
        description="Each service's part, by name: state (pending, done, failed), what it "
        "deleted by kind, its last error",
    )
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))
    completed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    reonboarded_at: datetime | None = Field(
        default=None,
        sa_column=Column(
            DateTime(timezone=True),
            nullable=True,
            comment="An offboarding: when an operator onboarded the org again (its users are "
            "refused until then)",
        ),
    )
    lease_holder: str | None = Field(
        default=None,
        sa_column=Column(
            String(64), nullable=True, comment="The runner calling the parts now (none: no one)"
        ),
    )
    lease_expires_at: datetime | None = Field(
        default=None,
        sa_column=Column(
            DateTime(timezone=True),
            nullable=True,
            comment="Until when the runner holds the job unless it renews (a dead one lets go "
            "then)",
        ),
    )


outbox = outbox_table(CrmModel.metadata)
inbox = inbox_tables(CrmModel.metadata)
idempotency_keys = idempotency_table(CrmModel.metadata)
job_schedule = job_schedule_table(CrmModel.metadata)
