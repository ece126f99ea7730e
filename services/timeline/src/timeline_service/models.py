"""Timeline tables (schema ``timeline``)."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ARRAY, Column, DateTime, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from pipedesk_common.access import access_replica_table
from pipedesk_common.consumer import inbox_tables
from pipedesk_common.db import schema_registry


class TimelineModel(SQLModel, registry=schema_registry("timeline")):
    """Base of every timeline table: schema ``timeline``, migrated on its own."""


class TimelineItem(TimelineModel, table=True):
    """One source object (an audited change, a meeting, an email…): newer versions update it."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("org_id", "source_key"),)

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    source_key: str = Field(sa_type=String(300))
    kind: str = Field(sa_type=String(20))
    occurred_at: datetime = Field(sa_type=DateTime(timezone=True))
    title: str = Field(sa_type=String(500))
    summary: str | None = Field(default=None, sa_type=Text)
    participants: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False)
    )
    status: str | None = Field(default=None, sa_type=String(50))
    actor_id: str | None = Field(default=None, sa_type=String(255))
    source_service: str = Field(sa_type=String(50))
    google_id: str | None = Field(default=None, sa_type=String(300))
    url: str | None = Field(default=None, sa_type=Text)
    visibility: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    version: int
    event_id: UUID
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class TimelineLink(TimelineModel, table=True):
    """An item attached to a record; ``occurred_at`` is copied here so a page is one index scan."""

    __tablename__ = "links"
    __table_args__ = (
        Index(
            "ix_links_record_time", "org_id", "record_type", "record_id", "occurred_at", "item_id"
        ),
    )

    item_id: UUID = Field(primary_key=True, foreign_key="timeline.items.id", ondelete="CASCADE")
    record_type: str = Field(primary_key=True, sa_type=String(20))
    record_id: str = Field(primary_key=True, sa_type=String(64))
    org_id: str = Field(sa_type=String(255))
    occurred_at: datetime = Field(sa_type=DateTime(timezone=True))


inbox = inbox_tables(TimelineModel.metadata)
access_replica = access_replica_table(TimelineModel.metadata)
