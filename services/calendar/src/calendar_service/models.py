"""Calendar tables (schema ``calendar``): the users' calendars, the mirror of their events, the
links of events to CRM records, and the shared infrastructure tables."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Column, DateTime, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from pipedesk_common.access import access_replica_table
from pipedesk_common.coalesce import coalescer_table
from pipedesk_common.db import schema_registry
from pipedesk_common.google.credentials import GoogleUser
from pipedesk_common.google.push import channels_table
from pipedesk_common.idempotency import idempotency_table
from pipedesk_common.inbox import inbox_tables
from pipedesk_common.outbox import outbox_table
from pipedesk_common.periodic import job_schedule_table


class CalendarModel(SQLModel, registry=schema_registry("calendar")):
    """Base of every calendar table: schema ``calendar``, migrated on its own."""


class UserCalendar(CalendarModel, table=True):
    """One Google calendar of one user, and where its incremental sync stands."""

    __tablename__ = "calendars"
    __table_args__ = (UniqueConstraint("org_id", "user_id", "google_id"),)

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    user_id: str = Field(sa_type=String(255))
    user_email: str | None = Field(
        default=None, sa_type=String(320), description="For domain-wide delegation"
    )
    google_id: str = Field(sa_type=String(500))
    summary: str | None = Field(default=None, sa_type=String(500))
    primary: bool = False
    sync_token: str | None = Field(default=None, sa_type=Text)
    synced_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))


def owner_of(calendar: UserCalendar) -> GoogleUser:
    """Whose Google account a calendar's calls act for."""
    return GoogleUser(org_id=calendar.org_id, user_id=calendar.user_id, email=calendar.user_email)


class MirroredEvent(CalendarModel, table=True):
    """A Google Calendar event as last seen; ``resource`` is Google's representation."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("calendar_id", "google_id"),
        Index("ix_events_owner_start", "org_id", "user_id", "start_at", "id"),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    user_id: str = Field(sa_type=String(255))
    calendar_id: UUID = Field(foreign_key="calendar.calendars.id", ondelete="CASCADE")
    google_id: str = Field(sa_type=String(1024))
    status: str = Field(sa_type=String(20))
    summary: str | None = Field(default=None, sa_type=Text)
    start_at: datetime = Field(sa_type=DateTime(timezone=True))
    end_at: datetime = Field(sa_type=DateTime(timezone=True))
    all_day: bool = False
    etag: str | None = Field(default=None, sa_type=String(200))
    google_updated: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    resource: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    version: int = 1
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class EventLink(CalendarModel, table=True):
    """A CRM record an event belongs to (also kept in the event's private extended properties)."""

    __tablename__ = "event_links"
    __table_args__ = (Index("ix_event_links_record", "org_id", "record_type", "record_id"),)

    event_id: UUID = Field(primary_key=True, foreign_key="calendar.events.id", ondelete="CASCADE")
    record_type: str = Field(primary_key=True, sa_type=String(20))
    record_id: str = Field(primary_key=True, sa_type=String(64))
    org_id: str = Field(sa_type=String(255))


outbox = outbox_table(CalendarModel.metadata)
inbox = inbox_tables(CalendarModel.metadata)
access_replica = access_replica_table(CalendarModel.metadata)
channels = channels_table(CalendarModel.metadata)
idempotency_keys = idempotency_table(CalendarModel.metadata)
work_requests = coalescer_table(CalendarModel.metadata)
job_schedule = job_schedule_table(CalendarModel.metadata)
