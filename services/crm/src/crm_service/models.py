"""CRM tables (schema ``crm``)."""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import ARRAY, CheckConstraint, Column, DateTime, Index, Numeric, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from pipedesk_common.db import schema_registry
from pipedesk_common.outbox import outbox_table


class CrmModel(SQLModel, registry=schema_registry("crm")):
    """Base of every CRM table: schema ``crm``, migrated on its own."""


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
    created_by: str = Field(sa_type=String(255))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    version: int = 1


class AuditEntry(CrmModel, table=True):
    """One change of a CRM record: append-only, never updated or deleted by the application."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_record", "org_id", "record_type", "record_id", "occurred_at"),
        Index("ix_audit_log_org_time", "org_id", "occurred_at"),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    record_type: str = Field(sa_type=String(20))
    record_id: UUID
    action: str = Field(sa_type=String(30))
    actor_id: str = Field(sa_type=String(255))
    changes: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    occurred_at: datetime = Field(sa_type=DateTime(timezone=True))
    request_id: str | None = Field(default=None, sa_type=String(128))


outbox = outbox_table(CrmModel.metadata)
