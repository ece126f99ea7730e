"""Calendar tables (schema ``calendar``): the users' calendars, the mirror of their events, the
links of events to CRM records, and the Google service kit's tables."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Column, DateTime, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from pipedesk_common.db import schema_registry
from pipedesk_common.mirror.disconnect import KEEP_METADATA
from pipedesk_common.mirror.links import record_links_table
from pipedesk_common.mirror.models import UserCollection
from pipedesk_common.mirror.tables import MirrorTables


class CalendarModel(SQLModel, registry=schema_registry("calendar")):
    """Base of every calendar table: schema ``calendar``, migrated on its own."""


class UserCalendar(UserCollection, CalendarModel, table=True):
    """One Google calendar of one user, and where its incremental sync stands."""

    __tablename__ = "calendars"
    __table_args__ = (UniqueConstraint("org_id", "user_id", "google_id"),)

    google_id: str = Field(sa_type=String(500))
    summary: str | None = Field(default=None, sa_type=String(500))
    primary: bool = False
    sync_token: str | None = Field(default=None, sa_type=Text)
    synced_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))


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


class OrgCalendarSettings(CalendarModel, table=True):
    """An org's calendar settings: how long mirrored events are kept, and what a disconnected
    calendar's events become."""

    __tablename__ = "org_settings"

    org_id: str = Field(primary_key=True, sa_type=String(255))
    retention_days: int | None = Field(
        default=None,
        description="How many days a mirrored event is kept after it ended; null: as long as "
        "it is in the calendar",
    )
    on_disconnect: str = Field(
        default=KEEP_METADATA,
        sa_type=String(20),
        sa_column_kwargs={"server_default": KEEP_METADATA},
        description="What a disconnected account's events become: kept, or removed",
    )
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


event_links = record_links_table(
    CalendarModel.metadata, "event_links", parent="events", key="event_id"
)
TABLES = MirrorTables.of(CalendarModel.metadata, push=True)
