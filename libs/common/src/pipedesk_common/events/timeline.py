"""The timeline projection: how any producer describes an item for a record's timeline.

Every event meant for the timeline carries one in ``data.timeline``, so the timeline service maps
every producer the same way and a new producer needs no timeline change.

A projection describes one copy of its item: one mailbox's message, one calendar's event, or the
item's only source. Copies that carry the same ``identity`` in an org are one item with several
holders (the accounts holding a copy); each copy keeps its own ``source.key`` and ``version``.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from pipedesk_common.events.envelope import EventData


class RecordType(StrEnum):
    LEAD = "lead"
    DEAL = "deal"
    CONTACT = "contact"
    COMPANY = "company"


class ItemKind(StrEnum):
    MEETING = "meeting"
    EMAIL = "email"
    FILE = "file"
    TASK = "task"
    AUDIT = "audit"
    NOTE = "note"
    SLA = "sla"


IDENTITY_MAX_LENGTH = 300
# A copy in one of these statuses is gone from its holder's mailbox or calendar.
GONE_STATUSES = frozenset({"cancelled", "deleted", "removed"})
# A copy its holder dropped altogether (a message deleted from a mailbox): an item every copy of
# which is removed leaves every timeline, where a cancelled or deleted one stays, showing it.
REMOVED_STATUS = "removed"


def identity_of(value: str) -> str:
    """A message's or meeting's own id (a ``Message-ID``, an ``iCalUID``) as a projection's
    ``identity``: itself, or ``sha256:`` and its digest when longer than a projection takes."""
    if len(value) <= IDENTITY_MAX_LENGTH:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


class Link(BaseModel):
    """A CRM record an item or event belongs to."""

    model_config = ConfigDict(frozen=True)

    type: RecordType
    id: str = Field(min_length=1, max_length=64)


class TimelineSource(BaseModel):
    model_config = ConfigDict(frozen=True)

    service: str = Field(
        min_length=1, max_length=50, description="The producing service, e.g. `crm`, `calendar`"
    )
    key: str = Field(
        min_length=1,
        max_length=300,
        description="Identifies the source object: its versions update ONE item, never add more",
    )
    google_id: str | None = Field(
        None, max_length=1024, description="Google's id of the object (event ids reach 1024)"
    )
    url: str | None = Field(None, max_length=2000)


class Visibility(BaseModel):
    model_config = ConfigDict(frozen=True)

    private: bool = Field(False, description="Shown to others as busy/hidden, e.g. a private event")
    sharing: str | None = Field(None, description="Mailbox sharing level: metadata, subject, full")
    owner_id: str | None = Field(None, description="The user whose mailbox or calendar it is")


class Recurrence(BaseModel):
    """A series' rule, for a timeline to show the series as one item with its next occurrence."""

    model_config = ConfigDict(frozen=True)

    rule: list[Annotated[str, Field(max_length=1000)]] = Field(
        min_length=1,
        max_length=50,
        description="RFC 5545 lines (one `RRULE`, any `EXDATE`/`RDATE`), read from `occurred_at`",
    )
    time_zone: str | None = Field(
        None, max_length=64, description="The zone the rule counts in (its wall-clock times)"
    )
    all_day: bool = Field(False, description="Occurrences are dates (`occurred_at`'s UTC date)")


class TimelineProjection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: ItemKind
    occurred_at: AwareDatetime
    title: str = Field(max_length=500)
    summary: str | None = Field(None, max_length=4000)
    participants: list[Annotated[str, Field(max_length=320)]] = Field(
        default_factory=list, max_length=500, description="Emails, lower case"
    )
    links: list[Link] = Field(default_factory=list, max_length=100)
    source: TimelineSource
    identity: str | None = Field(
        None,
        min_length=1,
        max_length=IDENTITY_MAX_LENGTH,
        description="The message or meeting this copy is of, the same in every holder's copy "
        "(an email's `Message-ID`, a meeting's `iCalUID`; see `identity_of`): copies with one "
        "identity in an org are one item. Absent: the item is this source object alone",
    )
    recurrence: Recurrence | None = Field(
        None,
        description="A series: the item is the whole series, `occurred_at` its first "
        "occurrence; an occurrence changed or cancelled on its own is an item of its own",
    )
    status: str | None = Field(
        None,
        max_length=50,
        description="The source's status; `cancelled` or `deleted` means this copy is gone from "
        "its holder (the item stays, showing it, once no holder has a live copy); `removed` "
        "that the holder dropped it (the item leaves every timeline once every copy is removed)",
    )
    actor_id: str | None = Field(None, max_length=255)
    visibility: Visibility = Visibility()
    version: int = Field(1, description="Newer versions of the same source object win")


class TimelineCarrier(EventData):
    """What the timeline reads of an event type it has no contract for: its projection."""

    timeline: TimelineProjection
