"""Timeline tables (schema ``timeline``)."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from pipedesk_common.access import access_replica_table
from pipedesk_common.db import schema_registry
from pipedesk_common.inbox import inbox_tables
from pipedesk_common.lifecycle_answers import lifecycle_answers_table

TEXT_SEARCH_INDEX = "ix_holders_text_trgm"


class TimelineModel(SQLModel, registry=schema_registry("timeline")):
    """Base of every timeline table: schema ``timeline``, migrated on its own."""


class TimelineItem(TimelineModel, table=True):
    """One message, meeting, audited change…: what a record's timeline shows once, however many
    mailboxes or calendars hold a copy of it (its holders, below).

    ``identity``: what the copies share (a ``Message-ID``, an ``iCalUID``), unique in the org;
    null for an item that is one source object alone. ``occurred_at``: its newest live copy's.
    """

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("org_id", "identity"),)

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    identity: str | None = Field(default=None, sa_type=String(300))
    occurred_at: datetime = Field(sa_type=DateTime(timezone=True))


class ItemHolder(TimelineModel, table=True):
    """One copy of an item, as the projection of its source object last described it: whose
    mailbox or calendar holds it (``owner_id``), how it is shared, its content and ``version``
    (copies are version-gated each on its own). ``held`` is false once the copy is gone
    (cancelled, deleted); ``changed_at`` is the producer's time of the copy's last change.
    """

    __tablename__ = "holders"
    __table_args__ = (
        Index("ix_holders_item", "item_id"),
        Index("ix_holders_participants", "participants", postgresql_using="gin"),
        # The few copies that are live series: whether a record's page holds one is read from
        # these, never by walking every item of the record.
        Index(
            "ix_holders_series",
            "org_id",
            "item_id",
            postgresql_where=text("recurrence IS NOT NULL AND held"),
        ),
        # Timeline search (``q``): trigrams of what an ILIKE '%text%' looks in. Built only where
        # the pg_trgm extension is available; the scan serves the search elsewhere.
        Index(
            TEXT_SEARCH_INDEX,
            "title",
            "summary",
            postgresql_using="gin",
            postgresql_ops={"title": "gin_trgm_ops", "summary": "gin_trgm_ops"},
            info={"requires_extension": "pg_trgm"},
        ),
    )

    org_id: str = Field(primary_key=True, sa_type=String(255))
    source_key: str = Field(primary_key=True, sa_type=String(300))
    item_id: UUID = Field(foreign_key="timeline.items.id", ondelete="CASCADE")
    owner_id: str | None = Field(default=None, sa_type=String(255))
    private: bool = False
    sharing: str | None = Field(default=None, sa_type=String(20))
    held: bool = True
    version: int
    event_id: UUID
    changed_at: datetime = Field(sa_type=DateTime(timezone=True))
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
    google_id: str | None = Field(default=None, sa_type=String(1024))
    url: str | None = Field(default=None, sa_type=Text)
    # A series' rule (the projection's ``recurrence``): the item is the whole series.
    recurrence: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSONB(none_as_null=True), nullable=True)
    )
    links: list[list[str]] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class TimelineLink(TimelineModel, table=True):
    """An item attached to a record; ``occurred_at`` is copied here so a page is one index scan.

    ``explicit``: named in the projection's ``links`` (else matched through a participant).
    ``change_version``: the record's version when this item last changed on it, the stream's
    event id.
    """

    __tablename__ = "links"
    __table_args__ = (
        Index(
            "ix_links_record_time", "org_id", "record_type", "record_id", "occurred_at", "item_id"
        ),
        Index("ix_links_record_change", "org_id", "record_type", "record_id", "change_version"),
    )

    item_id: UUID = Field(primary_key=True, foreign_key="timeline.items.id", ondelete="CASCADE")
    record_type: str = Field(primary_key=True, sa_type=String(20))
    record_id: str = Field(primary_key=True, sa_type=String(64))
    org_id: str = Field(sa_type=String(255))
    occurred_at: datetime = Field(sa_type=DateTime(timezone=True))
    explicit: bool = True
    change_version: int = Field(default=0, sa_type=BigInteger)


class RecordVersion(TimelineModel, table=True):
    """Bumped in the same transaction as any change to a record's items (ETag, stream ids)."""

    __tablename__ = "record_versions"

    org_id: str = Field(primary_key=True, sa_type=String(255))
    record_type: str = Field(primary_key=True, sa_type=String(20))
    record_id: str = Field(primary_key=True, sa_type=String(64))
    version: int = Field(sa_type=BigInteger)


class AccessVersion(TimelineModel, table=True):
    """Bumped whenever the replica learns an access list of the org (ETag)."""

    __tablename__ = "access_versions"

    org_id: str = Field(primary_key=True, sa_type=String(255))
    version: int = Field(sa_type=BigInteger)


class CrmRecord(TimelineModel, table=True):
    """What matching needs of a CRM record: whether it exists, is open, and its contacts."""

    __tablename__ = "crm_records"

    org_id: str = Field(primary_key=True, sa_type=String(255))
    record_type: str = Field(primary_key=True, sa_type=String(20))
    record_id: str = Field(primary_key=True, sa_type=String(64))
    deleted: bool = False
    open: bool = True


class ContactEmail(TimelineModel, table=True):
    """The participant index: every address of every live contact, lower case."""

    __tablename__ = "contact_emails"
    __table_args__ = (Index("ix_contact_emails_contact", "org_id", "contact_id"),)

    org_id: str = Field(primary_key=True, sa_type=String(255))
    email: str = Field(primary_key=True, sa_type=String(320))
    contact_id: str = Field(primary_key=True, sa_type=String(64))


class RecordContact(TimelineModel, table=True):
    """The contacts of a lead or deal."""

    __tablename__ = "record_contacts"
    __table_args__ = (Index("ix_record_contacts_contact", "org_id", "contact_id"),)

    org_id: str = Field(primary_key=True, sa_type=String(255))
    record_type: str = Field(primary_key=True, sa_type=String(20))
    record_id: str = Field(primary_key=True, sa_type=String(64))
    contact_id: str = Field(primary_key=True, sa_type=String(64))


class StreamTicket(TimelineModel, table=True):
    """A single-use ticket for one record's event stream; only its hash is kept."""

    __tablename__ = "stream_tickets"

    token_hash: str = Field(primary_key=True, sa_type=String(64))
    org_id: str = Field(sa_type=String(255))
    record_type: str = Field(sa_type=String(20))
    record_id: str = Field(sa_type=String(64))
    principal: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


inbox = inbox_tables(TimelineModel.metadata)
access_replica = access_replica_table(TimelineModel.metadata)
lifecycle_answers = lifecycle_answers_table(TimelineModel.metadata)
