"""Tasks tables (schema ``tasks``): the users' task lists, the mirror of their tasks, the links of
tasks to CRM records, and the Google service kit's tables."""

from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Column, Date, DateTime, Index, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from pipedesk_common.db import schema_registry
from pipedesk_common.mirror.disconnect import KEEP_METADATA
from pipedesk_common.mirror.links import record_links_table
from pipedesk_common.mirror.models import UserCollection
from pipedesk_common.mirror.tables import MirrorTables


class TasksModel(SQLModel, registry=schema_registry("tasks")):
    """Base of every tasks table: schema ``tasks``, migrated on its own."""


class TaskList(UserCollection, TasksModel, table=True):
    """One Google task list of one user, and how far its poll has read."""

    __tablename__ = "tasklists"
    __table_args__ = (UniqueConstraint("org_id", "user_id", "google_id"),)

    google_id: str = Field(sa_type=String(200))
    title: str = Field(sa_type=Text)
    is_default: bool = False
    etag: str | None = Field(default=None, sa_type=String(200))
    polled_through: datetime | None = Field(
        default=None,
        sa_type=DateTime(timezone=True),
        description="The latest `updated` the poll has seen: the next poll's `updatedMin`",
    )
    polled_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class MirroredTask(TasksModel, table=True):
    """A Google task as last seen; ``resource`` is Google's representation.

    A row without ``google_id`` is a create in progress: written before Google is asked (Google
    Tasks takes no ids from clients), so a retried or crashed create finds it and reconciles.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("tasklist_id", "google_id"),
        Index("ix_tasks_owner", "org_id", "user_id", "created_at", "id"),
        Index("ix_tasks_assigned_by", "org_id", "assigned_by", "created_at", "id"),
        Index(
            "ix_tasks_pending",
            "tasklist_id",
            "created_at",
            postgresql_where=text("google_id IS NULL"),
        ),
    )

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    user_id: str = Field(sa_type=String(255), description="Whose Google Tasks hold the task")
    tasklist_id: UUID = Field(foreign_key="tasks.tasklists.id", ondelete="CASCADE")
    google_id: str | None = Field(default=None, sa_type=String(200))
    parent_google_id: str | None = Field(default=None, sa_type=String(200))
    position: str | None = Field(default=None, sa_type=String(64))
    title: str = Field(default="", sa_type=Text)
    notes: str | None = Field(default=None, sa_type=Text)
    status: str = Field(default="needsAction", sa_type=String(20))
    due: date | None = Field(default=None, sa_type=Date)
    completed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    hidden: bool = False
    deleted: bool = False
    etag: str | None = Field(default=None, sa_type=String(200))
    google_updated: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    resource: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    assigned_by: str | None = Field(
        default=None, sa_type=String(255), description="Who assigned it, when not the owner"
    )
    creating_until: datetime | None = Field(
        default=None,
        sa_type=DateTime(timezone=True),
        description="While set and future, one request is creating this task in Google",
    )
    version: int = 1
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class OrgTasksSettings(TasksModel, table=True):
    """An org's tasks settings: what a disconnected account's tasks become."""

    __tablename__ = "org_settings"

    org_id: str = Field(primary_key=True, sa_type=String(255))
    on_disconnect: str = Field(
        default=KEEP_METADATA,
        sa_type=String(20),
        sa_column_kwargs={"server_default": KEEP_METADATA},
        description="What a disconnected account's tasks become: kept, or removed",
    )
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


task_links = record_links_table(TasksModel.metadata, "task_links", parent="tasks", key="task_id")
TABLES = MirrorTables.of(TasksModel.metadata)
