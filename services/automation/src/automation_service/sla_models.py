"""SLA tables (schema ``automation``): policies, business calendars, each lead's clock, the
alerts raised (one per lead, kind and due time), the replicas of CRM facts the clocks need
(contacts' addresses, users' roles and teams) and the feature flags."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field

from automation_service.models import AutomationModel
from pipedesk_common.periodic import job_schedule_table

PRIORITIES = ("low", "normal", "high", "urgent")
# A lead in one of these statuses is no longer worked: its clock stops.
CLOSED_STATUSES = frozenset({"converted", "disqualified"})
# The team key of an org's default business calendar.
ORG_DEFAULT = ""


class SlaPolicy(AutomationModel, table=True):
    """An org's SLA for leads of one priority, in business minutes of the lead's team."""

    __tablename__ = "sla_policies"
    __table_args__ = (
        CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name="priority"),
        CheckConstraint("first_response_minutes > 0", name="first_response_minutes"),
        CheckConstraint("next_touch_minutes > 0", name="next_touch_minutes"),
        CheckConstraint("warning_minutes >= 0", name="warning_minutes"),
    )

    org_id: str = Field(primary_key=True, sa_type=String(255))
    priority: str = Field(primary_key=True, sa_type=String(10))
    first_response_minutes: int = Field(sa_type=Integer)
    next_touch_minutes: int = Field(sa_type=Integer)
    warning_minutes: int = Field(sa_type=Integer)
    escalate_to_admins: bool = Field(sa_type=Boolean)
    updated_by: str = Field(sa_type=String(255))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class BusinessCalendarRow(AutomationModel, table=True):
    """A team's business calendar (``team_id`` empty: the org's default)."""

    __tablename__ = "business_calendars"

    org_id: str = Field(primary_key=True, sa_type=String(255))
    team_id: str = Field(primary_key=True, sa_type=String(255))
    time_zone: str = Field(sa_type=String(64))
    week: dict[str, list[str]] = Field(sa_column=Column(JSONB, nullable=False))
    holidays: list[date] = Field(
        default_factory=list, sa_column=Column(ARRAY(Date), nullable=False)
    )
    updated_by: str = Field(sa_type=String(255))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class SlaClock(AutomationModel, table=True):
    """A lead's SLA clock, kept from CRM's events: what the due time is computed from, the due
    time, and what CRM holds (``crm_due_at``, ``crm_managed``), so only a difference is
    written back; a due time CRM refused for good (``crm_refusal``) waits for the clock's next
    change."""

    __tablename__ = "sla_clocks"
    __table_args__ = (
        Index("ix_sla_clocks_due", "due_at"),
        Index("ix_sla_clocks_org_owner", "org_id", "owner_id"),
        Index("ix_sla_clocks_org_team", "org_id", "team_id"),
        Index("ix_sla_clocks_contacts", "contact_ids", postgresql_using="gin"),
    )

    lead_id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    title: str = Field(sa_type=String(300))
    owner_id: str = Field(sa_type=String(255))
    team_id: str | None = Field(default=None, sa_type=String(255))
    priority: str = Field(sa_type=String(10))
    status: str = Field(sa_type=String(20))
    contact_ids: list[UUID] = Field(
        default_factory=list, sa_column=Column(ARRAY(Uuid), nullable=False)
    )
    deleted: bool = Field(default=False, sa_type=Boolean)
    lead_version: int = Field(sa_type=Integer)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    responded_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_touch_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    due_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    managed: bool = Field(default=False, sa_type=Boolean)
    crm_due_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    crm_managed: bool = Field(default=False, sa_type=Boolean)
    crm_refusal: str | None = Field(
        default=None,
        sa_type=String(500),
        description="Why CRM refused the clock's due time (not retried until it changes)",
    )
    crm_refused_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    overdue_stage: str | None = Field(
        default=None,
        sa_type=String(20),
        description="The stage a response came too late for, its breach not yet raised",
    )
    overdue_due_at: datetime | None = Field(
        default=None,
        sa_type=DateTime(timezone=True),
        description="The due time that response missed (the breach's due time)",
    )
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class SlaAlert(AutomationModel, table=True):
    """A warning or a breach of one due time of one lead: raised once, whatever number of
    workers find it (the unique key decides which one raises it)."""

    __tablename__ = "sla_alerts"
    __table_args__ = (
        UniqueConstraint("lead_id", "kind", "due_at", name="one_per_due_time"),
        CheckConstraint("kind IN ('warning', 'breached')", name="kind"),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255), index=True)
    lead_id: UUID
    kind: str = Field(sa_type=String(10))
    stage: str = Field(sa_type=String(20))
    due_at: datetime = Field(sa_type=DateTime(timezone=True))
    owner_id: str = Field(sa_type=String(255))
    team_id: str | None = Field(default=None, sa_type=String(255))
    recipient_ids: list[str] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))


class SlaNotification(AutomationModel, table=True):
    """Which alert a notification is about (its email's words come from it)."""

    __tablename__ = "sla_notifications"

    notification_id: UUID = Field(primary_key=True)
    alert_id: UUID = Field(index=True)


class SlaContact(AutomationModel, table=True):
    """A CRM contact's addresses, to know mail and meetings with it."""

    __tablename__ = "sla_contacts"
    __table_args__ = (Index("ix_sla_contacts_emails", "emails", postgresql_using="gin"),)

    contact_id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255), index=True)
    emails: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    deleted: bool = Field(default=False, sa_type=Boolean)
    version: int = Field(sa_type=Integer)


class SlaUser(AutomationModel, table=True):
    """A user's role and teams, from CRM's directory events: who a team's managers are."""

    __tablename__ = "sla_users"

    org_id: str = Field(primary_key=True, sa_type=String(255))
    user_id: str = Field(primary_key=True, sa_type=String(255))
    role: str = Field(sa_type=String(10))
    team_ids: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    active: bool = Field(default=True, sa_type=Boolean)
    version: int = Field(sa_type=Integer)


class FeatureFlag(AutomationModel, table=True):
    """A flag's setting at one scope: ``global`` (empty org and team), ``org`` (empty team) or
    ``team``. The narrowest setting that matches an evaluation wins."""

    __tablename__ = "feature_flags"
    __table_args__ = (
        CheckConstraint("scope IN ('global', 'org', 'team')", name="scope"),
        CheckConstraint(
            "(scope = 'global' AND org_id = '' AND team_id = '') OR "
            "(scope = 'org' AND org_id <> '' AND team_id = '') OR "
            "(scope = 'team' AND org_id <> '' AND team_id <> '')",
            name="scope_keys",
        ),
    )

    key: str = Field(primary_key=True, sa_type=String(100))
    scope: str = Field(primary_key=True, sa_type=String(10))
    org_id: str = Field(primary_key=True, sa_type=String(255))
    team_id: str = Field(primary_key=True, sa_type=String(255))
    enabled: bool = Field(sa_type=Boolean)
    updated_by: str = Field(sa_type=String(255))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


job_schedule = job_schedule_table(AutomationModel.metadata)
